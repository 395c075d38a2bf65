"""Grasps across the rim of a hole: which parts show one, and the grasp it gives."""

import numpy as np
import pytest

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.detection.types import Detections
from litedet_ros.grasping.config import BinGeometry, PlannerConfig
from litedet_ros.grasping.estimation import estimate_object
from litedet_ros.grasping.planner import GraspPlanner
from litedet_ros.grasping.rims import RIM_SECTIONS, rim_sections
from litedet_ros.grasping.synthetic import (
    Cuboid,
    bin_solids,
    look_down_pose,
    render_depth,
    rotation_z,
    visible_box,
)

UP = np.array([0.0, 0.0, 1.0])
CAMERA_POSITION = np.array([0.0, 0.0, 0.7])
RADIUS, TUBE = 0.028, 0.016  # the workcell's ring: centre-line radius, tube thickness


def top_of_ring(angles=(0.0, 2 * np.pi), centre=(0.03, -0.02), step=0.002):
    """Points on the top of a ring lying flat (a torus seen from above), planning frame."""
    x, y = np.meshgrid(np.arange(-0.05, 0.05, step), np.arange(-0.05, 0.05, step))
    radial = np.hypot(x, y)
    angle = np.arctan2(y, x) % (2 * np.pi)
    keep = (np.abs(radial - RADIUS) < TUBE / 2) & (angle >= angles[0]) & (angle < angles[1])
    height = np.sqrt((TUBE / 2) ** 2 - (radial[keep] - RADIUS) ** 2) + TUBE / 2
    return np.column_stack([x[keep] + centre[0], y[keep] + centre[1], height])


DEPTH = 0.03  # the planner's grasp depth


def estimate(points):
    return estimate_object(points, CAMERA_POSITION, UP, 0)


def cup(bottom_depth):
    """The top of a ring raised 6 cm, and a bottom ``bottom_depth`` below it inside."""
    rim = top_of_ring(centre=(0.0, 0.0)) + (0, 0, 0.06)
    x, y = np.meshgrid(np.arange(-0.015, 0.015, 0.002), np.arange(-0.015, 0.015, 0.002))
    return rim, np.column_stack([x.ravel(), y.ravel(), np.full(x.size, rim[:, 2].max()
                                                               - bottom_depth)])


def test_a_ring_lying_flat_gives_sections_narrow_across_its_rim():
    points = top_of_ring()
    sections = rim_sections(estimate(points), UP, DEPTH)
    assert len(sections) == RIM_SECTIONS
    assert sum(len(s.points) for s in sections) == len(points)
    for section in sections:
        assert section.rim and section.detection_index == 0
        radial = section.centroid[:2] - (0.03, -0.02)
        assert np.linalg.norm(radial) == pytest.approx(RADIUS, abs=0.004)
        narrow = section.axes[1, :2]  # the in-plane narrow axis lies across the rim
        cosine = abs(narrow @ radial) / np.linalg.norm(narrow) / np.linalg.norm(radial)
        assert cosine > np.cos(np.radians(10))
        assert section.extents[1] == pytest.approx(TUBE, abs=0.004)


def test_an_open_cup_gives_sections_of_its_rim_only():
    rim, bottom = cup(0.07)
    sections = rim_sections(estimate(np.vstack([rim, bottom])), UP, DEPTH)
    assert len(sections) == RIM_SECTIONS
    assert sum(len(s.points) for s in sections) == len(rim)
    assert min(s.points[:, 2].min() for s in sections) == pytest.approx(rim[:, 2].min())


@pytest.mark.parametrize('shape', ['disc', 'half_ring', 'dish'])
def test_parts_without_a_hole_give_no_sections(shape):
    if shape == 'disc':  # solid: points at the centre
        x, y = np.meshgrid(np.arange(-0.035, 0.035, 0.002), np.arange(-0.035, 0.035, 0.002))
        keep = np.hypot(x, y) < 0.035
        points = np.column_stack([x[keep], y[keep], np.full(keep.sum(), 0.02)])
    elif shape == 'half_ring':  # a C whose open side is no hole to put a finger in
        points = top_of_ring(angles=(0.0, np.pi))
    else:  # a dish: its bottom is within the grasp depth, no room for a finger
        points = np.vstack(cup(DEPTH / 2))
    assert rim_sections(estimate(points), UP, DEPTH) == []


CAMERA = PinholeCamera(615.0, 615.0, 320.0, 240.0, 640, 480)
BIN = BinGeometry()


def ring_solids(x, y, segments=16):
    """A ring lying flat as square-section segments (what the camera sees of a torus)."""
    half = RADIUS * np.tan(np.pi / segments) + 0.001
    return [Cuboid(np.array([x + RADIUS * np.cos(a), y + RADIUS * np.sin(a), TUBE / 2]),
                   np.array([TUBE / 2, half, TUBE / 2]), rotation_z(a))
            for a in 2 * np.pi * np.arange(segments) / segments]


def test_a_ring_boxed_in_by_a_wall_and_neighbours_is_grasped_by_its_free_rim():
    """10 mm from a wall, 6 mm from a tall part on either side: no finger fits outside it."""
    centre = np.array([0.0, BIN.size_y / 2 - RADIUS - TUBE / 2 - 0.010])
    ring = ring_solids(*centre)
    beside = [Cuboid(np.array([side * (RADIUS + TUBE / 2 + 0.021), centre[1], 0.04]),
                     np.array([0.015, 0.04, 0.04])) for side in (-1, 1)]
    solids = bin_solids(BIN) + ring + beside
    pose = look_down_pose(0.7)
    depth, ids = render_depth(CAMERA, pose, solids)
    first = len(solids) - len(ring) - len(beside)
    pieces = np.stack([visible_box(ids, i) for i in range(first, first + len(ring))])
    boxes = [np.concatenate([pieces[:, :2].min(axis=0), pieces[:, 2:].max(axis=0)])]
    boxes += [visible_box(ids, i) for i in range(first + len(ring), len(solids))]
    detections = Detections(np.stack(boxes), np.ones(3), np.zeros(3), ('ring', 'box', 'box'),
                            (640, 480), stamp_ns=7)
    planner = GraspPlanner(PlannerConfig(bin=BIN, objects_per_image=0))

    grasps = [g for g in planner.plan(depth, CAMERA, detections, pose).grasps
              if g.detection_index == 0]
    assert grasps
    for grasp in grasps:  # across the rim on the free side, one finger in the hole
        radial = grasp.position[:2] - centre
        assert np.linalg.norm(radial) == pytest.approx(RADIUS, abs=0.005)
        assert radial[1] < 0  # the side away from the wall
        assert grasp.width < 2 * TUBE + 0.02
        closing = grasp.pose[:2, 1]
        assert abs(closing @ radial) / np.linalg.norm(closing) / np.linalg.norm(radial) > \
            np.cos(np.radians(30))
    # across the whole ring every grasp collides
    whole_only = GraspPlanner(PlannerConfig(bin=BIN, objects_per_image=0, rim_grasps=False)
                              ).plan(depth, CAMERA, detections, pose)
    assert not [g for g in whole_only.grasps if g.detection_index == 0]
    assert whole_only.drops['all_colliding'] == 1
