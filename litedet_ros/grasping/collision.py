"""Collision and clearance of the gripper's swept volume against scene points and bin walls."""

from __future__ import annotations

import coal
import numba
import numpy as np

from litedet_ros.grasping.config import BinGeometry, GripperGeometry

#: Every this-many-th scene point is checked first (see :func:`swept_collisions`).
PREFILTER_STRIDE = 16
#: Signs of the eight corners of a box relative to its centre.
_BOX_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])


def gripper_boxes(gripper: GripperGeometry, width: float | np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Boxes swept by the open gripper from the pre-grasp pose to the grasp pose.

    Each box covers a part (two fingers, palm, coupling) at the grasp pose and everything it
    passes through while moving ``approach_distance`` along +z to get there.

    Args:
        gripper: gripper geometry.
        width: finger opening, metres: a scalar, or ``float[K]`` for K grasps.

    Returns:
        ``(centres, half_extents)``, both ``float64[4, 3]`` (``float64[K, 4, 3]`` for K
        openings): rows are the +y finger, the -y finger, the palm and the coupling, in the
        tool frame, m.
    """
    g = gripper
    width = np.asarray(width, dtype=np.float64)
    tip = g.tcp_to_tip
    finger_z0 = tip - g.finger_length - g.approach_distance
    palm_z1 = tip - g.finger_length
    palm_z0 = palm_z1 - g.palm_height - g.approach_distance
    coupling_z1 = palm_z1 - g.palm_height
    coupling_z0 = coupling_z1 - g.coupling_height - g.approach_distance
    y_finger = width / 2 + g.finger_thickness / 2
    centres = np.zeros(width.shape + (4, 3))
    centres[..., 0, 1], centres[..., 1, 1] = y_finger, -y_finger
    centres[..., :2, 2] = (finger_z0 + tip) / 2
    centres[..., 2, 2] = (palm_z0 + palm_z1) / 2
    centres[..., 3, 2] = (coupling_z0 + coupling_z1) / 2
    half = np.empty(width.shape + (4, 3))
    half[..., :2, :] = (g.finger_width / 2, g.finger_thickness / 2, (tip - finger_z0) / 2)
    half[..., 2, 0] = g.palm_width / 2
    half[..., 2, 1] = np.maximum(g.palm_length / 2, width / 2 + g.finger_thickness)
    half[..., 2, 2] = (palm_z1 - palm_z0) / 2
    half[..., 3, :2] = g.coupling_diameter / 2
    half[..., 3, 2] = (coupling_z1 - coupling_z0) / 2
    return centres, half


def _tool_frames(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations and offsets that take planning-frame points into each grasp's tool frame.

    Args:
        poses: ``float[K, 4, 4]`` planning <- tool transforms.

    Returns:
        ``(rotations float64[K, 3, 3], offsets float64[K, 3])``: tool coordinates of a point
        ``p`` are ``p @ rotations[k] - offsets[k]``.
    """
    rotations = np.ascontiguousarray(poses[:, :3, :3], dtype=np.float64)
    return rotations, np.einsum('kj,kji->ki', poses[:, :3, 3], rotations)


@numba.njit(cache=True)
def _tool_point(point: np.ndarray, rotation: np.ndarray, offset: np.ndarray
                ) -> tuple[float, float, float]:
    """A planning-frame point in a tool frame: ``point @ rotation - offset``.

    See :func:`_tool_frames`.
    """
    return (point[0] * rotation[0, 0] + point[1] * rotation[1, 0] + point[2] * rotation[2, 0]
            - offset[0],
            point[0] * rotation[0, 1] + point[1] * rotation[1, 1] + point[2] * rotation[2, 1]
            - offset[1],
            point[0] * rotation[0, 2] + point[1] * rotation[1, 2] + point[2] * rotation[2, 2]
            - offset[2])


def swept_collisions(points: np.ndarray, poses: np.ndarray, widths: np.ndarray,
                     gripper: GripperGeometry) -> np.ndarray:
    """Tell which grasps' swept volumes contain a scene point.

    Exact, in two passes: a point meeting a part of the gripper usually has many neighbours
    doing so too, so every ``PREFILTER_STRIDE``-th point settles most colliding grasps at a
    fraction of the cost, and only the grasps it leaves free are checked against all points.

    Args:
        points: ``float[N, 3]`` scene points, planning frame, metres.
        poses: ``float[K, 4, 4]`` planning <- tool transforms of the grasps.
        widths: ``float[K]`` finger openings, metres.
        gripper: gripper geometry.

    Returns:
        ``bool[K]``, True where a finger, the palm or the coupling meets a point on the way in.
    """
    points = np.asarray(points, dtype=np.float64)
    widths = np.asarray(widths, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(len(poses), dtype=bool)
    if len(points) < 2 * PREFILTER_STRIDE:
        return _swept_hits(points, poses, widths, gripper)
    hit = _swept_hits(points[::PREFILTER_STRIDE], poses, widths, gripper)
    unsettled = np.flatnonzero(~hit)
    if len(unsettled):
        hit[unsettled] = _swept_hits(points, poses[unsettled], widths[unsettled], gripper)
    return hit


def _swept_hits(points: np.ndarray, poses: np.ndarray, widths: np.ndarray,
                gripper: GripperGeometry) -> np.ndarray:
    """:func:`swept_collisions` against every point in one pass."""
    centres, half = gripper_boxes(gripper, widths)  # K x 4 boxes x 3 axes
    return _swept_hits_kernel(points, *_tool_frames(poses), centres, half)


@numba.njit('boolean[:](float64[:, :], float64[:, :, :], float64[:, :], '
            'float64[:, :, :], float64[:, :, :])', cache=True)
def _swept_hits_kernel(points: np.ndarray, rotations: np.ndarray, offsets: np.ndarray,
                       centres: np.ndarray, half: np.ndarray) -> np.ndarray:
    """:func:`_swept_hits` on :func:`_tool_frames` and :func:`gripper_boxes`, compiled.

    A grasp's points are looked at until one meets it (most grasps of a buried part meet one
    soon).
    """
    hit = np.zeros(len(rotations), dtype=np.bool_)
    for k in range(len(rotations)):
        box_centres, box_half = centres[k], half[k]
        for i in range(len(points)):
            x, y, z = _tool_point(points[i], rotations[k], offsets[k])
            # the boxes are centred on x = 0 and the fingers mirror each other in y: |x|, |y|
            x, y = abs(x), abs(y)
            if x <= box_half[0, 0] and abs(y - box_centres[0, 1]) <= box_half[0, 1] and \
                    abs(z - box_centres[0, 2]) <= box_half[0, 2]:
                hit[k] = True
                break
            for part in (2, 3):  # palm, coupling: centred on the tool axis
                if x <= box_half[part, 0] and y <= box_half[part, 1] and \
                        abs(z - box_centres[part, 2]) <= box_half[part, 2]:
                    hit[k] = True
            if hit[k]:
                break
    return hit


def swept_bounds(poses: np.ndarray, widths: np.ndarray, gripper: GripperGeometry
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds of the swept volumes of grasps, planning frame.

    Args:
        poses: ``float[K, 4, 4]`` planning <- tool transforms of the grasps.
        widths: ``float[K]`` finger openings, metres.
        gripper: gripper geometry.

    Returns:
        ``(low, high)``: ``float64[3]`` corners of the box holding every swept volume, m.
    """
    centres, half = gripper_boxes(gripper, np.asarray(widths, dtype=np.float64))
    corners = (centres[:, :, None, :] + _BOX_CORNER_SIGNS * half[:, :, None, :]).reshape(
        len(poses), -1, 3)
    corners = np.einsum('kij,knj->kni', poses[:, :3, :3], corners) + poses[:, None, :3, 3]
    return corners.min(axis=(0, 1)), corners.max(axis=(0, 1))


def finger_tip_corners(gripper: GripperGeometry, width: float | np.ndarray) -> np.ndarray:
    """The eight lowest corners (at the tips) of both fingers at the grasp pose.

    Args:
        gripper: gripper geometry.
        width: finger opening, metres: a scalar, or ``float[K]`` for K grasps.

    Returns:
        ``float64[8, 3]`` (``float64[K, 8, 3]`` for K openings) tool-frame corners, metres.
    """
    g = gripper
    half_width = np.asarray(width, dtype=np.float64)[..., None] / 2
    signs = np.array([(sx, sy, inner) for sx in (-1, 1) for sy in (-1, 1) for inner in (0, 1)])
    x = np.broadcast_to(signs[:, 0] * g.finger_width / 2, half_width.shape[:-1] + (8,))
    y = signs[:, 1] * (half_width + signs[:, 2] * g.finger_thickness)
    return np.stack([x, y, np.full_like(y, g.tcp_to_tip)], axis=-1)


def points_clearances(points: np.ndarray, poses: np.ndarray, widths: np.ndarray,
                      gripper: GripperGeometry, horizon: float = np.inf) -> np.ndarray:
    """Smallest distance from scene points to each grasp's swept volume, 0 on collision.

    Points between the finger pads (``|y| < width / 2`` in the tool frame) are what the gripper
    closes on: they count for the palm but not for the fingers.

    Args:
        points: ``float[N, 3]`` scene points, planning frame, metres.
        poses: ``float[K, 4, 4]`` planning <- tool transforms of the grasps.
        widths: ``float[K]`` finger openings, metres.
        gripper: gripper geometry.
        horizon: distances beyond this are not needed; they are reported as ``horizon``.

    Returns:
        ``float64[K]`` clearances in metres, at most ``horizon``.
    """
    widths = np.asarray(widths, dtype=np.float64)
    if len(points) == 0:
        return np.full(len(poses), float(horizon))
    centres, half = gripper_boxes(gripper, widths)  # K x 4 boxes x 3 axes
    points = np.asarray(points, dtype=np.float64)
    return np.minimum(_clearances_kernel(points, *_tool_frames(poses), widths, centres, half),
                      horizon)


@numba.njit(cache=True)
def _gap_squared(gap: float) -> float:
    """The square of a signed distance beyond a box face, 0 inside it."""
    return gap * gap if gap > 0.0 else 0.0


@numba.njit('float64[:](float64[:, :], float64[:, :, :], float64[:, :], float64[:], '
            'float64[:, :, :], float64[:, :, :])', cache=True)
def _clearances_kernel(points: np.ndarray, rotations: np.ndarray, offsets: np.ndarray,
                       widths: np.ndarray, centres: np.ndarray, half: np.ndarray) -> np.ndarray:
    """:func:`points_clearances` before the horizon, compiled.

    On :func:`_tool_frames` and :func:`gripper_boxes`; a grasp's points are looked at until one
    meets it.
    """
    clearance = np.empty(len(rotations))
    for k in range(len(rotations)):
        box_centres, box_half = centres[k], half[k]
        nearest = np.inf  # squared
        for i in range(len(points)):
            x, y, z = _tool_point(points[i], rotations[k], offsets[k])
            x, y = abs(x), abs(y)  # the nearer finger is on the point's side
            if y >= widths[k] / 2:  # not between the pads: the fingers count
                nearest = min(nearest, _gap_squared(x - box_half[0, 0])
                              + _gap_squared(abs(y - box_centres[0, 1]) - box_half[0, 1])
                              + _gap_squared(abs(z - box_centres[0, 2]) - box_half[0, 2]))
            for part in (2, 3):  # palm, coupling
                nearest = min(nearest, _gap_squared(x - box_half[part, 0])
                              + _gap_squared(y - box_half[part, 1])
                              + _gap_squared(abs(z - box_centres[part, 2]) - box_half[part, 2]))
            if nearest == 0.0:
                break
        clearance[k] = np.sqrt(nearest)
    return clearance


def points_clearance(points_tool: np.ndarray, gripper: GripperGeometry, width: float,
                     horizon: float = np.inf) -> float:
    """:func:`points_clearances` of one grasp, for points already in its tool frame (m)."""
    return float(points_clearances(np.asarray(points_tool, dtype=np.float64), np.eye(4)[None],
                                   np.array([width]), gripper, horizon)[0])


def _coal_transform(pose: np.ndarray) -> coal.Transform3s:
    transform = coal.Transform3s()
    transform.setRotation(np.ascontiguousarray(pose[:3, :3]))
    transform.setTranslation(np.ascontiguousarray(pose[:3, 3]))
    return transform


def _coal_wall_distance(bin_geometry: BinGeometry, bin_from_tool: np.ndarray,
                        centres: np.ndarray, half: np.ndarray) -> float:
    """Exact distance (m) from the gripper boxes (tool frame) to the bin's wall boxes."""
    request, result = coal.DistanceRequest(), coal.DistanceResult()
    clearance = float('inf')
    for centre, extent in zip(centres, half):
        box_pose = bin_from_tool.copy()
        box_pose[:3, 3] = bin_from_tool[:3, :3] @ centre + bin_from_tool[:3, 3]
        box = coal.Box(*(2 * extent))
        box_transform = _coal_transform(box_pose)
        for wall_centre, wall_half in bin_geometry.wall_boxes:
            wall_pose = np.eye(4)
            wall_pose[:3, 3] = wall_centre
            result.clear()
            distance = coal.distance(box, box_transform, coal.Box(*(2 * wall_half)),
                                     _coal_transform(wall_pose), request, result)
            clearance = min(clearance, max(float(distance), 0.0))
    return clearance


def wall_clearances(bin_geometry: BinGeometry, bin_from_tool: np.ndarray,
                    gripper: GripperGeometry, widths: np.ndarray) -> np.ndarray:
    """Smallest distance between each grasp's swept volume and the bin walls, 0 on contact.

    Grasps whose box corners all lie inside the bin's inner faces get the distance to those
    faces directly; the others are measured exactly against the wall boxes with coal.

    Args:
        bin_geometry: the bin.
        bin_from_tool: ``float64[K, 4, 4]`` bin <- tool transforms of the grasp poses.
        gripper: gripper geometry.
        widths: ``float[K]`` finger openings, metres.

    Returns:
        ``float64[K]`` clearances in metres.
    """
    centres, half = gripper_boxes(gripper, np.asarray(widths, dtype=np.float64))
    corners_tool = centres[:, :, None, :] + _BOX_CORNER_SIGNS * half[:, :, None, :]
    corners = (np.einsum('kij,kbcj->kbci', bin_from_tool[:, :3, :3], corners_tool)
               + bin_from_tool[:, None, None, :3, 3])
    inner = np.array([bin_geometry.size_x / 2, bin_geometry.size_y / 2])
    clearance = (inner - np.abs(corners[..., :2])).min(axis=(1, 2, 3))
    for k in np.flatnonzero(clearance <= 0):
        clearance[k] = _coal_wall_distance(bin_geometry, bin_from_tool[k], centres[k], half[k])
    return clearance


def wall_clearance(bin_geometry: BinGeometry, bin_from_tool: np.ndarray,
                   gripper: GripperGeometry, width: float) -> float:
    """:func:`wall_clearances` of one grasp (``bin_from_tool`` ``float64[4, 4]``), metres."""
    return float(wall_clearances(bin_geometry, np.asarray(bin_from_tool)[None], gripper,
                                 np.array([width]))[0])
