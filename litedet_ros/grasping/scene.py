"""The depth scene as points on the pixel grid, for fast look-ups of a region's points."""

from __future__ import annotations

from dataclasses import dataclass
import functools
import math

import numpy as np

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.grasping.config import BinGeometry

#: Which of the eight corners of an axis-aligned box take the upper bound on each axis.
_CORNERS = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=bool)


@dataclass(frozen=True, eq=False)
class SceneCloud:
    """Depth points of one image sampled every ``stride`` pixels, kept on their pixel grid.

    Attributes:
        grid: ``float64[h, w, 3]`` points in the planning frame, metres; NaN where the depth is
            invalid or the point lies on the bin floor. Cell ``(i, j)`` is pixel
            ``(j * stride, i * stride)``.
        stride: pixel stride of the grid.
        camera: intrinsics of the depth image.
        camera_from_planning: ``float64[4, 4]`` camera optical <- planning transform.
    """

    grid: np.ndarray
    stride: int
    camera: PinholeCamera
    camera_from_planning: np.ndarray

    @classmethod
    def from_depth(cls, depth: np.ndarray, camera: PinholeCamera,
                   planning_from_camera: np.ndarray, stride: int,
                   bin_geometry: BinGeometry | None, floor_margin: float) -> SceneCloud:
        """Sample and deproject a depth image, dropping the bin floor.

        Args:
            depth: ``float32[H, W]`` depth, metres, NaN where invalid.
            camera: intrinsics of ``depth``.
            planning_from_camera: ``float64[4, 4]`` planning <- camera optical transform.
            stride: pixel stride.
            bin_geometry: the bin whose floor is dropped, or None.
            floor_margin: points lower than this above the bin floor are floor, m.
        """
        sampled = depth[::stride, ::stride]
        v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
        points = camera.deproject(u, v, sampled)
        grid = points @ planning_from_camera[:3, :3].T + planning_from_camera[:3, 3]
        if bin_geometry is not None:
            flat = grid.reshape(-1, 3)
            with np.errstate(invalid='ignore'):
                local = bin_geometry.to_bin(flat)
                on_floor = ((np.abs(local[:, 0]) < bin_geometry.size_x / 2)
                            & (np.abs(local[:, 1]) < bin_geometry.size_y / 2)
                            & (local[:, 2] < floor_margin))
            flat[on_floor] = np.nan
        return cls(grid, stride, camera, np.linalg.inv(planning_from_camera))

    @functools.cached_property
    def points(self) -> np.ndarray:
        """All valid points, ``float64[N, 3]``, planning frame."""
        flat = self.grid.reshape(-1, 3)
        return flat[np.isfinite(flat[:, 0])]

    def box_points(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Valid points inside an axis-aligned box of the planning frame.

        Only the grid cells under the box's image footprint are visited (:meth:`window`).

        Args:
            low: ``float[3]`` lower corner, planning frame, m.
            high: ``float[3]`` upper corner, planning frame, m.

        Returns:
            ``float64[M, 3]`` points, planning frame.
        """
        window = self.window(low, high)
        with np.errstate(invalid='ignore'):
            x, y, z = window.T
            inside = ((x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1])
                      & (z >= low[2]) & (z <= high[2]))
        return window[inside]

    def window(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """The grid cells under the image footprint of an axis-aligned box, NaN rows included.

        Every point of the scene inside the box is among them; all cells when the box reaches
        behind the camera.

        Args:
            low: ``float[3]`` lower corner, planning frame, m.
            high: ``float[3]`` upper corner, planning frame, m.

        Returns:
            ``float64[M, 3]`` points, planning frame (NaN where :attr:`grid` is).
        """
        corners = np.where(_CORNERS, high, low)
        rotation, origin = self.camera_from_planning[:3, :3], self.camera_from_planning[:3, 3]
        in_camera = corners @ rotation.T + origin
        if not (in_camera[:, 2] > 1e-3).all():
            return self.grid.reshape(-1, 3)
        pixels = self.camera.project(in_camera)
        i0, j0 = (max(0, math.floor(c / self.stride)) for c in pixels.min(axis=0)[::-1])
        i1, j1 = (math.ceil(c / self.stride) + 1 for c in pixels.max(axis=0)[::-1])
        return self.grid[i0:i1, j0:j1].reshape(-1, 3)
