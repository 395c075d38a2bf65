"""Candidate 6-DOF parallel-jaw grasps for one object, before collision checks and scoring."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import math

import numpy as np

from litedet_ros.grasping.config import PlannerConfig
from litedet_ros.grasping.estimation import ObjectEstimate, principal_axes

#: A surface-normal approach closer than this to straight down duplicates the top-down one.
DISTINCT_APPROACH_DEG = 10.0
#: The palm stays at least this far (m) behind the first surface the fingers pass.
PALM_CLEARANCE = 0.01
#: Depth variants closer than this (m) are one.
DISTINCT_DEPTH = 0.005
#: Objects with at least this fraction of their points on one plane count as flat-topped.
FLAT_TOPPED = 0.75
#: Points within this distance (m) of the object's extreme across the closing axis are its sides.
SIDE_BAND = 0.003


@dataclass(frozen=True, eq=False)
class Candidate:
    """One grasp pose before collision checking.

    Attributes:
        pose: ``float64[4, 4]`` planning <- tool transform at closing (tool +z approach, +y
            closing axis), metres.
        width: finger opening, metres.
        central: closeness of the grasp centre to the object centre, in ``[0, 1]``.
        vertical: cosine between the approach and straight down, clipped to ``[0, 1]``.
        approach_kind: ``'top_down'`` or ``'surface_normal'``.
    """

    pose: np.ndarray
    width: float
    central: float
    vertical: float
    approach_kind: str


def approach_directions(estimate: ObjectEstimate, config: PlannerConfig
                        ) -> list[tuple[str, np.ndarray]]:
    """Approach directions to try: straight down, and against the surface normal if distinct.

    The surface-normal approach needs a flat-topped object (``FLAT_TOPPED``): the dominant
    plane of a rounded one is no face to approach.

    Returns:
        ``[(kind, unit approach float64[3])]`` in the planning frame.
    """
    down = -np.asarray(config.up)
    approaches = [('top_down', down)]
    tilt = math.degrees(math.acos(float(np.clip(-estimate.normal @ down, -1.0, 1.0))))
    if DISTINCT_APPROACH_DEG < tilt <= config.max_tilt_deg and \
            estimate.flatness >= FLAT_TOPPED:
        approaches.append(('surface_normal', -estimate.normal))
    return approaches


def _plane_basis(approach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.eye(3)[int(np.argmin(np.abs(approach)))]
    e1 = reference - (reference @ approach) * approach
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(approach, e1)


def _tip_depths(config: PlannerConfig, lateral: np.ndarray, approach: np.ndarray,
                first: float, required: float, flat_topped: bool
                ) -> tuple[list[float], str | None]:
    """Finger-tip depths below the first surface along the approach to try, deepest first, m.

    ``grasp_depth``, ``required``, and with a known bin ``grasp_depth_fraction`` of the distance
    to the floor; only those at least ``required`` deep (the pads then close below the object's
    widest visible section); all within the fingers' reach with the palm ``PALM_CLEARANCE`` off
    the surface and no closer than ``floor_clearance`` to the floor. With a known bin, the tips
    of a grasp on a ``flat_topped`` part go at least ``grasp_depth`` deep (straight sides hold
    at any depth), while a rounded part is only grasped as deep as the fingers go towards
    ``grasp_depth_fraction`` of the way to the floor (its centre of mass may lie low), and not
    at all when ``min_depth_fraction`` of that way is out of reach (standing tall or perched:
    it would slip off).

    Returns:
        ``(depths, reason)``: the depths, and when there is none the rejection reason
        (``too_deep`` beyond the fingers' reach, ``too_low`` at the floor).
    """
    reach = config.gripper.finger_length - PALM_CLEARANCE
    lowest, reason = reach, 'too_deep'
    wanted = [config.grasp_depth]
    if config.bin is not None:
        rotation, origin = config.bin.pose[:3, :3], config.bin.pose[:3, 3]
        down_rate = -(rotation.T @ approach)[2]
        if down_rate > 0:
            height = (rotation.T @ (lateral + first * approach - origin))[2]
            deep = config.grasp_depth_fraction * height / down_rate
            wanted.append(deep)
            floor_limit = (height - config.floor_clearance) / down_rate
            if floor_limit < lowest:
                lowest, reason = floor_limit, 'too_low'
            if not flat_topped and config.min_depth_fraction * height / down_rate > reach:
                return [], 'too_deep'
            required = max(required, min(config.grasp_depth if flat_topped else deep, lowest))
    wanted.append(required)
    depths: list[float] = []
    for depth in sorted((min(d, lowest) for d in wanted), reverse=True):
        if depth >= max(required, config.min_grasp_depth) and \
                (not depths or depths[-1] - depth > DISTINCT_DEPTH):
            depths.append(depth)
    return depths, None if depths else reason


def generate_candidates(estimate: ObjectEstimate, config: PlannerConfig
                        ) -> tuple[list[Candidate], Counter]:
    """Grasp candidates across the object's narrow extent, with yaw and centre variants.

    For each approach direction the points are projected on the plane normal to it; the closing
    axis is the narrow principal axis of that projection, rotated by each yaw offset; the centre
    is the middle of the projection's bounding rectangle, shifted along the long axis by each
    centre offset. The opening is the extent of the points between the finger pads along the
    closing axis plus the margin; the finger tips go beyond the first surface met along the
    approach by each depth of :func:`_tip_depths` (deepest first, preferred on equal scores).

    Args:
        estimate: the object.
        config: planner configuration.

    Returns:
        ``(candidates, rejected)``: kinematically valid candidates, and counts of rejected
        variants by reason (``too_wide``, ``too_deep``, ``too_low``, ``empty_slab``).
    """
    gripper = config.gripper
    up = np.asarray(config.up)
    points = estimate.points
    variants = [(yaw, offset) for yaw in np.radians(config.yaw_offsets_deg)
                for offset in (config.center_offsets if abs(math.cos(yaw)) > 0.5 else (0.0,))]
    yaws, offsets = np.array(variants).T
    cos, sin = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    candidates, rejected = [], Counter()
    flat_topped = estimate.flatness >= FLAT_TOPPED
    for kind, approach in approach_directions(estimate, config):
        e1, e2 = _plane_basis(approach)
        _, axes2 = principal_axes(points @ np.stack([e1, e2], axis=1))
        long_axis = axes2[0, 0] * e1 + axes2[0, 1] * e2
        short_axis = np.cross(approach, long_axis)
        along_long, along_short = points @ long_axis, points @ short_axis
        long_mid = (along_long.max() + along_long.min()) / 2
        short_mid = (along_short.max() + along_short.min()) / 2
        half_length = max((along_long.max() - along_long.min()) / 2, 1e-3)
        # one row per variant: tool x = cos(yaw) long + sin(yaw) short, closing y = z cross x
        rel_long = along_long - (long_mid + offsets * half_length)[:, None]
        rel_short = (along_short - short_mid)[None, :]
        in_slab = np.abs(cos * rel_long + sin * rel_short) <= gripper.finger_width / 2
        across = cos * rel_short - sin * rel_long
        across_max = np.where(in_slab, across, -np.inf).max(axis=1)
        across_min = np.where(in_slab, across, np.inf).min(axis=1)
        along = points @ approach
        first = np.where(in_slab, along, np.inf).min(axis=1)
        # depth of the widest section: mean depth of the points at each extreme across
        sides = np.stack([across >= across_max[:, None] - SIDE_BAND,
                          across <= across_min[:, None] + SIDE_BAND]) & in_slab
        side_depth = (sides * along).sum(axis=2) / np.maximum(sides.sum(axis=2), 1)
        widest = side_depth.mean(axis=0) - first
        required = widest + config.widest_overlap
        widths = across_max - across_min + gripper.width_margin
        vertical = float(np.clip(-(approach @ up), 0.0, 1.0))
        for k, (yaw, offset) in enumerate(variants):
            if in_slab[k].sum() < 3:
                rejected['empty_slab'] += 1
                continue
            if widths[k] > gripper.stroke:
                rejected['too_wide'] += 1
                continue
            c, s = math.cos(yaw), math.sin(yaw)
            shift = (across_max[k] + across_min[k]) / 2
            lateral = ((long_mid + offset * half_length - s * shift) * long_axis
                       + (short_mid + c * shift) * short_axis)
            x_axis, closing = c * long_axis + s * short_axis, c * short_axis - s * long_axis
            if x_axis @ e1 < 0:
                x_axis, closing = -x_axis, -closing
            off_centre = math.hypot(offset * half_length - s * shift, c * shift)
            central = float(np.clip(1 - off_centre / half_length, 0.0, 1.0))
            depths, reason = _tip_depths(config, lateral, approach, first[k], required[k],
                                         flat_topped)
            if reason:
                rejected[reason] += 1
            for depth in depths:
                pose = np.eye(4)
                pose[:3, 0], pose[:3, 1], pose[:3, 2] = x_axis, closing, approach
                pose[:3, 3] = lateral + (first[k] + depth - gripper.tcp_to_tip) * approach
                candidates.append(Candidate(pose=pose, width=float(widths[k]), central=central,
                                            vertical=vertical, approach_kind=kind))
    return candidates, rejected
