"""Planning, time parametrization and the backend contract (builtin; moveit if installed)."""

import os
from pathlib import Path
import subprocess
import sys
import time

import numpy as np
import pytest

from litedet_ros.motion.backend import BuiltinBackend, Leg, MotionBackend, make_backend
from litedet_ros.motion.ik import IkError
from litedet_ros.motion.model import MotionError, Obstacle, RobotModel
from litedet_ros.motion.planner import PlannerConfig, PlanningError
from litedet_ros.motion.task import tool_down_pose
from litedet_ros.trajectory import JointLimits, validate_trajectory

HOME = np.array([1.5708, -1.5708, 1.5708, -1.5708, -1.5708, 0.0])
OVER_BIN = tool_down_pose((0.5, 0.05, 0.25), 0.4)


@pytest.fixture(scope='module')
def backend():
    return BuiltinBackend(RobotModel.from_workcell())


def backends():
    yield pytest.param('builtin')
    yield pytest.param('moveit')


@pytest.fixture(scope='module', params=list(backends()))
def any_backend(request, backend):
    if request.param == 'builtin':
        return backend
    try:
        return make_backend('moveit')
    except MotionError as error:
        pytest.skip(f'moveit backend unavailable: {error}')


def assert_executable(robot, trajectory, start):
    limits = JointLimits(robot.arm_joints, robot.lower, robot.upper, robot.velocity_limits)
    validate_trajectory(trajectory, limits, start, start_tolerance=1e-6)
    positions = trajectory.positions
    # dense re-check: no contact anywhere along the timed trajectory
    for a, b in zip(positions[:-1], positions[1:]):
        for f in np.linspace(0, 1, int(np.ceil(np.abs(b - a).max() / 0.005)) + 1):
            assert not robot.in_collision(a + (b - a) * f)


def test_plan_home_to_bin_is_timed_within_limits(backend):
    robot = backend.robot
    goal = backend.ik(OVER_BIN, HOME)
    started = time.thread_time()  # CPU time: a loaded machine's preemption is not the code's
    trajectory = backend.plan_to_joints(HOME, goal)
    assert time.thread_time() - started < 1.0
    assert_executable(robot, trajectory, HOME)
    assert np.allclose(trajectory.positions[-1], goal)
    assert np.allclose(trajectory.velocities[[0, -1]], 0.0)
    scale = backend.config.planner.velocity_scaling
    assert np.abs(trajectory.velocities).max() <= robot.velocity_limits.max() * scale + 1e-6


def plan_around_a_wall(backend, check=None):
    """The path from one side of a wall to the other; ``check(path)`` before the wall goes."""
    start = backend.ik(tool_down_pose((0.45, 0.3, 0.3)), HOME)
    goal = backend.ik(tool_down_pose((0.45, -0.3, 0.3)), HOME)
    wall = np.eye(4)
    wall[:3, 3] = (0.45, 0.0, 0.35)
    backend.add_obstacle(Obstacle('wall', 'box', (0.3, 0.02, 0.3), wall))
    try:
        path = backend.planner.plan_path(start, goal)
        if check is not None:
            check(path)
        return path
    finally:
        backend.remove_obstacle('wall')


def test_obstacle_forces_a_detour(backend):
    def check(path):
        assert len(path) > 2
        assert_executable(backend.robot, backend.planner.time_parametrize(path), path[0])

    plan_around_a_wall(backend, check)


def test_a_detour_is_the_same_in_every_process():
    """OMPL's random numbers are seeded and the path simplified to the end: no clock in it."""
    script = ('import sys; sys.path.insert(0, sys.argv[1]); import test_motion_planner as t; '
              'from litedet_ros.motion.backend import BuiltinBackend; '
              'from litedet_ros.motion.model import RobotModel; '
              'print(t.plan_around_a_wall(BuiltinBackend(RobotModel.from_workcell())).tobytes()'
              '.hex())')
    first, second = (np.frombuffer(bytes.fromhex(subprocess.run(
        [sys.executable, '-c', script, str(Path(__file__).parent)], capture_output=True,
        text=True, check=True, env={**os.environ, 'PYTHONHASHSEED': str(k)}).stdout), np.float64
    ).reshape(-1, 6) for k in (1, 2))
    assert len(first) > 2  # a detour
    np.testing.assert_array_equal(first, second)


def test_a_start_in_contact_is_left_through_a_nearby_free_configuration(backend):
    # As after a jammed approach: the fingertips 3 mm into a slab under the hand.
    robot, planner = backend.robot, backend.planner
    start = backend.ik(tool_down_pose((0.45, 0.3, 0.3)), HOME)
    goal = backend.ik(tool_down_pose((0.45, -0.3, 0.3)), HOME)
    slab = np.eye(4)
    slab[:3, 3] = (0.45, 0.3, 0.3 - 0.02 + 0.003 - 0.01)  # top 3 mm above the fingertips
    backend.add_obstacle(Obstacle('slab', 'box', (0.2, 0.2, 0.02), slab))
    try:
        assert robot.in_collision(start, 0.0)
        trajectory = planner.plan(start, goal)
        positions = trajectory.positions
        assert np.allclose(positions[0], start) and np.allclose(positions[-1], goal)
        free = [not robot.in_collision(q, 0.0) for q in positions]
        first_free = free.index(True)
        assert all(free[first_free:])  # no contact once out
        assert np.abs(positions[first_free] - start).max() <= planner.config.start_jiggle + 0.02
    finally:
        backend.remove_obstacle('slab')


def test_invalid_start_or_goal_fails_fast(backend):
    started = time.thread_time()
    with pytest.raises(PlanningError, match='goal configuration in collision'):
        backend.plan_to_joints(HOME, np.zeros(6))
    with pytest.raises(PlanningError, match='start configuration in collision'):
        backend.plan_to_joints(np.zeros(6), HOME)
    with pytest.raises(PlanningError, match='outside the joint limits'):
        backend.plan_to_joints(HOME, np.full(6, 7.0))
    with pytest.raises(MotionError):
        backend.plan_to_joints(HOME, np.full(6, np.nan))
    assert time.thread_time() - started < 0.1


def test_planning_statistics_with_attached_object(backend):
    """Bin -> place queries holding an object: success rate, median time, no contacts."""
    rng = np.random.default_rng(3)
    place = backend.ik(tool_down_pose((0.05, 0.5, 0.22)), HOME)
    held = Obstacle('held', 'box', (0.04, 0.05, 0.04), np.eye(4))
    times, failures = [], 0
    for _ in range(15):
        pose = tool_down_pose((rng.uniform(0.4, 0.6), rng.uniform(-0.06, 0.06), 0.25),
                              rng.uniform(-np.pi, np.pi))
        backend.attach(held)
        try:
            started = time.perf_counter()
            trajectory = backend.plan_to_pose(backend.ik(pose, place), tool_down_pose(
                (0.05, 0.5, 0.22)))
            times.append(time.perf_counter() - started)
            assert not any(backend.robot.in_collision(q) for q in trajectory.positions)
        except MotionError:
            failures += 1
        finally:
            backend.detach()
    assert failures <= 1
    assert np.median(times) < 0.1


def test_config_is_validated():
    with pytest.raises(ValueError):
        PlannerConfig(velocity_scaling=0.0)
    with pytest.raises(ValueError):
        PlannerConfig(attempts=0)
    with pytest.raises(MotionError, match='unknown motion backend'):
        make_backend('nope')


def test_backend_contract(any_backend):
    backend: MotionBackend = any_backend
    assert len(backend.joint_names) == 6 and backend.planning_frame == 'base_link'
    q = backend.ik(OVER_BIN, HOME)
    assert np.allclose(backend.tcp_pose(q), OVER_BIN, atol=1e-4)
    to_pose = backend.plan_to_pose(HOME, OVER_BIN)
    assert np.allclose(to_pose.positions[0], HOME, atol=1e-6)
    assert np.allclose(backend.tcp_pose(to_pose.positions[-1]), OVER_BIN, atol=1e-4)
    down = tool_down_pose((0.5, 0.05, 0.12), 0.4)
    line = backend.plan_cartesian(to_pose.positions[-1], down)
    assert np.allclose(backend.tcp_pose(line.positions[-1]), down, atol=1e-4)
    xy = np.array([backend.tcp_pose(p)[:2, 3] for p in line.positions])
    assert np.abs(xy - OVER_BIN[:2, 3]).max() < 1e-3
    with pytest.raises(IkError):
        backend.plan_to_pose(HOME, tool_down_pose((2.0, 0.0, 0.3)))
    sequence = backend.plan_sequence(HOME, [Leg(OVER_BIN, blend_radius=0.03),
                                            Leg(down, straight=True)])
    assert np.allclose(sequence.positions[0], HOME, atol=1e-6)
    assert np.allclose(backend.tcp_pose(sequence.positions[-1]), down, atol=1e-4)


def _bin_to_place(backend):
    """Joint paths straight up out of the bin, over to the place zone and straight down."""
    grasp = backend.ik(tool_down_pose((0.5, 0.0, 0.05)), HOME, contact=True)
    lift = backend.solver.cartesian(grasp, tool_down_pose((0.5, 0.0, 0.25)))
    above = backend.ik(tool_down_pose((0.05, 0.46, 0.22)), lift[-1])
    transport = backend.planner.plan_path(lift[-1], above)
    descent = backend.solver.cartesian(above, tool_down_pose((0.05, 0.46, 0.12)))
    return [lift, transport, descent]


def test_blended_sequence_turns_its_corners_without_stopping(backend):
    robot, planner = backend.robot, backend.planner
    paths = _bin_to_place(backend)
    blended = planner.time_sequence(paths, [0.03, 0.03])
    stops = planner.time_sequence(paths, [0.0, 0.0])
    assert_executable(robot, blended, paths[0][0])
    assert np.allclose(blended.positions[-1], paths[-1][-1])
    assert np.abs(stops.velocities).max(axis=1)[1:-1].min() < 1e-6  # stops at the corners...
    speed = np.abs(blended.velocities).max(axis=1)  # fastest joint, rad/s
    moving = np.flatnonzero(speed > 0.3)
    assert speed[moving[0]:moving[-1]].min() > 0.2  # ...the blended motion does not
    assert blended.duration < stops.duration - 0.15
    # straight up out of the bin to 3 cm below the corner, straight down from 3 cm below
    tcp = backend.tcp_path(blended)
    off_lift = np.linalg.norm(tcp[:, :2] - (0.5, 0.0), axis=1) > 1e-3
    off_descent = np.linalg.norm(tcp[:, :2] - (0.05, 0.46), axis=1) > 1e-3
    assert tcp[np.argmax(off_lift) - 1, 2] > 0.22
    assert tcp[len(tcp) - np.argmax(off_descent[::-1]), 2] > 0.19


def test_a_blend_that_collides_falls_back_to_stopping_at_the_corners(backend, monkeypatch):
    planner = backend.planner
    paths = _bin_to_place(backend)
    stops = planner.time_sequence(paths, [0.0, 0.0])
    check, calls = planner._trajectory_valid, []

    def blend_collides(trajectory, escape=None):
        calls.append(trajectory)
        return len(calls) > 1 and check(trajectory, escape)
    monkeypatch.setattr(planner, '_trajectory_valid', blend_collides)
    fallback = planner.time_sequence(paths, [0.03, 0.03])
    assert len(calls) == 4  # the blend, then each path on its own
    assert np.allclose(fallback.positions, stops.positions)


def test_time_parametrization_does_not_crawl_at_the_ends(backend):
    """A 2.3 rad joint line once took 86 s (zero spline slope at the ends stalled TOPP-RA)."""
    path = np.array([[-0.291, -2.001, 2.284, -2.05, -1.71, -2.652],
                     [1.203, -1.525, 1.897, -1.943, -1.571, -0.368]])
    trajectory = backend.planner.time_parametrize(path)
    # at 0.5 x (pi rad/s, 10 rad/s^2) the 2.28 rad joint takes ~1.8 s
    assert 1.4 < trajectory.duration < 3.0
    assert np.allclose(trajectory.positions[[0, -1]], path)
