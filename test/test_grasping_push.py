"""Pushes: offered when no detected part has a grasp, and they free the part they move."""

from dataclasses import replace

import numpy as np
import pytest

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.detection.types import Detections
from litedet_ros.errors import InvalidMessageError
from litedet_ros.grasping.collision import gripper_boxes, wall_clearance
from litedet_ros.grasping.config import BinGeometry, PlannerConfig
from litedet_ros.grasping.planner import GraspPlanner
from litedet_ros.grasping.push import (
    DRAG_WALL_CLEARANCE,
    OFFERED_PUSHES,
    PUSH_WALL_CLEARANCE,
)
from litedet_ros.grasping.synthetic import (
    Cuboid,
    bin_solids,
    look_down_pose,
    render_depth,
    rotation_z,
    visible_box,
)
from litedet_ros.grasping.types import Push

CAMERA = PinholeCamera(615.0, 615.0, 320.0, 240.0, 640, 480)
BIN = BinGeometry()
POSE = look_down_pose(0.7)
#: Two 10 x 4 cm bars side by side: too long to close across, no room for a finger between them.
PAIR = ((0.0, 0.0), (0.0, 0.04))
BAR = np.array([0.10, 0.04, 0.05])


def bars(centres):
    return [Cuboid(np.array([x, y, BAR[2] / 2]), BAR / 2, rotation_z(0.0)) for x, y in centres]


def plan(centres, **overrides):
    solids = bin_solids(BIN) + bars(centres)
    depth, ids = render_depth(CAMERA, POSE, solids)
    first = len(solids) - len(centres)
    boxes = np.stack([visible_box(ids, i) for i in range(first, len(solids))])
    detections = Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes)),
                            ('part',) * len(boxes), (640, 480), stamp_ns=11)
    config = PlannerConfig(bin=BIN, **overrides)
    return GraspPlanner(config).plan(depth, CAMERA, detections, POSE), config


def test_parts_without_any_grasp_get_a_push_that_frees_one():
    result, config = plan(PAIR)
    assert result.grasps == () and result.drops == {'all_colliding': 2}
    assert 1 < len(result.pushes) <= OFFERED_PUSHES
    push = result.pushes[0]
    assert push.stamp_ns == 11 and push.frame_id == 'base_link'
    assert push.detection_index in (0, 1)
    direction = (push.end[:3, 3] - push.start[:3, 3]) / push.length
    np.testing.assert_allclose(push.start[:3, 2], [0, 0, -1], atol=1e-9)  # hand straight down
    np.testing.assert_allclose(push.start[:3, :3], push.end[:3, :3])
    np.testing.assert_allclose(push.start[:3, 0], direction, atol=1e-9)  # +x along the push
    assert abs(direction[2]) < 1e-9
    # the tips run below the bars' top, above the floor
    tips = push.start[2, 3] - config.gripper.tcp_to_tip
    assert config.push_floor_clearance <= tips < BAR[2]
    column = replace(config.gripper, approach_distance=BIN.wall_height)
    for pose in (push.start, push.end):  # off the walls by more than a deflected hand's error
        assert wall_clearance(BIN, pose, column, 0.0) >= PUSH_WALL_CLEARANCE
    # the hand starts clear of the bar it pushes and moves it by at least min_push_distance
    bar = bars(PAIR)[push.detection_index]
    along = (np.array([[sx, sy] for sx in (-1, 1) for sy in (-1, 1)]) * BAR[:2] / 2
             + bar.centre[:2]) @ direction[:2]
    centres, half = gripper_boxes(config.gripper, 0.0)
    finger_front = push.start[:2, 3] @ direction[:2] + half[0, 0]
    assert finger_front < along.min()
    moved = push.end[:2, 3] @ direction[:2] + half[0, 0] - along.min()
    assert config.min_push_distance <= moved <= config.push_distance + 0.003  # seen edges
    # pushed that far, the bar has a grasp
    shifted = [np.array(c) + (moved * direction[:2] if k == push.detection_index else 0)
               for k, c in enumerate(PAIR)]
    after, _ = plan(shifted)
    assert any(g.detection_index == push.detection_index for g in after.grasps)


def test_the_pushes_offered_are_distinct_feasible_options():
    """Besides the best push, others move the bars other ways.

    The controller takes one of them when the best did nothing (a part that is not where its
    points said, a push that glanced off).
    """
    result, config = plan(PAIR)
    column = replace(config.gripper, approach_distance=BIN.wall_height)
    ways = set()
    for push in result.pushes:
        direction = (push.end[:3, 3] - push.start[:3, 3]) / push.length
        ways.add((push.detection_index, *np.round(direction[:2], 3)))
        # a push from behind a part is its travel plus the gap; 1 nm for the poses' rounding (a
        # CI machine measured 0.07 against 0.06 + 0.01 = 0.06999999999999999)
        assert config.min_push_distance <= push.length \
            <= config.push_distance + config.push_gap + 1e-9
        for pose in (push.start, push.end):
            assert wall_clearance(BIN, pose, column, 0.0) >= PUSH_WALL_CLEARANCE
    assert len(ways) == len(result.pushes)  # one per (part, direction)


def test_beside_a_wall_the_hand_pushes_with_its_palm_along_the_push():
    """Bars pressed together against the -y wall: the outer one slides along the inner one.

    With its palm (13 cm) across the push, the hand would meet the wall; turned a quarter, the
    palm (5 cm wide) passes 2 cm off it.
    """
    inner, outer = (0.0, -BIN.size_y / 2 + 0.021), (0.0, -BIN.size_y / 2 + 0.061)
    result, config = plan([inner, outer])
    assert result.grasps == () and result.pushes
    push = result.pushes[0]
    direction = (push.end[:3, 3] - push.start[:3, 3]) / push.length
    assert push.detection_index == 1 and abs(direction[0]) == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(push.start[:3, 1]), np.abs(direction), atol=1e-9)
    column = replace(config.gripper, approach_distance=BIN.wall_height)
    for pose in (push.start, push.end):
        assert wall_clearance(BIN, pose, column, 0.0) >= PUSH_WALL_CLEARANCE
    # the fingers start behind the bar's end and push it at least min_push_distance
    end = BAR[0] / 2 * np.sign(-direction[0])
    fingers = config.gripper.finger_thickness
    assert (push.start[0, 3] - end) * direction[0] <= -fingers - config.push_gap + 1e-3
    assert push.length >= config.min_push_distance


def test_no_push_when_a_part_has_a_grasp_or_pushes_are_off():
    free, _ = plan([(0.0, 0.0)])
    assert free.grasps and free.pushes == ()
    off, _ = plan(PAIR, push_distance=0.0)
    assert off.grasps == () and off.pushes == ()


def test_parts_pressed_into_a_corner_are_dragged_away_from_the_walls():
    """Bars against the +y wall, end to end into the +x corner: no room to push from behind.

    The closed finger tips press on a bar's top and drag it off the walls; the hand leans off a
    wall it would otherwise meet. Without drags nothing is offered.
    """
    half_x, half_y = BIN.size_x / 2, BIN.size_y / 2
    corner = [(half_x - 0.05 - 0.001, half_y - 0.02 - 0.001),
              (half_x - 0.05 - 0.001, half_y - 0.06 - 0.001)]
    result, config = plan(corner)
    assert result.grasps == () and result.pushes
    column = replace(config.gripper, approach_distance=BIN.wall_height)
    tilted = 0
    for push in result.pushes:
        move = push.end[:3, 3] - push.start[:3, 3]
        assert push.length == pytest.approx(config.push_distance) and abs(move[2]) < 1e-9
        # away from the walls the part touches: -y off the long wall, -x out of the corner
        assert move[0] <= 1e-9 and move[1] <= 1e-9
        tips = push.start[:3, 3] + config.gripper.tcp_to_tip * push.start[:3, 2]
        assert BAR[2] - 0.015 < tips[2] < BAR[2]  # on the bar's top, pressing into it
        for pose in (push.start, push.end):
            assert wall_clearance(BIN, pose, column, 0.0) >= DRAG_WALL_CLEARANCE
        tilted += push.start[2, 2] > -0.99
        # a tilted hand leans off the wall behind the part: its approach points towards it
        assert push.start[:3, 2] @ move <= 1e-9
    assert tilted  # straight down, the palm would meet the +y wall beside the inner bar
    off, _ = plan(corner, wall_drags=False)
    assert off.grasps == () and off.pushes == ()


def test_a_push_must_be_rigid_transforms():
    pose = np.eye(4)
    with pytest.raises(InvalidMessageError, match='start'):
        Push(np.diag([1.0, 1.0, 2.0, 1.0]), pose)
    with pytest.raises(InvalidMessageError, match='end'):
        Push(pose, np.full((4, 4), np.nan))
