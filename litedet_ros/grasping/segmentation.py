"""Object points from a detection box and aligned depth: crop, deproject, remove bin, cluster."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.errors import LitedetError
from litedet_ros.grasping.config import PlannerConfig

#: A cluster within this many sampled pixels of a box side reaches that side.
BOX_EDGE_CELLS = 1


class GraspDropError(LitedetError):
    """One detection yields no grasp; ``reason`` is a short key the planner counts by.

    Attributes:
        reason: counter key, e.g. ``'box_outside_image'`` or ``'no_valid_depth'``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f'{reason}: {message}')
        self.reason = reason


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``float[4, 4]`` homogeneous transform to ``float[N, 3]`` points."""
    return points @ transform[:3, :3].T + transform[:3, 3]


def box_pixel_range(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel index range whose pixel centres lie inside a box, clipped to the image.

    Args:
        box: ``float[4]`` ``(x1, y1, x2, y2)`` in pixels, origin at the top-left image corner
            (pixel ``i`` covers ``[i, i + 1)``, its centre is ``i + 0.5``).
        width: image width, pixels.
        height: image height, pixels.

    Returns:
        ``(u0, v0, u1, v1)`` half-open column and row ranges, non-empty.

    Raises:
        GraspDropError: ``box_zero_area`` for a degenerate box, ``box_outside_image`` when no
            pixel centre of the box is inside the image.
    """
    x1, y1, x2, y2 = (float(c) for c in box)
    if not (x2 > x1 and y2 > y1):
        raise GraspDropError('box_zero_area', f'box {x1, y1, x2, y2} has no area')
    u0, v0 = max(math.ceil(x1 - 0.5), 0), max(math.ceil(y1 - 0.5), 0)
    u1, v1 = min(math.floor(x2 - 0.5) + 1, width), min(math.floor(y2 - 0.5) + 1, height)
    if u1 <= u0 or v1 <= v0:
        inside = x2 > 0 and y2 > 0 and x1 < width and y1 < height
        reason = 'box_zero_area' if inside else 'box_outside_image'
        raise GraspDropError(reason, f'box {x1, y1, x2, y2} covers no pixel centre of the '
                                     f'{width}x{height} image')
    return u0, v0, u1, v1


def grid_clusters(depth: np.ndarray, mask: np.ndarray, max_step: np.ndarray) -> np.ndarray:
    """Label 4-connected pixels whose depth changes by at most ``max_step`` between neighbours.

    The pixel graph is drawn on a grid of twice the resolution (pixels at even coordinates,
    the links between neighbours at odd ones) so that :func:`scipy.ndimage.label` finds its
    connected components.

    Args:
        depth: ``float[h, w]`` depth along the optical axis, metres.
        mask: ``bool[h, w]`` pixels to cluster.
        max_step: ``float[h, w]`` largest depth step to a neighbour that keeps a connection, m.

    Returns:
        ``int64[h, w]`` cluster labels, -1 outside ``mask``.
    """
    h, w = depth.shape
    graph = np.zeros((2 * h - 1, 2 * w - 1), dtype=bool)
    graph[::2, ::2] = mask
    with np.errstate(invalid='ignore'):
        graph[::2, 1::2] = (mask[:, :-1] & mask[:, 1:] & (np.abs(np.diff(depth, axis=1))
                            <= np.minimum(max_step[:, :-1], max_step[:, 1:])))
        graph[1::2, ::2] = (mask[:-1] & mask[1:] & (np.abs(np.diff(depth, axis=0))
                            <= np.minimum(max_step[:-1], max_step[1:])))
    labels, _ = ndimage.label(graph)
    return labels[::2, ::2].astype(np.int64) - 1


def object_points(depth: np.ndarray, camera: PinholeCamera, box: np.ndarray,
                  planning_from_camera: np.ndarray, config: PlannerConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Points of the object seen in one detection box, in the planning frame.

    The box is sampled with a stride that keeps at most ``config.max_object_points`` pixels;
    invalid depth, the bin floor and the bin walls are removed; the remaining pixels are split
    into surfaces at depth discontinuities (holes of invalid depth up to ``max_hole_pixels``
    sampled pixels wide are bridged with their nearest valid depth); among the clusters
    holding at least 30% of the largest one's points, the one reaching the most sides of the
    box is kept (a box spans its object, while an occluder or a neighbour pokes in from a side
    or a corner), the largest among equals.

    Args:
        depth: ``float32[H, W]`` depth along the optical axis, metres, NaN where invalid.
        camera: intrinsics of ``depth``.
        box: ``float[4]`` ``(x1, y1, x2, y2)`` detection box, pixels.
        planning_from_camera: ``float64[4, 4]`` planning <- camera optical transform.
        config: planner configuration (bin, sampling and clustering parameters).

    Returns:
        ``(object, others)``: ``float64[N, 3]`` object points, ``N >= min_object_points``, and
        ``float64[M, 3]`` the box's other points off the bin floor and walls (neighbours seen
        at the box's finer sampling), planning frame, metres.

    Raises:
        GraspDropError: the box is empty or outside the image (see :func:`box_pixel_range`),
            holds no valid depth (``no_valid_depth``), or too few object points remain
            (``too_few_points``).
    """
    u0, v0, u1, v1 = box_pixel_range(box, camera.width, camera.height)
    stride = max(1, math.ceil(math.sqrt((u1 - u0) * (v1 - v0) / config.max_object_points)))
    crop = depth[v0:v1:stride, u0:u1:stride]
    valid = np.isfinite(crop)
    if not valid.any():
        raise GraspDropError('no_valid_depth', 'no valid depth inside the box')
    rows, cols = np.nonzero(valid)
    points = transform_points(planning_from_camera, camera.deproject(
        u0 + cols * stride, v0 + rows * stride, crop[valid]))
    keep = np.zeros_like(valid)
    keep[valid] = (True if config.bin is None else
                   config.bin.interior_mask(points, config.wall_margin, config.floor_margin))
    if keep.sum() < config.min_object_points:
        raise GraspDropError('too_few_points',
                             f'{int(keep.sum())} points off the bin floor and walls')
    # Small holes of invalid depth take their nearest valid depth so they do not split surfaces.
    if valid.all():
        filled, bridge = crop, np.zeros_like(valid)
    else:
        distance, nearest = ndimage.distance_transform_edt(~valid, return_indices=True)
        filled = crop[nearest[0], nearest[1]]
        bridge = ~valid & (distance <= config.max_hole_pixels) & keep[nearest[0], nearest[1]]
    slope = math.tan(math.radians(config.max_surface_slope_deg))
    pixel_size = filled * (stride / min(camera.fx, camera.fy))
    labels = grid_clusters(filled, keep | bridge, config.depth_noise + slope * pixel_size)
    points_grid = np.full(crop.shape + (3,), np.nan)
    points_grid[valid] = points
    labels_kept = labels[keep]
    sizes = np.bincount(labels_kept)
    big = np.flatnonzero(sizes >= max(config.min_object_points, 0.3 * sizes.max()))
    if len(big) == 0:
        raise GraspDropError('too_few_points',
                             f'largest surface holds {int(sizes.max())} points')
    kept_rows, kept_cols = np.nonzero(keep)
    h, w = crop.shape
    m = BOX_EDGE_CELLS

    def rank(label: int) -> tuple[int, int]:
        mine = labels_kept == label
        rows, cols = kept_rows[mine], kept_cols[mine]
        edges = (int(rows.min() <= m) + int(rows.max() + 1 >= h - m) + int(cols.min() <= m)
                 + int(cols.max() + 1 >= w - m))
        return edges, int(sizes[label])

    chosen = max(big, key=rank)
    mine = labels == chosen
    return points_grid[keep & mine], points_grid[keep & ~mine]
