"""Sections of the rim around a hole (a ring lying flat, an upright mug), to grasp across it.

A part with a hole the inner finger fits in can be held by its rim alone, one finger in the
hole: where the part lies against a wall or a neighbour, the side of the rim facing free space
is often the only place the hand fits, and a mug too tall to grasp around its body can be held
by its wall. The planner tries these grasps for a part only when its whole-part grasps are
refused (:meth:`~.planner.GraspPlanner._grasps_of`); the collision checks decide whether the
finger fits in the hole as deep as the grasp goes.
"""

from __future__ import annotations

from dataclasses import replace
import math

import numpy as np

from litedet_ros.grasping.candidates import plane_basis
from litedet_ros.grasping.estimation import ObjectEstimate, percentile, principal_axes

#: Angular sectors of the rim, each a grasp section of its own.
RIM_SECTIONS = 8
#: The rim must show in ``MIN_RIM_COVERAGE`` of ``COVERAGE_DIRECTIONS`` directions around the
#: hole (a neighbour may hide the rest).
COVERAGE_DIRECTIONS, MIN_RIM_COVERAGE = 12, 9
#: Smallest free radius of the hole, m: the inner finger (22 x 12 mm) fits within it.
MIN_HOLE_RADIUS = 0.013
#: Largest fitted rim radius, m (beyond it the hand grasps across the part, not its rim).
MAX_RIM_RADIUS = 0.08
#: Fewest points of a section worth planning.
MIN_SECTION_POINTS = 10


def rim_sections(estimate: ObjectEstimate, up: np.ndarray, depth: float
                 ) -> list[ObjectEstimate]:
    """The sections of the part's rim around a hole, empty when it shows none.

    The rim is the part's points within ``depth`` of its top along ``up``. Seen along ``up``, a
    circle is fitted to them (least squares, algebraic); the part has a hole when none of them
    lies within ``MIN_HOLE_RADIUS`` of the centre nor within half the fitted radius (what the
    hole shows lies deeper: the floor, a mug's inside), and they surround the centre
    (``MIN_RIM_COVERAGE``). Each of ``RIM_SECTIONS`` sectors of the rim then becomes an estimate
    of its own (``rim`` set; normal, flatness and detection index of the part), whose narrow
    axis lies across the rim.

    Args:
        estimate: the part.
        up: ``float[3]`` unit up direction of the planning frame.
        depth: how far below the part's top the rim reaches, m (the grasp depth).

    Returns:
        The sections with at least ``MIN_SECTION_POINTS`` points, in angular order.
    """
    up = np.asarray(up, dtype=np.float64)
    points = estimate.points[estimate.points @ up >= estimate.top_height - depth]
    if len(points) < MIN_SECTION_POINTS:
        return []
    flat = points @ np.stack(plane_basis(up), axis=1)  # seen along up
    design = np.column_stack([2 * flat, np.ones(len(flat))])
    (cx, cy, c), *_ = np.linalg.lstsq(design, (flat ** 2).sum(axis=1), rcond=None)
    radius_sq = c + cx * cx + cy * cy
    if radius_sq <= 0:
        return []
    radius = math.sqrt(radius_sq)
    offsets = flat - (cx, cy)
    distances = np.hypot(offsets[:, 0], offsets[:, 1])
    if radius > MAX_RIM_RADIUS or distances.min() < max(MIN_HOLE_RADIUS, radius / 2):
        return []
    angles = np.arctan2(offsets[:, 1], offsets[:, 0]) % (2 * math.pi)
    shown = np.unique((angles * COVERAGE_DIRECTIONS / (2 * math.pi)).astype(int))
    if len(shown) < MIN_RIM_COVERAGE:
        return []
    sectors = (angles * RIM_SECTIONS / (2 * math.pi)).astype(int) % RIM_SECTIONS
    sections = []
    for sector in range(RIM_SECTIONS):
        section = points[sectors == sector]
        if len(section) < MIN_SECTION_POINTS:
            continue
        centroid, axes = principal_axes(section)
        spans = section @ axes.T
        sections.append(replace(estimate, points=section, centroid=centroid, axes=axes,
                                extents=spans.max(axis=0) - spans.min(axis=0),
                                top_height=percentile(section @ up, 95), rim=True))
    return sections
