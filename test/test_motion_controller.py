"""The controller's ROS-free parts: settings, the robot over messages, the grasp inbox."""

from dataclasses import replace
from pathlib import Path
import threading
import time

import numpy as np
import pytest
import yaml

from litedet_ros.description import ARM_JOINTS, GRIPPER_JOINT, HOME_JOINTS
from litedet_ros.errors import InvalidMessageError, StaleInputError
from litedet_ros.grasping.types import Grasp, Push
from litedet_ros.motion.backend import BuiltinBackend
from litedet_ros.motion.controller import (
    ControllerConfig,
    ControllerConfigError,
    GraspInbox,
    RemoteRobot,
)
from litedet_ros.motion.model import RobotModel
from litedet_ros.motion.task import GraspCandidates
from litedet_ros.trajectory import JointTrajectory

NAMES = [*ARM_JOINTS, GRIPPER_JOINT]
ROOT = Path(__file__).resolve().parents[1]


def test_yaml_matches_the_config_defaults():
    text = (ROOT / 'config' / 'controller_node.yaml').read_text()
    values = yaml.safe_load(text)['/**/controller_node']['ros__parameters']
    assert set(values) == set(ControllerConfig.field_names())
    values['place_position'] = tuple(values['place_position'])
    assert ControllerConfig(**values) == ControllerConfig()


@pytest.mark.parametrize('change', [
    {'backend': 'ompl'}, {'velocity_scaling': 0.0}, {'place_position': (0.1, 0.2)},
    {'place_position': (0.1, 0.2, float('nan'))}, {'joint_state_timeout': 0.0},
    {'lift_height': -0.1}, {'max_consecutive_failures': 0}, {'place_grid': (0, 3)},
    {'place_grid': (3,)}, {'place_spacing': -0.1}])
def test_invalid_settings_are_refused(change):
    with pytest.raises(ControllerConfigError, match=next(iter(change))):
        ControllerConfig(**change)


def test_release_spots_form_a_centred_grid():
    offsets = ControllerConfig(place_grid=(3, 2), place_spacing=0.1).task_config().place_offsets
    assert np.array(offsets) == pytest.approx(np.array([
        (-0.1, -0.05), (0.0, -0.05), (0.1, -0.05), (-0.1, 0.05), (0.0, 0.05), (0.1, 0.05)]))
    assert ControllerConfig(place_grid=(1, 1)).task_config().place_offsets == ((0.0, 0.0),)


def test_settings_reach_the_task_and_planner():
    config = ControllerConfig(place_position=(0.1, 0.4, 0.2), place_yaw=0.5, lift_height=0.2,
                              velocity_scaling=0.8)
    task = config.task_config()
    assert np.allclose(task.place_pose[:3, 3], (0.1, 0.4, 0.2)) and task.lift_height == 0.2
    assert task.place_pose[2, 2] == pytest.approx(-1.0)
    assert config.builtin_config().planner.velocity_scaling == 0.8
    assert config.builtin_config().ik.posture == HOME_JOINTS  # goals in the home branch first
    assert task.place_half_turn and not replace(config, place_half_turn=False
                                                ).task_config().place_half_turn


class Clock:
    def __init__(self):
        self.t = 10.0

    def __call__(self):
        return self.t


@pytest.fixture
def remote():
    sent, clock = [], Clock()
    robot = RemoteRobot(ARM_JOINTS, sent.append, lambda w: sent.append(('gripper', w)), clock,
                        joint_state_timeout=0.2)
    return robot, sent, clock


def state(q, opening=0.06, velocity=None, stamp_ns=0):
    """update_joint_state arguments; unstamped (0) by default: stamped with the receipt time."""
    velocity = [0.0] * 7 if velocity is None else [*velocity, 0.0]
    # reversed order: the robot must reorder by name
    return NAMES[::-1], [*q, opening / 2][::-1], velocity[::-1], stamp_ns


def test_joint_states_are_reordered_and_validated(remote):
    robot, _, _ = remote
    with pytest.raises(StaleInputError, match='no joint_states'):
        robot.joint_positions()
    q = np.arange(6) * 0.1
    robot.update_joint_state(*state(q))
    assert robot.joint_positions() == pytest.approx(q)
    assert robot.finger_width() == pytest.approx(0.06)
    for bad in [(ARM_JOINTS, [0.0] * 6, [], 1),                    # no finger joint
                (NAMES, [0.0] * 6, [], 1),                         # too few positions
                (NAMES, [float('nan')] * 7, [], 1)]:
        with pytest.raises(InvalidMessageError):
            robot.update_joint_state(*bad)
    assert robot.joint_positions() == pytest.approx(q)  # the last good state is kept


def test_stale_joint_states_halt_a_motion(remote):
    robot, sent, clock = remote
    robot.update_joint_state(*state(np.zeros(6)))
    goal = np.full((2, 6), 0.5)
    goal[0] = 0.0
    robot.execute(JointTrajectory(ARM_JOINTS, np.array([0.0, 1.0]), goal))
    assert robot.executing() and sent[-1].duration == 1.0
    clock.t += 0.25  # on the robot's clock; no state since
    started = time.monotonic()
    with pytest.raises(StaleInputError, match='0.25 s old'):
        robot.executing()
    assert time.monotonic() - started >= 0.2  # waited joint_state_timeout for a fresh one
    assert len(sent[-1].times) == 0  # empty trajectory = stop and hold
    assert not robot.executing()


def test_staleness_is_judged_on_the_robot_clock_by_stamp(remote):
    robot, _, clock = remote
    robot.update_joint_state(*state(np.zeros(6), stamp_ns=9_700_000_000))
    with pytest.raises(StaleInputError, match='0.30 s old'):
        robot.joint_positions()
    # a wall-clock gap alone (a stalled simulator, a busy executor) is not staleness ...
    robot.update_joint_state(*state(np.zeros(6), stamp_ns=9_900_000_000))
    time.sleep(0.3)
    assert robot.joint_positions() == pytest.approx(np.zeros(6))
    # ... and a state that arrives while a query waits is taken
    clock.t += 0.5
    threading.Timer(0.05, robot.update_joint_state,
                    state(np.ones(6), stamp_ns=10_450_000_000)).start()
    assert robot.joint_positions() == pytest.approx(np.ones(6))


def test_a_robot_clock_that_stopped_counts_as_silence():
    robot = RemoteRobot(ARM_JOINTS, list.append, print, Clock(), joint_state_timeout=0.05,
                        silence_timeout=0.1)
    robot.update_joint_state(*state(np.zeros(6)))
    time.sleep(0.15)
    with pytest.raises(StaleInputError, match='no joint_states for'):
        robot.joint_positions()


def test_a_motion_ends_at_its_goal_or_when_the_arm_stops(remote):
    robot, _, clock = remote
    robot.update_joint_state(*state(np.zeros(6)))
    path = np.array([np.zeros(6), np.full(6, 0.5)])
    robot.execute(JointTrajectory(ARM_JOINTS, np.array([0.0, 1.0]), path))
    clock.t += 1.5
    # still at its first point when the duration has passed on a fast (sim) clock: the
    # trajectory is in transit, not ended
    robot.update_joint_state(*state(np.zeros(6)))
    assert robot.executing()
    robot.update_joint_state(*state(np.full(6, 0.3), velocity=np.full(6, 0.2)))
    assert robot.executing()  # late and still moving
    robot.update_joint_state(*state(np.full(6, 0.499)))
    assert not robot.executing()
    robot.execute(JointTrajectory(ARM_JOINTS, np.array([0.0, 1.0]), path))
    clock.t += 1.5
    robot.update_joint_state(*state(np.full(6, 0.3)))  # stopped short: ended (task checks it)
    assert not robot.executing()


def grasp(frame_id='base_link', stamp_ns=9_000_000_000):
    return Grasp(np.eye(4), 0.05, 0.9, frame_id=frame_id, stamp_ns=stamp_ns)


def test_inbox_refuses_foreign_frames_and_old_arrays():
    inbox = GraspInbox('base_link', max_age=2.0, clock=Clock())
    with pytest.raises(InvalidMessageError, match='camera'):
        inbox.offer([grasp('camera')], 9_000_000_000, 'base_link')
    with pytest.raises(InvalidMessageError, match='camera'):
        inbox.offer([], 9_000_000_000, 'camera')
    with pytest.raises(StaleInputError, match='old'):
        inbox.offer([grasp(stamp_ns=7_000_000_000)], 7_000_000_000, 'base_link')
    assert inbox.wait(0.0) is None
    inbox.offer([grasp()], 9_000_000_000, 'base_link', num_detections=3)
    seen = inbox.wait(0.0)
    assert isinstance(seen, GraspCandidates) and len(seen.grasps) == 1
    assert seen.num_detections == 3
    inbox.offer([], 9_100_000_000, 'base_link')
    assert inbox.wait(0.0).bin_empty  # an empty array is an answer: nothing to pick
    inbox.offer([], 9_200_000_000, 'base_link', num_detections=2)
    seen = inbox.wait(0.0)  # objects seen, none graspable: not an empty bin
    assert seen.grasps == () and seen.num_detections == 2 and not seen.bin_empty
    push = Push(np.eye(4), np.eye(4), 1, stamp_ns=9_300_000_000)
    inbox.offer([], 9_300_000_000, 'base_link', 2, (push,))
    assert inbox.wait(0.0).pushes == (push,)
    with pytest.raises(InvalidMessageError, match='camera'):
        inbox.offer([], 9_400_000_000, 'base_link', 2,
                    (push, Push(np.eye(4), np.eye(4), frame_id='camera')))


def test_inbox_forgets_arrays_taken_before_the_scene_changed():
    inbox = GraspInbox('base_link', max_age=0.0, clock=Clock())
    inbox.offer([grasp()], 9_000_000_000, 'base_link')
    inbox.scene_changed(9_500_000_000)
    assert inbox.wait(0.05) is None
    with pytest.raises(StaleInputError, match='before the last attempt ended'):
        inbox.offer([grasp()], 9_400_000_000, 'base_link')
    inbox.offer([grasp(stamp_ns=9_600_000_000)], 9_600_000_000, 'base_link')
    assert len(inbox.wait(0.0).grasps) == 1
    inbox.scene_changed(9_500_000_000)  # no time passed: the array was still used
    assert inbox.wait(0.0) is None
    with pytest.raises(StaleInputError, match='before the last attempt ended'):
        inbox.offer([grasp(stamp_ns=9_600_000_000)], 9_600_000_000, 'base_link')
    assert GraspInbox('base_link', 0.0, Clock()).wait(10.0, cancelled=lambda: True) is None


def test_tcp_path_follows_the_trajectory_by_forward_kinematics():
    backend = BuiltinBackend(RobotModel.from_workcell())
    start = np.array(HOME_JOINTS)
    down = backend.tcp_pose(start)
    down[2, 3] -= 0.1
    trajectory = backend.plan_cartesian(start, down)  # straight line 10 cm down
    path = backend.tcp_path(trajectory)
    assert path.shape == (len(trajectory.times), 3) and len(path) > 2
    np.testing.assert_allclose(path[0], backend.tcp_pose(start)[:3, 3], atol=1e-9)
    np.testing.assert_allclose(path[-1], down[:3, 3], atol=2e-3)
    np.testing.assert_allclose(path[:, :2], path[:1, :2].repeat(len(path), 0), atol=2e-3)
