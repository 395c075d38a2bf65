"""Candidate 6-DOF parallel-jaw grasps for one object, before collision checks and scoring."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import functools
import math

import numba
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
class Candidates:
    """Grasp poses of one object before collision checking, one row each.

    Attributes:
        poses: ``float64[K, 4, 4]`` planning <- tool transforms at closing (tool +z approach,
            +y closing axis), metres.
        widths: ``float64[K]`` finger openings, metres.
        central: ``float64[K]`` closeness of the grasp centre to the object centre, in
            ``[0, 1]``.
        vertical: ``float64[K]`` cosine between the approach and straight down, clipped to
            ``[0, 1]``.
        aligned: ``float64[K]`` ``1 - |yaw offset| / 90 deg`` of the closing axis from the
            measured narrow axis, in ``[0, 1]``; 1 for every yaw of a footprint that is not
            ``ELONGATED``.
        approach: ``int64[K]`` index of the row's approach in ``kinds``.
        kinds: the approach kinds, ``'top_down'``, ``'surface_normal'`` or
            ``'wall_tilt_<axis><sign>'`` (see :func:`approach_directions`).
        fallback: ``bool[K]``: the row's yaw is one of ``fallback_yaw_offsets_deg``.
    """

    poses: np.ndarray
    widths: np.ndarray
    central: np.ndarray
    vertical: np.ndarray
    aligned: np.ndarray
    approach: np.ndarray
    kinds: tuple[str, ...]
    fallback: np.ndarray

    def __len__(self) -> int:
        return len(self.widths)


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
    """Two unit vectors spanning the plane normal to the unit ``approach``, right-handed.

    Shared arrays: most approaches recur (straight down, towards a wall) for every part and
    look, and are made once (do not modify them).
    """
    return _plane_basis(tuple(map(float, approach)))


@functools.lru_cache(maxsize=64)
def _plane_basis(approach: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    approach = np.array(approach)
    reference = np.eye(3)[int(np.argmin(np.abs(approach)))]
    e1 = reference - (reference @ approach) * approach
    e1 /= np.linalg.norm(e1)
    return e1, cross3(approach, e1)


#: Rejection reasons of :func:`_approach_candidates`, by code.
REJECTIONS = ('empty_slab', 'too_wide', 'too_deep', 'too_low')
_EMPTY_SLAB, _TOO_WIDE, _TOO_DEEP, _TOO_LOW = range(4)


@numba.njit(cache=True)
def _tip_depths(depths: np.ndarray, height: float, down_rate: float, required: float,
                flat_topped: bool, to_underside: float, limits: tuple) -> tuple[int, int]:
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
    (``to_underside``). Compiled: it runs for every variant of every approach.

    Args:
        depths: ``float64[3]`` output, filled with the depths from the start.
        height: height of the first surface above the bin floor, m; NaN without a bin below
            the approach.
        down_rate: descent along the bin's up axis per metre of approach.
        required: shallowest depth that closes below the widest visible section, m.
        flat_topped: the object has a dominant flat top.
        to_underside: distance along the approach from the first surface to the object's
            estimated underside (see :func:`generate_candidates`), m.
        limits: :func:`_depth_limits` of the planner configuration.

    Returns:
        ``(count, reason)``: how many depths were written, and when none the rejection code
        (``_TOO_DEEP`` beyond the fingers' reach, ``_TOO_LOW`` at the floor), else -1.
    """
    (reach, past_widest, grasp_depth, grasp_depth_fraction, min_depth_fraction,
     floor_clearance, widest_overlap, min_grasp_depth) = limits
    lowest, reason = reach, _TOO_DEEP
    wanted, n_wanted = np.empty(3), 1
    wanted[0] = grasp_depth
    if not np.isnan(height):
        to_support = height / down_rate
        if not flat_topped:
            to_support = min(to_support, to_underside)
            if _beyond_reach(to_support, min_depth_fraction, reach):
                return 0, _TOO_DEEP
        deep = grasp_depth_fraction * to_support
        wanted[n_wanted], n_wanted = deep, n_wanted + 1
        floor_limit = (height - floor_clearance) / down_rate
        if floor_limit < lowest:
            lowest, reason = floor_limit, _TOO_LOW
            # a low part (a ring lying flat): the pads close as far below its widest section
            # as the floor lets them, if by MIN_PAST_WIDEST at least
            if required - widest_overlap + past_widest <= lowest < required:
                required = lowest
        required = max(required, min(grasp_depth if flat_topped else deep, lowest))
    wanted[n_wanted], n_wanted = required, n_wanted + 1
    count = 0
    for depth in np.sort(np.minimum(wanted[:n_wanted], lowest))[::-1]:
        if depth >= max(required, min_grasp_depth) and \
                (count == 0 or depths[count - 1] - depth > DISTINCT_DEPTH):
            depths[count] = depth
            count += 1
    return count, -1 if count else reason


@numba.njit('UniTuple(float64[:], 5)(float64[:], float64[:], float64[:], float64[:], '
            'float64, float64[:], float64[:], float64)', cache=True)
def _slab_sections(along_long: np.ndarray, along_short: np.ndarray, along: np.ndarray,
                   centres_long: np.ndarray, short_mid: float, cos: np.ndarray,
                   sin: np.ndarray, half_finger: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What each variant's fingers would close on: the object points in the slab they sweep.

    A variant's closing axis is ``cos`` along the long axis plus ``sin`` along the short one
    turned by 90 deg; its slab holds the points within ``half_finger`` of the plane through its
    centre (``centres_long`` on the long axis, ``short_mid`` on the short one) normal to its
    tool x axis. One pass over the points per variant (compiled: the numpy form of it built
    variants x points arrays five times over).

    Args:
        along_long: ``float64[N]`` object points on the long axis, m.
        along_short: ``float64[N]`` ... on the short axis, m.
        along: ``float64[N]`` ... along the approach, m.
        centres_long: ``float64[V]`` variant centres on the long axis, m.
        short_mid: centre on the short axis, m.
        cos: ``float64[V]`` cosine of each variant's yaw.
        sin: ``float64[V]`` sine of each variant's yaw.
        half_finger: half the finger width, m.

    Returns:
        ``float64[V]`` each: the points in the slab (a count), their largest and smallest
        coordinate across (along the closing axis), the first of them along the approach, and
        the mean depth along the approach of the points within ``SIDE_BAND`` of either extreme
        across (the depth of the widest section); all 0 for a variant with an empty slab.
    """
    variants = len(cos)
    counts, high, low = np.zeros(variants), np.zeros(variants), np.zeros(variants)
    first, side_depth = np.zeros(variants), np.zeros(variants)
    for k in range(variants):
        c, s, centre = cos[k], sin[k], centres_long[k]
        n, top, bottom, near = 0, -np.inf, np.inf, np.inf
        for i in range(len(along)):
            rel_long, rel_short = along_long[i] - centre, along_short[i] - short_mid
            if abs(c * rel_long + s * rel_short) <= half_finger:
                across = c * rel_short - s * rel_long
                n += 1
                top, bottom = max(top, across), min(bottom, across)
                near = min(near, along[i])
        if n == 0:
            continue
        top_sum, top_n, bottom_sum, bottom_n = 0.0, 0, 0.0, 0
        for i in range(len(along)):
            rel_long, rel_short = along_long[i] - centre, along_short[i] - short_mid
            if abs(c * rel_long + s * rel_short) <= half_finger:
                across = c * rel_short - s * rel_long
                if across >= top - SIDE_BAND:
                    top_sum += along[i]
                    top_n += 1
                if across <= bottom + SIDE_BAND:
                    bottom_sum += along[i]
                    bottom_n += 1
        counts[k], high[k], low[k], first[k] = n, top, bottom, near
        side_depth[k] = (top_sum / top_n + bottom_sum / bottom_n) / 2
    return counts, high, low, first, side_depth


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
    return _beyond_reach(float(min(heights.min(), np.ptp(heights))),
                         config.min_depth_fraction, _depth_limits(config)[0])


@numba.njit('boolean(float64, float64, float64)', cache=True)
def _beyond_reach(to_support: float, min_depth_fraction: float, reach: float) -> bool:
    """Tell whether a rounded part is too tall to be grasped deep enough (see ``_tip_depths``).

    Args:
        to_support: distance along the approach from the part's first surface to what it rests
            on, m.
        min_depth_fraction: the planner configuration's.
        reach: the fingers' reach, m (:func:`_depth_limits`).

    Returns:
        True when ``min_depth_fraction`` of ``to_support`` is beyond the fingers' reach.
    """
    return min_depth_fraction * to_support > reach


def _depth_limits(config: PlannerConfig) -> tuple[float, ...]:
    """The tip depth settings in the order :func:`_tip_depths` unpacks them.

    The fingers' reach (their length less ``PALM_CLEARANCE``), ``MIN_PAST_WIDEST``, then the
    configuration's fields.
    """
    return (config.gripper.finger_length - PALM_CLEARANCE, MIN_PAST_WIDEST, config.grasp_depth,
            config.grasp_depth_fraction, config.min_depth_fraction, config.floor_clearance,
            config.widest_overlap, config.min_grasp_depth)


@numba.njit('Tuple((float64[:, :, :], float64[:], float64[:], int64[:], boolean, int64[:], '
            'int64[:]))(float64[:, ::1], float64[::1], float64[::1], float64[::1], float64[::1], '
            'float64[::1], float64[::1], float64[::1], int64, boolean, float64[::1], '
            'float64[::1], UniTuple(float64, 5), UniTuple(float64, 8))', cache=True)
def _approach_candidates(points: np.ndarray, approach: np.ndarray, e1: np.ndarray,
                         long_axis: np.ndarray, short_axis: np.ndarray, offsets: np.ndarray,
                         cos: np.ndarray, sin: np.ndarray, primary: int, flat_topped: bool,
                         bin_up: np.ndarray, bin_origin: np.ndarray, gripper: tuple,
                         limits: tuple) -> tuple:
    """The candidates of one approach: every variant's pose at each of its tip depths.

    The body of :func:`generate_candidates` for one approach, compiled: a variant's closing
    axis is its yaw off the ``long_axis`` towards the ``short_axis``, its centre the middle of
    the points' extent shifted by its offset (a fraction of the half length) along the long
    axis and centred across on the points in its finger slab (:func:`_slab_sections`).

    Args:
        points: ``float64[N, 3]`` object points, planning frame, m.
        approach: ``float64[3]`` unit approach direction.
        e1: ``float64[3]`` the first vector of :func:`plane_basis`; a tool x axis points along
            it (two yaws 180 deg apart are one grasp).
        long_axis: ``float64[3]`` the long principal axis of the points seen along
            ``approach``, normal to it, unit.
        short_axis: ``float64[3]`` ``approach`` cross ``long_axis``.
        offsets: ``float64[V]`` centre offsets of the variants.
        cos: ``float64[V]`` cosine of each variant's yaw.
        sin: ``float64[V]`` sine of each variant's yaw.
        primary: the first ``primary`` variants are of ``yaw_offsets_deg``; only their
            rejections are counted.
        flat_topped: as :func:`_tip_depths`.
        bin_up: ``float64[3]`` the bin's up axis; empty without a bin.
        bin_origin: ``float64[3]`` the bin's origin (its floor's centre); empty without a bin.
        gripper: ``(finger_width, width_margin, stroke, min_width_margin, tcp_to_tip)``, m.
        limits: as :func:`_tip_depths`.

    Returns:
        ``(poses float64[M, 4, 4], widths float64[M], central float64[M], rows int64[M],
        elongated, rejected int64[4], first int64[4])``: one row per candidate, deepest first
        within a variant (``rows``: the index of its variant); whether the points' extent along
        the long axis exceeds the short one by ``ELONGATED``; the primary variants without a
        candidate by reason code (:data:`REJECTIONS`), and the first such variant of each reason
        (V where none), which orders the reasons as met (the tie-break of
        ``Counter.most_common``).
    """
    finger_width, width_margin, stroke, min_width_margin, tcp_to_tip = gripper
    widest_overlap = limits[6]  # see _depth_limits
    along_long, along_short, along = points @ long_axis, points @ short_axis, points @ approach
    long_low, long_high = along_long.min(), along_long.max()
    short_low, short_high = along_short.min(), along_short.max()
    long_mid, short_mid = (long_high + long_low) / 2, (short_high + short_low) / 2
    half_length = max((long_high - long_low) / 2, 1e-3)
    elongated = half_length >= ELONGATED * (short_high - short_low) / 2
    centres = long_mid + offsets * half_length
    counts, across_max, across_min, first, side_depth = _slab_sections(
        along_long, along_short, along, centres, short_mid, cos, sin, finger_width / 2)
    deepest = 2 * along.max() - along.min()
    down_rate = -(bin_up @ approach) if len(bin_up) else 0.0
    variants = len(cos)
    poses = np.zeros((3 * variants, 4, 4))
    widths, central = np.empty(3 * variants), np.empty(3 * variants)
    rows = np.empty(3 * variants, dtype=np.int64)
    rejected = np.zeros(len(REJECTIONS), dtype=np.int64)
    first_rejected = np.full(len(REJECTIONS), variants, dtype=np.int64)
    depths, total = np.empty(3), 0
    for k in range(variants):
        c, s = cos[k], sin[k]
        shift = (across_max[k] + across_min[k]) / 2
        lateral = (centres[k] - s * shift) * long_axis + (short_mid + c * shift) * short_axis
        extent = across_max[k] - across_min[k]
        if counts[k] < 3:
            count, reason = 0, _EMPTY_SLAB
        elif extent + min_width_margin > stroke:
            count, reason = 0, _TOO_WIDE
        else:
            height = np.nan
            if down_rate > 0:
                height = (lateral + first[k] * approach - bin_origin) @ bin_up
            count, reason = _tip_depths(depths, height, down_rate,
                                        side_depth[k] - first[k] + widest_overlap, flat_topped,
                                        deepest - first[k], limits)
        if count == 0:
            if k < primary:
                rejected[reason] += 1
                first_rejected[reason] = min(first_rejected[reason], k)
            continue
        x_axis = c * long_axis + s * short_axis
        closing = c * short_axis - s * long_axis
        if x_axis @ e1 < 0:
            x_axis, closing = -x_axis, -closing
        for depth in depths[:count]:
            poses[total, :3, 0], poses[total, :3, 1] = x_axis, closing
            poses[total, :3, 2] = approach
            poses[total, :3, 3] = lateral + (first[k] + depth - tcp_to_tip) * approach
            poses[total, 3, 3] = 1.0
            widths[total] = min(extent + width_margin, stroke)
            central[total] = min(max(1 - math.hypot(offsets[k] * half_length - s * shift,
                                                    c * shift) / half_length, 0.0), 1.0)
            rows[total] = k
            total += 1
    return (poses[:total], widths[:total], central[:total], rows[:total], elongated, rejected,
            first_rejected)


def generate_candidates(estimate: ObjectEstimate, config: PlannerConfig, fallback: bool = False
                        ) -> tuple[Candidates, Counter]:
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
    points = np.ascontiguousarray(estimate.points)
    offsets, cos, sin, aligned, primary = _yaw_variants(
        config.yaw_offsets_deg, config.fallback_yaw_offsets_deg if fallback else (),
        config.center_offsets)
    limits = _depth_limits(config)
    geometry = (gripper.finger_width, gripper.width_margin, gripper.stroke,
                gripper.min_width_margin, gripper.tcp_to_tip)
    bin_up, bin_origin = ((config.bin.pose[:3, 2].copy(), config.bin.pose[:3, 3].copy())
                          if config.bin is not None else (np.zeros(0), np.zeros(0)))
    flat_topped = bool(estimate.flatness >= FLAT_TOPPED or estimate.rim)  # both straight-sided
    kinds, columns, rejected = [], [], Counter()
    if not flat_topped and _out_of_reach(points, config):
        return _stack(kinds, columns), Counter(too_deep=primary)
    for kind, approach in approach_directions(estimate, config):
        e1, e2 = plane_basis(approach)
        _, axes2 = principal_axes(points @ np.stack([e1, e2], axis=1))
        long_axis = axes2[0, 0] * e1 + axes2[0, 1] * e2
        poses, widths, central, rows, elongated, rejections, first_rejected = \
            _approach_candidates(points, approach, e1, long_axis, cross3(approach, long_axis),
                                 offsets, cos, sin, primary, flat_topped, bin_up, bin_origin,
                                 geometry, limits)
        for code in np.argsort(first_rejected, kind='stable')[:np.count_nonzero(rejections)]:
            rejected[REJECTIONS[code]] += int(rejections[code])
        if not len(rows):
            continue
        vertical = float(np.clip(-(approach @ up), 0.0, 1.0))
        columns.append((poses, widths, central, np.full(len(rows), vertical),
                        aligned[rows] if elongated else np.ones(len(rows)),
                        np.full(len(rows), len(kinds)), rows >= primary))
        kinds.append(kind)
    return _stack(kinds, columns), rejected


@functools.lru_cache(maxsize=8)
def _yaw_variants(yaw_offsets_deg: tuple[float, ...], fallback_yaw_offsets_deg: tuple[float, ...],
                  center_offsets: tuple[float, ...]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The (yaw, centre offset) variants of every part, made once per setting (shared arrays).

    A yaw within 60 deg of the long axis takes every centre offset, others the centre only.

    Returns:
        ``(offsets, cos, sin, aligned, primary)``: per variant its centre offset, the cosine
        and sine of its yaw and ``1 - |yaw| / 90 deg`` (folded to a half turn), ``float64[V]``
        each; the variants of ``yaw_offsets_deg`` come first, ``primary`` of them.
    """
    yaw_sets = (yaw_offsets_deg, fallback_yaw_offsets_deg)
    variants = [(yaw, offset, tier) for tier, yaw_set in enumerate(yaw_sets)
                for yaw in np.radians(yaw_set)
                for offset in (center_offsets if abs(math.cos(yaw)) > 0.5 else (0.0,))]
    yaws, offsets, tiers = np.array(variants).T.copy()  # contiguous rows for the kernel
    aligned = 1 - np.abs((yaws + math.pi / 2) % math.pi - math.pi / 2) / (math.pi / 2)
    return offsets, np.cos(yaws), np.sin(yaws), aligned, int((tiers == 0).sum())


def _stack(kinds: list[str], columns: list[tuple[np.ndarray, ...]]) -> Candidates:
    """:class:`Candidates` from the columns of each approach in ``kinds``."""
    if not columns:
        return Candidates(np.zeros((0, 4, 4)), *np.zeros((4, 0)), np.zeros(0, dtype=np.int64),
                          (), np.zeros(0, dtype=bool))
    poses, widths, central, vertical, aligned, approach, fallback = (
        np.concatenate(column) for column in zip(*columns))
    return Candidates(poses, widths, central, vertical, aligned, approach, tuple(kinds), fallback)
