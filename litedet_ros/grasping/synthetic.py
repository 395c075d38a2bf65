"""Analytic depth rendering of boxes and cylinders, for planner tests and latency benchmarks.

Exact ray casting (no noise, no artefacts) of primitive solids seen by a pinhole camera; the
ground truth the planner is measured against in unit tests, independent of the MuJoCo workcell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.errors import LitedetError
from litedet_ros.grasping.config import BinGeometry


def rotation_z(yaw: float) -> np.ndarray:
    """Rotation by ``yaw`` radians about +z, ``float64[3, 3]``."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class Cuboid:
    """A solid box: ``centre`` (m) and ``half`` extents (m) along the columns of ``rotation``."""

    centre: np.ndarray
    half: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def intersect(self, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """Ray parameters of the first hit, ``float64[N]``, inf for a miss (slab test)."""
        o = (origin - np.asarray(self.centre)) @ self.rotation
        d = directions @ self.rotation
        half = np.asarray(self.half)
        with np.errstate(divide='ignore', invalid='ignore'):
            t1, t2 = (-half - o) / d, (half - o) / d
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        return np.where((far >= near) & (near > 0), near, np.inf)


@dataclass(frozen=True, eq=False)
class Cylinder:
    """A solid cylinder centred at ``centre``, its axis the third column of ``rotation``."""

    centre: np.ndarray
    radius: float
    half_length: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def intersect(self, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """Ray parameters of the first hit, ``float64[N]``, inf for a miss."""
        o = (origin - np.asarray(self.centre)) @ self.rotation
        d = directions @ self.rotation
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = 2 * (o[0] * d[:, 0] + o[1] * d[:, 1])
        c = o[0] ** 2 + o[1] ** 2 - self.radius ** 2
        disc = b ** 2 - 4 * a * c
        with np.errstate(divide='ignore', invalid='ignore'):
            t_side = (-b - np.sqrt(disc)) / (2 * a)
            side_ok = (disc >= 0) & (t_side > 0) & (np.abs(o[2] + t_side * d[:, 2])
                                                   <= self.half_length)
            hits = [np.where(side_ok, t_side, np.inf)]
            for cap in (-self.half_length, self.half_length):
                t_cap = (cap - o[2]) / d[:, 2]
                x, y = o[0] + t_cap * d[:, 0], o[1] + t_cap * d[:, 1]
                hits.append(np.where((t_cap > 0) & (x ** 2 + y ** 2 <= self.radius ** 2),
                                     t_cap, np.inf))
        return np.min(hits, axis=0)


def look_down_pose(height: float, x: float = 0.0, y: float = 0.0) -> np.ndarray:
    """Planning <- camera optical transform of a camera ``height`` m above ``(x, y, 0)``.

    The optical axis points straight down (-z), image x along planning +x, image y along -y.
    """
    pose = np.eye(4)
    pose[:3, :3] = np.diag([1.0, -1.0, -1.0])
    pose[:3, 3] = (x, y, height)
    return pose


def bin_solids(bin_geometry: BinGeometry, floor_thickness: float = 0.01) -> list[Cuboid]:
    """The bin's floor and walls as solids in the planning frame."""
    rotation, origin = bin_geometry.pose[:3, :3], bin_geometry.pose[:3, 3]
    t = bin_geometry.wall_thickness
    floor_half = np.array([bin_geometry.size_x / 2 + t, bin_geometry.size_y / 2 + t,
                           floor_thickness / 2])
    solids = [Cuboid(origin + rotation @ np.array([0.0, 0.0, -floor_thickness / 2]),
                     floor_half, rotation)]
    solids += [Cuboid(origin + rotation @ centre, half, rotation)
               for centre, half in bin_geometry.wall_boxes]
    return solids


def render_depth(camera: PinholeCamera, planning_from_camera: np.ndarray,
                 solids: list[Cuboid | Cylinder]) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast a depth image and a per-pixel solid index.

    Args:
        camera: intrinsics and image size.
        planning_from_camera: ``float64[4, 4]`` planning <- camera optical transform.
        solids: solids in the planning frame.

    Returns:
        ``(depth float32[H, W], ids int32[H, W])``: depth along the optical axis in metres (NaN
        where nothing is hit) and the index of the solid seen at each pixel (-1 for none).
    """
    v, u = np.mgrid[0:camera.height, 0:camera.width]
    rays = np.stack([(u.ravel() - camera.cx) / camera.fx, (v.ravel() - camera.cy) / camera.fy,
                     np.ones(u.size)], axis=1)
    directions = rays @ planning_from_camera[:3, :3].T  # unit optical z, so t is depth
    origin = planning_from_camera[:3, 3]
    hits = np.stack([solid.intersect(origin, directions) for solid in solids])
    ids = np.argmin(hits, axis=0)
    depth = hits[ids, np.arange(u.size)]
    ids = np.where(np.isfinite(depth), ids, -1)
    shape = (camera.height, camera.width)
    depth = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    return depth.reshape(shape), ids.reshape(shape).astype(np.int32)


def visible_box(ids: np.ndarray, index: int) -> np.ndarray:
    """Tight box ``float32[4]`` ``(x1, y1, x2, y2)`` around the pixels showing solid ``index``."""
    rows, cols = np.nonzero(ids == index)
    if len(rows) == 0:
        raise LitedetError(f'solid {index} is not visible')
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float32)


def random_bin_objects(rng: np.random.Generator, count: int,
                       bin_geometry: BinGeometry) -> list[Cuboid | Cylinder]:
    """Boxes and cylinders resting on the bin floor, one per cell of a grid, random sizes.

    Args:
        rng: random generator.
        count: number of objects, 1-25.
        bin_geometry: the bin; objects stand on its floor.

    Returns:
        The solids in the planning frame.
    """
    columns = int(np.ceil(np.sqrt(count * bin_geometry.size_x / bin_geometry.size_y)))
    rows = int(np.ceil(count / columns))
    cell = np.array([bin_geometry.size_x / columns, bin_geometry.size_y / rows])
    cells = rng.permutation(rows * columns)[:count]
    rotation, origin = bin_geometry.pose[:3, :3], bin_geometry.pose[:3, 3]
    solids: list[Cuboid | Cylinder] = []
    for index in cells:
        centre = (np.array([index % columns + 0.5, index // columns + 0.5]) * cell
                  - [bin_geometry.size_x / 2, bin_geometry.size_y / 2])
        room = min(cell.min() * 0.8, 0.09)
        height = rng.uniform(0.02, 0.08)
        if rng.random() < 0.6:
            half = np.array([rng.uniform(0.4, 0.5) * room, rng.uniform(0.2, 0.32) * room,
                             height / 2])
            local = np.array([centre[0], centre[1], height / 2])
            solids.append(Cuboid(origin + rotation @ local, half,
                                 rotation @ rotation_z(rng.uniform(-np.pi, np.pi))))
        else:
            radius = rng.uniform(0.22, 0.32) * room
            local = np.array([centre[0], centre[1], height / 2])
            solids.append(Cylinder(origin + rotation @ local, radius, height / 2, rotation))
    return solids
