"""Candidate 6-DOF parallel-jaw grasps for one object, before collision checks and scoring."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import math

import numpy as np

from litedet_ros.grasping.config import PlannerConfig
from litedet_ros.grasping.estimation import ObjectEstimate, cross3, principal_axes

#: A surface-normal approach closer than this to straight down duplicates the top-down one.
DISTINCT_APPROACH_DEG = 10.0
#: The palm stays at least this far (m) behind the first surface the fingers pass.
PALM_CLEARANCE = 0.01
#: Below the floor clearance, the pads may close this little (m) past the widest section.
MIN_PAST_WIDEST = 0.002
#: Depth variants closer than this (m) are one.
DISTINCT_DEPTH = 0.005
#: Objects with at least this fraction of their points on one plane count as flat-topped.
FLAT_TOPPED = 0.75
#: Points within this distance (m) of the object's extreme across the closing axis are its sides.
SIDE_BAND = 0.003
#: A footprint whose long extent exceeds its short one by this ratio has a defined narrow axis;
#: on rounder ones no yaw is preferred.
ELONGATED = 1.15


@dataclass(frozen=True, eq=False)
class Candidate:
    """One grasp pose before collision checking.

    Attributes:
        pose: ``float64[4, 4]`` planning <- tool transform at closing (tool +z approach, +y
            closing axis), metres.
        width: finger opening, metres.
        central: closeness of the grasp centre to the object centre, in ``[0, 1]``.
        vertical: cosine between the approach and straight down, clipped to ``[0, 1]``.
        aligned: ``1 - |yaw offset| / 90 deg`` of the closing axis from the measured narrow
            axis, in ``[0, 1]``; 1 for every yaw of a footprint that is not ``ELONGATED``.
        approach_kind: ``'top_down'``, ``'surface_normal'`` or ``'wall_tilt_<axis><sign>'``
            (see :func:`approach_directions`).
        fallback: its yaw is one of ``fallback_yaw_offsets_deg``.
    """

    pose: np.ndarray
    width: float
    central: float
    vertical: float
    aligned: float
    approach_kind: str
    fallback: bool = False


def approach_directions(estimate: ObjectEstimate, config: PlannerConfig
                        ) -> list[tuple[str, np.ndarray]]:
    """Approach directions to try: straight down, along the surface normal, towards near walls.

    Besides straight down: against the surface normal if distinct, and tilted towards each bin
    wall the object lies near. The surface-normal approach needs a flat-topped object
    (``FLAT_TOPPED``): the dominant plane of a rounded one is no face to approach. A
    wall-tilted approach (``wall_tilt_deg`` towards a wall within ``wall_tilt_distance`` of the
    centroid) keeps the palm and wrist, wider than the fingers, off that wall.

    Returns:
        ``[(kind, unit approach float64[3])]`` in the planning frame; kinds are distinct.
    """
    down = -np.asarray(config.up)
    approaches = [('top_down', down)]
    tilt = math.degrees(math.acos(float(np.clip(-estimate.normal @ down, -1.0, 1.0))))
    if DISTINCT_APPROACH_DEG < tilt <= config.max_tilt_deg and \
            estimate.flatness >= FLAT_TOPPED:
        approaches.append(('surface_normal', -estimate.normal))
    bin_geometry = config.bin
    if bin_geometry is None or config.wall_tilt_deg <= 0:
        return approaches
    rotation, origin = bin_geometry.pose[:3, :3], bin_geometry.pose[:3, 3]
    centroid = rotation.T @ (estimate.centroid - origin)
    angle = math.radians(config.wall_tilt_deg)
    for axis, half in ((0, bin_geometry.size_x / 2), (1, bin_geometry.size_y / 2)):
        for sign in (1.0, -1.0):
            if half - sign * centroid[axis] < config.wall_tilt_distance:
                toward = sign * rotation[:, axis]
                approaches.append((f'wall_tilt_{"xy"[axis]}{"+" if sign > 0 else "-"}',
                                   math.cos(angle) * down + math.sin(angle) * toward))
    return approaches


def plane_basis(approach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane normal to the unit ``approach``, right-handed."""
    reference = np.eye(3)[int(np.argmin(np.abs(approach)))]
    e1 = reference - (reference @ approach) * approach
    e1 /= np.linalg.norm(e1)
    return e1, cross3(approach, e1)


def _tip_depths(config: PlannerConfig, height: float | None, down_rate: float,
                required: float, flat_topped: bool, to_underside: float
                ) -> tuple[list[float], str | None]:
    """Finger-tip depths below the first surface along the approach to try, deepest first, m.

    ``grasp_depth``, ``required``, and with a known bin ``grasp_depth_fraction`` of the distance to
    the floor; only those at least ``required`` deep (the pads then close below the object's widest
    visible section; on a part too low for ``widest_overlap``, at least ``MIN_PAST_WIDEST`` below
    it); all within the fingers' reach with the palm ``PALM_CLEARANCE`` off the surface and no
    closer than ``floor_clearance`` to the floor. With a known bin, the tips of a grasp on a
    ``flat_topped`` part go at least ``grasp_depth`` deep (straight sides hold at any depth), while
    a rounded part is only grasped as deep as the fingers go towards ``grasp_depth_fraction`` of
    the way to what it rests on (its centre of mass may lie low), and not at all when
    ``min_depth_fraction`` of that way is out of reach (standing tall: it would slip off). A
    rounded part rests on the floor or, in a pile, no lower than its estimated underside
    (``to_underside``).

    Args:
        config: planner configuration.
        height: height of the first surface above the bin floor, m; None without a bin below
            the approach.
        down_rate: descent along the bin's up axis per metre of approach.
        required: shallowest depth that closes below the widest visible section, m.
        flat_topped: the object has a dominant flat top.
        to_underside: distance along the approach from the first surface to the object's
            estimated underside (see :func:`generate_candidates`), m.

    Returns:
        ``(depths, reason)``: the depths, and when there is none the rejection reason
        (``too_deep`` beyond the fingers' reach, ``too_low`` at the floor).
    """
    reach = config.gripper.finger_length - PALM_CLEARANCE
    lowest, reason = reach, 'too_deep'
    wanted = [config.grasp_depth]
    if height is not None:
        to_support = height / down_rate
        if not flat_topped:
            to_support = min(to_support, to_underside)
            if _beyond_reach(to_support, config):
                return [], 'too_deep'
        deep = config.grasp_depth_fraction * to_support
        wanted.append(deep)
        floor_limit = (height - config.floor_clearance) / down_rate
        if floor_limit < lowest:
            lowest, reason = floor_limit, 'too_low'
            # a low part (a ring lying flat): the pads close as far below its widest section
            # as the floor lets them, if by MIN_PAST_WIDEST at least
            if required - config.widest_overlap + MIN_PAST_WIDEST <= lowest < required:
                required = lowest
        required = max(required, min(config.grasp_depth if flat_topped else deep, lowest))
    wanted.append(required)
    depths: list[float] = []
    for depth in sorted((min(d, lowest) for d in wanted), reverse=True):
        if depth >= max(required, config.min_grasp_depth) and \
                (not depths or depths[-1] - depth > DISTINCT_DEPTH):
            depths.append(depth)
    return depths, None if depths else reason


def _out_of_reach(points: np.ndarray, config: PlannerConfig) -> bool:
    """Tell whether :func:`_tip_depths` rejects every top-down variant of a rounded part.

    Only top-down approaches reach a rounded part; along the bin's up axis, each variant's first
    surface lies at least as high as the part's lowest visible point, and at least the part's
    visible extent above its estimated underside: when even the nearer of the floor and that
    extent is too far for ``min_depth_fraction``, every variant is ``too_deep``.

    Args:
        points: ``float[N, 3]`` object points, planning frame, m.
        config: planner configuration.

    Returns:
        True when a bin is known, its up axis is the planning frame's, and both the part's
        lowest point's height above the floor and its visible extent exceed the fingers' reach
        over ``min_depth_fraction``.
    """
    if config.bin is None:
        return False
    bin_up, origin = config.bin.pose[:3, 2], config.bin.pose[:3, 3]
    if bin_up @ np.asarray(config.up) < 1 - 1e-9:
        return False
    heights = (points - origin) @ bin_up
    return _beyond_reach(float(min(heights.min(), np.ptp(heights))), config)


def _beyond_reach(to_support: float, config: PlannerConfig) -> bool:
    """Tell whether a rounded part is too tall to be grasped deep enough (see ``_tip_depths``).

    Args:
        to_support: distance along the approach from the part's first surface to what it rests
            on, m.
        config: planner configuration.

    Returns:
        True when ``min_depth_fraction`` of ``to_support`` is beyond the fingers' reach.
    """
    return config.min_depth_fraction * to_support > config.gripper.finger_length - PALM_CLEARANCE


def generate_candidates(estimate: ObjectEstimate, config: PlannerConfig, fallback: bool = False
                        ) -> tuple[list[Candidate], Counter]:
    """Grasp candidates across the object's narrow extent, with yaw and centre variants.

    For each approach direction the points are projected on the plane normal to it; the closing
    axis is the narrow principal axis of that projection, rotated by each yaw offset; the centre
    is the middle of the projection's bounding rectangle, shifted along the long axis by each
    centre offset. The opening is the extent of the points between the finger pads along the
    closing axis plus the margin; the finger tips go beyond the first surface met along the
    approach by each depth of :func:`_tip_depths` (deepest first, preferred on equal scores).
    The opening is the extent plus ``width_margin``, at most the stroke; an extent within
    ``min_width_margin`` of the stroke is too wide. A rounded part seen from above shows at
    least its upper half, so its underside lies at most its visible extent along the approach
    below its deepest visible point. A rounded part out of reach however it is grasped
    (:func:`_out_of_reach`) gets all its variants rejected as ``too_deep`` at once.

    Args:
        estimate: the object.
        config: planner configuration.
        fallback: also the variants of ``fallback_yaw_offsets_deg`` (marked ``fallback``), in
            the same pass over the approaches: they share everything but their yaws.

    Returns:
        ``(candidates, rejected)``: kinematically valid candidates, and counts of rejected
        variants of ``yaw_offsets_deg`` by reason (``too_wide``, ``too_deep``, ``too_low``,
        ``empty_slab``).
    """
    gripper = config.gripper
    up = np.asarray(config.up)
    points = estimate.points
    yaw_sets = (config.yaw_offsets_deg, config.fallback_yaw_offsets_deg if fallback else ())
    variants = [(yaw, offset, tier) for tier, yaw_set in enumerate(yaw_sets)
                for yaw in np.radians(yaw_set)
                for offset in (config.center_offsets if abs(math.cos(yaw)) > 0.5 else (0.0,))]
    yaws, offsets, tiers = np.array(variants).T
    primary = int((tiers == 0).sum())
    aligned = 1 - np.abs((yaws + math.pi / 2) % math.pi - math.pi / 2) / (math.pi / 2)
    cos, sin = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    flat_topped = estimate.flatness >= FLAT_TOPPED or estimate.rim  # both straight-sided
    if not flat_topped and _out_of_reach(points, config):
        return [], Counter(too_deep=primary)
    candidates, rejected = [], Counter()
    for kind, approach in approach_directions(estimate, config):
        e1, e2 = plane_basis(approach)
        _, axes2 = principal_axes(points @ np.stack([e1, e2], axis=1))
        long_axis = axes2[0, 0] * e1 + axes2[0, 1] * e2
        short_axis = cross3(approach, long_axis)
        along_long, along_short = points @ long_axis, points @ short_axis
        long_low, long_high = along_long.min(), along_long.max()
        short_low, short_high = along_short.min(), along_short.max()
        long_mid, short_mid = (long_high + long_low) / 2, (short_high + short_low) / 2
        half_length = max((long_high - long_low) / 2, 1e-3)
        elongated = half_length >= ELONGATED * (short_high - short_low) / 2
        # one row per variant: tool x = cos(yaw) long + sin(yaw) short, closing y = z cross x
        rel_long = along_long - (long_mid + offsets * half_length)[:, None]
        rel_short = (along_short - short_mid)[None, :]
        in_slab = np.abs(cos * rel_long + sin * rel_short) <= gripper.finger_width / 2
        across = cos * rel_short - sin * rel_long
        across_max = np.where(in_slab, across, -np.inf).max(axis=1)
        across_min = np.where(in_slab, across, np.inf).min(axis=1)
        along = points @ approach
        first = np.where(in_slab, along, np.inf).min(axis=1)
        # a variant with no point in its slab is rejected below (empty_slab); zeros instead of
        # its infinities keep the arithmetic on it quiet (no NaN warnings)
        empty = ~in_slab.any(axis=1)
        across_max[empty] = across_min[empty] = first[empty] = 0.0
        to_underside = 2 * along.max() - along.min() - first
        # depth of the widest section: mean depth of the points at each extreme across
        sides = np.stack([across >= across_max[:, None] - SIDE_BAND,
                          across <= across_min[:, None] + SIDE_BAND]) & in_slab
        side_depth = (sides * along).sum(axis=2) / np.maximum(sides.sum(axis=2), 1)
        widest = side_depth.mean(axis=0) - first
        required = widest + config.widest_overlap
        extents = across_max - across_min
        widths = np.minimum(extents + gripper.width_margin, gripper.stroke)
        vertical = float(np.clip(-(approach @ up), 0.0, 1.0))
        c, s = cos[:, 0], sin[:, 0]
        shift = (across_max + across_min) / 2
        lateral = (np.outer(long_mid + offsets * half_length - s * shift, long_axis)
                   + np.outer(short_mid + c * shift, short_axis))
        x_axes = np.outer(c, long_axis) + np.outer(s, short_axis)
        closings = np.outer(c, short_axis) - np.outer(s, long_axis)
        flip = np.where(x_axes @ e1 < 0, -1.0, 1.0)[:, None]
        x_axes, closings = x_axes * flip, closings * flip
        central = np.clip(1 - np.hypot(offsets * half_length - s * shift, c * shift)
                          / half_length, 0.0, 1.0)
        heights, down_rate = [None] * len(variants), 0.0
        if config.bin is not None:
            rotation, origin = config.bin.pose[:3, :3], config.bin.pose[:3, 3]
            down_rate = float(-(rotation[:, 2] @ approach))
            if down_rate > 0:
                heights = ((lateral + first[:, None] * approach - origin)
                           @ rotation[:, 2]).tolist()
        chosen, chosen_depths = [], []
        for k, (slab, extent, height, need, underside) in enumerate(zip(
                in_slab.sum(axis=1).tolist(), extents.tolist(), heights, required.tolist(),
                to_underside.tolist())):
            if slab < 3:
                reason, depths = 'empty_slab', []
            elif extent + gripper.min_width_margin > gripper.stroke:
                reason, depths = 'too_wide', []
            else:
                depths, reason = _tip_depths(config, height, down_rate, need, flat_topped,
                                             underside)
            if reason and k < primary:
                rejected[reason] += 1
            chosen.extend([k] * len(depths))
            chosen_depths.extend(depths)
        if not chosen:
            continue
        poses = np.zeros((len(chosen), 4, 4))
        poses[:, 3, 3] = 1.0
        poses[:, :3, 0], poses[:, :3, 1] = x_axes[chosen], closings[chosen]
        poses[:, :3, 2] = approach
        poses[:, :3, 3] = lateral[chosen] + np.outer(
            first[chosen] + np.array(chosen_depths) - gripper.tcp_to_tip, approach)
        candidates.extend(
            Candidate(pose=pose, width=float(widths[k]), central=float(central[k]),
                      vertical=vertical, aligned=float(aligned[k]) if elongated else 1.0,
                      approach_kind=kind, fallback=k >= primary)
            for pose, k in zip(poses, chosen))
    return candidates, rejected
