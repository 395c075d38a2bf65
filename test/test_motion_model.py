"""Robot model, SRDF, collision world and IK of the built-in motion backend."""

import time
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from litedet_ros.description import HOME_JOINTS, workcell_urdf
from litedet_ros.motion.ik import IkConfig, IkError, InverseKinematics
from litedet_ros.motion.model import MotionError, Obstacle, RobotModel, default_srdf_path
from litedet_ros.motion.task import tool_down_pose

HOME = np.array([1.5708, -1.5708, 1.5708, -1.5708, -1.5708, 0.0])


@pytest.fixture(scope='module')
def robot():
    return RobotModel.from_workcell()


@pytest.fixture(scope='module')
def ik(robot):
    return InverseKinematics(robot)


def bin_poses(count, seed=0):
    rng = np.random.default_rng(seed)
    return [tool_down_pose((rng.uniform(0.4, 0.6), rng.uniform(-0.06, 0.06),
                            rng.uniform(0.08, 0.35)), rng.uniform(-np.pi, np.pi))
            for _ in range(count)]


def test_srdf_names_real_links_and_disables_adjacent_pairs():
    srdf = ElementTree.parse(default_srdf_path()).getroot()
    links = {link.get('name') for link in ElementTree.fromstring(workcell_urdf()).iter('link')}
    pairs = [(d.get('link1'), d.get('link2'), d.get('reason'))
             for d in srdf.iter('disable_collisions')]
    assert pairs and all(a in links and b in links for a, b, _ in pairs)
    assert ('upper_arm_link', 'forearm_link', 'Adjacent') in pairs
    assert srdf.find("group[@name='manipulator']/chain").get('tip_link') == 'tcp'
    home = {j.get('name'): float(j.get('value'))
            for j in srdf.find("group_state[@name='home']").iter('joint')}
    assert len(home) == 6


def test_home_is_free_and_stretched_arm_hits_the_cell(robot):
    assert not robot.in_collision(HOME, 0.01)
    pairs = robot.colliding_pairs(np.zeros(6), 0.0)
    assert pairs and all('bin' in a + b or 'table' in a + b for a, b in pairs)


def test_srdf_removes_pairs(robot):
    unfiltered = RobotModel(workcell_urdf(), None)
    assert len(robot.geom_model.collisionPairs) < len(unfiltered.geom_model.collisionPairs)
    assert unfiltered.in_collision(HOME, 0.01)  # self-contact of adjacent links
    assert not robot.in_collision(HOME, 0.01)


def test_runtime_obstacle_and_attached_object(robot):
    tcp = robot.frame_pose(HOME)
    pairs = len(robot.geom_model.collisionPairs)
    robot.add_obstacle(Obstacle('post', 'box', (0.05, 0.05, 0.05), tcp))
    try:
        assert robot.in_collision(HOME)
    finally:
        robot.remove_obstacle('post')
    assert not robot.in_collision(HOME, 0.01)
    assert len(robot.geom_model.collisionPairs) == pairs
    # a long object held in the hand reaches down to the table
    below = np.eye(4)
    below[2, 3] = 0.3
    robot.attach(Obstacle('held', 'cylinder', (0.02, 0.4), below))
    try:
        assert robot.in_collision(HOME)
        assert any('attached' in a + b for a, b in robot.colliding_pairs(HOME))
    finally:
        robot.detach()
    assert not robot.in_collision(HOME, 0.01)
    with pytest.raises(MotionError):
        robot.remove_obstacle('post')
    with pytest.raises(MotionError):
        Obstacle('bad', 'box', (0.1, 0.1), np.eye(4))
    with pytest.raises(MotionError):
        Obstacle('nan', 'sphere', (0.1,), np.full((4, 4), np.nan))


def test_closed_form_ik_is_exact_fast_and_nearest(robot, ik):
    assert ik.analytic
    poses = bin_poses(300)
    solved, times = 0, []
    for pose in poses:
        started = time.perf_counter()
        try:
            q = ik.solve(pose, HOME, 0.0)
        except IkError:
            continue
        times.append(time.perf_counter() - started)
        solved += 1
        assert np.allclose(robot.frame_pose(q), pose, atol=1e-9)
        assert robot.within_limits(q) and not robot.in_collision(q)
    assert solved >= 0.95 * len(poses)
    assert np.median(times) < 1e-3
    q = ik.solve(robot.frame_pose(HOME), HOME)
    assert np.allclose(q, HOME, atol=1e-9)


def test_ik_turns_a_joint_the_long_way_rather_than_leave_the_branch(robot, ik):
    # from a wrist 3 at -200 deg, the goal's -12 deg is nearest as -372, past the -360 limit:
    # the solver once dropped that branch and took one that flips the elbow (a part in the
    # hand flew off on the way)
    start = np.radians([-22.0, -77.0, 92.0, -105.0, -90.0, -200.0])
    goal = np.radians([78.0, -88.0, 109.0, -111.0, -90.0, -12.0])
    np.testing.assert_allclose(ik.solve(robot.frame_pose(goal), start), goal, atol=1e-9)


def test_ik_goals_return_to_the_posture_branch(robot, ik):
    # an arm left elbow down and wrist up: the nearest goal keeps the elbow down; with the
    # home posture set, the goal is elbow up, wrist down again
    start = np.radians([188.0, -98.0, -98.0, -73.0, -270.0, 281.0])
    place = tool_down_pose((0.05, 0.5, 0.22))
    nearest = ik.solve(place, start)
    assert np.sin(nearest[2]) < 0
    homing = InverseKinematics(robot, IkConfig(posture=HOME_JOINTS))
    goal = homing.solve(place, start)
    assert np.sin(goal[2]) > 0 and np.sin(goal[4]) < 0
    assert np.allclose(robot.frame_pose(goal), place, atol=1e-9)
    assert not robot.in_collision(goal)


def test_numerical_ik_fallback(robot):
    dls = InverseKinematics(robot, analytic=False)
    assert not dls.analytic
    for pose in bin_poses(10, seed=1):
        q = dls.solve(pose, HOME)
        assert np.allclose(robot.frame_pose(q), pose, atol=1e-5)


def test_unreachable_and_bad_poses(ik):
    started = time.thread_time()  # CPU time: a loaded machine's preemption is not the code's
    with pytest.raises(IkError, match='out of reach'):
        ik.solve(tool_down_pose((2.0, 0.0, 0.3)), HOME)
    assert time.thread_time() - started < 0.05
    with pytest.raises(IkError, match='collide'):
        ik.solve(tool_down_pose((0.5, 0.0, -0.05)), HOME)  # below the bin floor
    with pytest.raises(IkError):
        ik.solve(np.full((4, 4), np.nan), HOME)


def test_cartesian_line_is_straight_and_continuous(robot, ik):
    start = ik.solve(tool_down_pose((0.5, 0.0, 0.3)), HOME)
    goal = tool_down_pose((0.5, 0.05, 0.15))
    path = ik.cartesian(start, goal, 0.0)
    assert np.allclose(path[0], start) and np.allclose(robot.frame_pose(path[-1]), goal)
    assert np.abs(np.diff(path, axis=0)).max() <= ik.config.max_joint_step
    a, b = robot.frame_pose(start)[:3, 3], goal[:3, 3]
    for q in path:
        p = robot.frame_pose(q)[:3, 3]
        off_line = np.linalg.norm(np.cross(p - a, b - a)) / np.linalg.norm(b - a)
        assert off_line < 1e-6
    with pytest.raises(IkError, match='collides'):
        ik.cartesian(start, tool_down_pose((0.5, 0.0, -0.02)), 0.0)
