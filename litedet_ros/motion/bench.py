"""Motion benchmark: IK and bin -> place planning on seeded queries of the workcell.

IK: poses of the TCP in and above the bin (pointing down, tilted up to ``MAX_TILT``, any yaw in
a half turn), solved from the home configuration with the collision filter the task uses.
Planning: the full transport query of the task -- from a configuration lifted above a grasp in
the bin, holding a box-shaped object of random width, to the pose above the place position --
timed in its parts (IK, RRTConnect + simplification, TOPP-RA) and re-checked for collision
along the timed trajectory at half the planner's step.
"""

from __future__ import annotations

from dataclasses import dataclass
import time

import numpy as np
from scipy.spatial.transform import Rotation

from litedet_ros.description import HOME_JOINTS
from litedet_ros.motion.backend import BuiltinBackend
from litedet_ros.motion.controller import ControllerConfig
from litedet_ros.motion.model import MotionError, Obstacle, RobotModel
from litedet_ros.motion.task import TaskConfig, tool_down_pose
from litedet_ros.trajectory import JointTrajectory, TrajectorySampler

HOME = np.array(HOME_JOINTS)
BIN_CENTRE = (0.5, 0.0)  # m, planning frame (workcell defaults)
BIN_HALF_EXTENT = (0.15, 0.10)  # sampled half extents: the inner bin less 5 cm, m
MAX_TILT = 0.3  # rad
GRIPPER_OPENING = 0.06  # finger opening assumed while solving IK, m


@dataclass(frozen=True)
class Query:
    """One bin -> place transport query (``float64[6]`` start joints, object width in m)."""

    start: np.ndarray
    width: float


def bin_poses(count: int, rng: np.random.Generator, z_range: tuple[float, float] = (0.03, 0.35)
              ) -> list[np.ndarray]:
    """Seeded TCP poses in and above the bin, ``float64[4, 4]`` each, planning frame."""
    poses = []
    for _ in range(count):
        xy = np.asarray(BIN_CENTRE) + rng.uniform(-1, 1, 2) * BIN_HALF_EXTENT
        pose = tool_down_pose((*xy, rng.uniform(*z_range)), rng.uniform(-np.pi / 2, np.pi / 2))
        axis = np.array([*rng.normal(size=2), 0.0])
        tilt = Rotation.from_rotvec(rng.uniform(0, MAX_TILT) * axis / np.linalg.norm(axis))
        pose[:3, :3] = tilt.as_matrix() @ pose[:3, :3]
        poses.append(pose)
    return poses


def _summary(times_s: list[float]) -> tuple[float, float]:
    if not times_s:
        return float('nan'), float('nan')
    p50, p95 = np.percentile(np.asarray(times_s) * 1e3, [50, 95])
    return float(p50), float(p95)


def reachable(backend: BuiltinBackend, pose: np.ndarray) -> bool:
    """Whether ``pose`` is within the joint limits and the hand there is free of the cell.

    The hand's placement follows from the TCP pose alone, so a hand colliding in one IK branch
    collides in all: such a pose is unreachable whatever the solver does.
    """
    robot = backend.robot
    solutions = backend.solver.solutions(pose, HOME)
    if len(solutions) == 0:
        return False
    objects = robot.geom_model.geometryObjects
    link = {o.name: robot.model.frames[o.parentFrame].name for o in objects}
    pairs = robot.colliding_pairs(solutions[0], backend.config.contact_margin)
    return not any(link.get(a) in robot.tool_links or link.get(b) in robot.tool_links
                   for a, b in pairs)


def reachable_bin_poses(backend: BuiltinBackend, count: int, rng: np.random.Generator
                        ) -> tuple[list[np.ndarray], int]:
    """``count`` reachable :func:`bin_poses` and the number of unreachable ones skipped."""
    poses, skipped = [], 0
    while len(poses) < count:
        pose = bin_poses(1, rng)[0]
        if reachable(backend, pose):
            poses.append(pose)
        else:
            skipped += 1
    return poses, skipped


def ik_benchmark(backend: BuiltinBackend, poses: list[np.ndarray]) -> dict[str, float]:
    """Solve each pose from :data:`HOME`; a success reproduces the pose within 1e-6 m / rad.

    Returns:
        ``ik_queries``, ``ik_success_rate`` (0-1), ``ik_p50_ms``, ``ik_p95_ms``.
    """
    successes, times = 0, []
    for pose in poses:
        started = time.perf_counter()
        try:
            q = backend.ik(pose, HOME, contact=True)
        except MotionError:
            continue
        finally:
            times.append(time.perf_counter() - started)
        successes += bool(np.allclose(backend.tcp_pose(q), pose, atol=1e-6))
    p50, p95 = _summary(times)
    return {'ik_queries': len(poses), 'ik_success_rate': successes / len(poses),
            'ik_p50_ms': p50, 'ik_p95_ms': p95}


def run_benchmark(ik_poses: int = 1000, plan_queries: int = 200, seed: int = 0,
                  backend: BuiltinBackend | None = None) -> dict[str, float]:
    """The whole motion benchmark on the default workcell (see the module docstring).

    Returns:
        IK and planning figures (:func:`ik_benchmark`, :func:`planning_benchmark`) plus
        ``ik_unreachable_skipped`` and ``seed``.
    """
    # the controller's speed: the durations and torques of the moves it makes
    backend = backend or BuiltinBackend(RobotModel.from_workcell(),
                                        ControllerConfig().builtin_config())
    rng = np.random.default_rng(seed)
    backend.detach()
    backend.set_gripper_opening(GRIPPER_OPENING)
    poses, skipped = reachable_bin_poses(backend, ik_poses, rng)
    results = {'seed': seed, **ik_benchmark(backend, poses), 'ik_unreachable_skipped': skipped}
    results.update(planning_benchmark(backend, transport_queries(backend, plan_queries, rng)))
    return results


def transport_queries(backend: BuiltinBackend, count: int, rng: np.random.Generator,
                      lift_height: float = TaskConfig.lift_height) -> list[Query]:
    """Seeded starts lifted ``lift_height`` above grasps in the bin (IK-feasible ones only)."""
    queries = []
    backend.detach()
    while len(queries) < count:
        grasp = bin_poses(1, rng, (0.03, 0.10))[0]
        grasp[:3, 3] += (0.0, 0.0, lift_height)
        try:
            queries.append(Query(backend.ik(grasp, HOME, contact=True), rng.uniform(0.02, 0.06)))
        except MotionError:
            continue
    return queries


def planning_benchmark(backend: BuiltinBackend, queries: list[Query],
                       config: TaskConfig | None = None) -> dict[str, float]:
    """Plan every query to the pose above the place position, holding its object.

    Returns:
        ``plan_queries``, ``plan_success_rate`` (0-1), ``plan_p50_ms`` / ``plan_p95_ms`` (the
        full query: IK + plan + simplify + time-parametrize), ``ik_goal_p50_ms``,
        ``rrt_p50_ms`` / ``rrt_p95_ms``, ``toppra_p50_ms`` / ``toppra_p95_ms``,
        ``duration_p50_s`` / ``duration_p95_s`` (trajectory durations), ``collisions``
        (trajectories found in collision on re-check) and ``peak_torque_fraction`` (the
        largest joint torque of any trajectory as a fraction of that joint's URDF effort
        limit, :func:`peak_torque_fraction`).
    """
    config = config or TaskConfig()
    goal = np.array(config.place_pose)
    goal[2, 3] += config.place_height
    planner, robot = backend.planner, backend.robot
    total, ik_t, rrt_t, toppra_t, durations = [], [], [], [], []
    collisions, peak_torque = 0, 0.0
    for query in queries:
        x, z = config.attached_size
        backend.attach(Obstacle('held', 'box', (x, query.width, z), np.eye(4)))
        backend.set_gripper_opening(query.width)
        try:
            t0 = time.perf_counter()
            q_goal = backend.ik(goal, query.start)
            t1 = time.perf_counter()
            path = planner.plan_path(query.start, q_goal)
            t2 = time.perf_counter()
            trajectory = planner.time_parametrize(path)
            t3 = time.perf_counter()
        except MotionError:
            continue
        finally:
            backend.detach()
        total.append(t3 - t0)
        ik_t.append(t1 - t0)
        rrt_t.append(t2 - t1)
        toppra_t.append(t3 - t2)
        durations.append(trajectory.duration)
        peak_torque = max(peak_torque, peak_torque_fraction(robot, trajectory))
        backend.attach(Obstacle('held', 'box', (x, query.width, z), np.eye(4)))
        collisions += not _collision_free(robot, trajectory.positions,
                                          planner.config.check_step / 2)
        backend.detach()
    results = {'plan_queries': len(queries), 'plan_success_rate': len(total) / len(queries)}
    for name, values in (('plan', total), ('ik_goal', ik_t), ('rrt', rrt_t),
                         ('toppra', toppra_t)):
        results[f'{name}_p50_ms'], results[f'{name}_p95_ms'] = _summary(values)
    results['duration_p50_s'], results['duration_p95_s'] = (
        (float(v) for v in np.percentile(durations, [50, 95])) if durations
        else (float('nan'), float('nan')))
    results['collisions'] = collisions
    results['peak_torque_fraction'] = peak_torque
    return results


def peak_torque_fraction(robot: RobotModel, trajectory: JointTrajectory,
                         step: float = 0.005) -> float:
    """Largest ``|torque| / effort limit`` over the joints and ``trajectory`` as executed.

    The trajectory is sampled every ``step`` s as the robot interpolates it
    (:class:`TrajectorySampler`), and the torques are its inverse dynamics with gravity
    (:meth:`RobotModel.joint_torques`; no payload: the parts weigh at most 0.4 kg).
    """
    sampler = TrajectorySampler(trajectory, trajectory.positions[0])
    times = np.append(np.arange(0.0, sampler.duration, step), sampler.duration)
    states = [sampler(t) for t in times]
    torques = robot.joint_torques(np.array([p for p, _ in states]),
                                  np.array([v for _, v in states]),
                                  np.array([sampler.acceleration(t) for t in times]))
    return float((np.abs(torques) / robot.effort_limits).max())


def _collision_free(robot: object, positions: np.ndarray, step: float) -> bool:
    for a, b in zip(positions[:-1], positions[1:]):
        count = max(1, int(np.ceil(np.abs(b - a).max() / step)))
        if any(robot.in_collision(a + (b - a) * f, 0.0) for f in np.arange(count + 1) / count):
            return False
    return True


def format_table(results: dict[str, float]) -> str:
    """Results as an aligned two-column text table."""
    width = max(map(len, results))
    lines = []
    for name, value in results.items():
        text = f'{value:.4f}' if isinstance(value, float) else str(value)
        lines.append(f'{name:<{width}}  {text:>10}')
    return '\n'.join(lines)
