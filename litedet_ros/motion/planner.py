"""Joint-space planning (OMPL RRTConnect) and time parametrization (TOPP-RA).

A plan is: validity of start and goal, RRTConnect with a security margin (retried with fresh
seeds, then a longer budget), shortcut simplification, resampling of the polyline, time-optimal
parametrization under velocity and acceleration limits, and a dense collision re-check of the
timed trajectory. If the spline through the resampled path grazes an obstacle, the path is
timed segment by segment instead (stopping at each waypoint, exactly on the checked lines).
Several paths in turn can be timed as one, their junctions rounded off instead of stopped at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
import time

import numpy as np
from ompl import base as ob
from ompl import geometric as og
from ompl import util as ou
import toppra
from toppra import algorithm as toppra_algorithm
from toppra import constraint as toppra_constraint

from litedet_ros.motion.model import MotionError, RobotModel
from litedet_ros.trajectory import JointTrajectory, concatenate

ou.setLogLevel(ou.LogLevel.LOG_WARN)
# OMPL seeds its random numbers from the clock unless told: a process asking the same queries
# now plans the same paths (an in-process benchmark run repeats itself), unless an attempt runs
# out of its time budget. Before any OMPL object.
ou.RNG.setSeed(1)
logging.getLogger('toppra').setLevel(logging.WARNING)


class PlanningError(MotionError):
    """No collision-free path or trajectory was found within the time budget."""


@dataclass(frozen=True)
class PlannerConfig:
    """Planning and timing settings.

    Attributes:
        planning_time: time budget of one RRTConnect attempt, s.
        attempts: RRTConnect attempts before giving up (the last one gets 4x the budget).
        margin: security margin kept from obstacles while planning, m.
        check_step: largest joint motion between collision checks along an edge, rad.
        resample_step: largest joint distance between waypoints fed to the spline, rad.
        velocity_scaling: fraction of the URDF velocity limits used, (0, 1].
        acceleration_limit: joint acceleration limit at scaling 1, rad/s^2. 10: twice the
            5 that Universal Robots' MoveIt configuration gives every UR joint, which it calls
            conservative (the robot itself limits torques, not accelerations); the moves
            planned with it need under 40 % of the URDF's joint efforts, gravity included
            (``RobotModel.joint_torques``; ``litedet-ros bench motion``).
        acceleration_scaling: fraction of ``acceleration_limit`` used, (0, 1].
        sample_period: time between points of the output trajectory, s.
        start_jiggle: a start in contact (an arm left touching the bin by a jammed motion) is
            left through the nearest collision-free configuration found by random
            perturbations of up to this much per joint, rad (MoveIt's FixStartStateCollision
            request adapter does the same); 0 refuses such starts.
        start_jiggle_attempts: perturbations tried, with a radius growing to ``start_jiggle``.
    """

    planning_time: float = 0.2
    attempts: int = 3
    margin: float = 0.01
    check_step: float = 0.01
    resample_step: float = 0.05
    velocity_scaling: float = 0.5
    acceleration_limit: float = 10.0
    acceleration_scaling: float = 0.5
    sample_period: float = 0.02
    start_jiggle: float = 0.05
    start_jiggle_attempts: int = 200

    def __post_init__(self) -> None:
        positive = ('planning_time', 'margin', 'check_step', 'resample_step',
                    'acceleration_limit', 'sample_period')
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('velocity_scaling', 'acceleration_scaling'):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f'{name} must be in (0, 1], got {getattr(self, name)}')
        if self.attempts < 1 or self.start_jiggle_attempts < 1:
            raise ValueError(f'attempts and start_jiggle_attempts must be >= 1, got '
                             f'{self.attempts}, {self.start_jiggle_attempts}')
        if self.start_jiggle < 0:
            raise ValueError(f'start_jiggle must be >= 0, got {self.start_jiggle}')


class JointPlanner:
    """RRTConnect + simplification + TOPP-RA for the arm of a :class:`RobotModel`."""

    def __init__(self, robot: RobotModel, config: PlannerConfig | None = None) -> None:
        """Set up the OMPL problem over the arm's joint limits."""
        self.robot = robot
        self.config = config or PlannerConfig()
        dof = robot.dof
        self._space = ob.RealVectorStateSpace(dof)
        bounds = ob.RealVectorBounds(dof)
        for i in range(dof):
            bounds.setLow(i, float(robot.lower[i]))
            bounds.setHigh(i, float(robot.upper[i]))
        self._space.setBounds(bounds)
        self._setup = og.SimpleSetup(self._space)
        self._setup.setStateValidityChecker(self._valid)
        info = self._setup.getSpaceInformation()
        # OMPL's resolution is a fraction of the space's extent.
        info.setStateValidityCheckingResolution(
            self.config.check_step / self._space.getMaximumExtent())
        self._planner = og.RRTConnect(info)
        self._setup.setPlanner(self._planner)
        self._margin = self.config.margin

    def _valid(self, state: ob.State) -> bool:
        q = np.fromiter((state[i] for i in range(self.robot.dof)), np.float64, self.robot.dof)
        return not self.robot.in_collision(q, self._margin)

    def _state(self, q: np.ndarray) -> ob.State:
        state = self._space.allocState()
        for i, value in enumerate(q):
            state[i] = float(value)
        return state

    def plan_path(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Collision-free joint path.

        Args:
            start: ``float64[dof]`` start joints, rad; if in contact, the path first moves to a
                collision-free configuration within ``start_jiggle`` of it.
            goal: ``float64[dof]`` goal joints, rad (must respect the planning margin).

        Returns:
            ``float64[N, dof]`` simplified waypoints, first = start, last = goal.

        Raises:
            PlanningError: start or goal invalid, or no path within the attempts.
        """
        start, goal = (np.asarray(q, dtype=np.float64) for q in (start, goal))
        for name, q in (('start', start), ('goal', goal)):
            if not self.robot.within_limits(q):
                raise PlanningError(f'{name} configuration outside the joint limits')
        if self.robot.in_collision(goal, self.config.margin):
            pairs = self.robot.colliding_pairs(goal, self.config.margin)
            raise PlanningError(f'goal configuration in collision: {pairs[:3]}')
        if self.robot.in_collision(start, 0.0):
            return np.vstack([start, self.plan_path(self._free_start(start), goal)])
        # A start inside the margin (e.g. just after a grasp) is allowed to leave it.
        self._margin = 0.0 if self.robot.in_collision(start, self.config.margin) else \
            self.config.margin
        try:
            if self._edge_valid(start, goal, self._margin):
                return np.array([start, goal])
            return self._rrt(start, goal)
        finally:
            self._margin = self.config.margin

    def _free_start(self, start: np.ndarray) -> np.ndarray:
        """A collision-free configuration near ``start`` (seeded: the same answer every time)."""
        config = self.config
        rng = np.random.default_rng(0)
        for k in range(1, config.start_jiggle_attempts + 1):
            radius = config.start_jiggle * k / config.start_jiggle_attempts
            q = start + rng.uniform(-radius, radius, start.shape)
            if self.robot.within_limits(q) and not self.robot.in_collision(q, 0.0):
                return q
        pairs = self.robot.colliding_pairs(start)
        raise PlanningError(f'start configuration in collision: {pairs[:3]}, and no free one '
                            f'within {config.start_jiggle} rad')

    def _edge_valid(self, a: np.ndarray, b: np.ndarray, margin: float) -> bool:
        steps = max(1, int(np.ceil(np.abs(b - a).max() / self.config.check_step)))
        return not any(self.robot.in_collision(a + (b - a) * f, margin)
                       for f in np.linspace(0.0, 1.0, steps + 1)[1:])

    def _rrt(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
        setup = self._setup
        for attempt in range(self.config.attempts):
            setup.clear()
            setup.setStartAndGoalStates(self._state(start), self._state(goal))
            budget = self.config.planning_time * (4 if attempt == self.config.attempts - 1
                                                  else 1)
            status = setup.solve(budget)
            if status.getStatus() == ob.PlannerStatus.EXACT_SOLUTION:
                path = setup.getSolutionPath()
                # shortcut until nothing shortens it (about 0.1 s here): what a time budget
                # gets done depends on the machine's load
                setup.getPathSimplifier().simplifyMax(path)
                return np.array([[path.getState(k)[i] for i in range(self.robot.dof)]
                                 for k in range(path.getStateCount())])
        raise PlanningError(f'no collision-free path found in {self.config.attempts} attempts')

    def time_parametrize(self, path: np.ndarray, names: tuple[str, ...] | None = None
                         ) -> JointTrajectory:
        """Time-optimal trajectory along a joint path, re-checked for collision.

        Args:
            path: ``float64[N, dof]`` collision-free polyline (N >= 2), rad.
            names: joint names of the trajectory; default the robot's arm joints.

        Returns:
            Trajectory sampled every ``sample_period`` (plus the exact end point), starting
            and ending at rest.

        Raises:
            PlanningError: the parametrization failed or every timing collides.
        """
        path = _distinct(path)
        names = names or self.robot.arm_joints
        if len(path) < 2:
            return JointTrajectory(names, np.array([0.0]), path[:1].copy(),
                                   np.zeros_like(path[:1]))
        step = self.config.resample_step
        escape = self._escape(path)
        trajectory = JointTrajectory(names, *self._toppra(_resample(path, step)))
        if self._trajectory_valid(trajectory, escape):
            return trajectory
        # Spline grazed an obstacle: time each straight segment separately.
        trajectory = concatenate([
            JointTrajectory(names, *self._toppra(_resample(path[k:k + 2], step)))
            for k in range(len(path) - 1)])
        if not self._trajectory_valid(trajectory, escape):
            raise PlanningError('timed trajectory collides on re-check')
        return trajectory

    def time_sequence(self, paths: Sequence[np.ndarray], blend_radii: Sequence[float]
                      ) -> JointTrajectory:
        """One trajectory along joint paths in turn, passing junctions without stopping.

        A junction with a blend radius is rounded off: the path is left where its TCP comes
        within the radius of the junction's (at most half way along either path), for a
        quadratic Bezier curve in joint space pulled towards the junction. Paths joined this
        way are timed as one and re-checked for collision; if that collides, each is timed on
        its own (stopping at the junctions) instead.

        Args:
            paths: ``float64[N_k, dof]`` collision-free polylines (N_k >= 2), each starting
                where the previous one ends, rad.
            blend_radii: per junction (one fewer than paths), the TCP distance from it within
                which the motion may leave the paths, m; 0 stops there.

        Raises:
            PlanningError: the parametrization failed or every timing collides.
        """
        pieces, first = [], 0
        for k, radius in enumerate([*blend_radii, 0.0]):
            if radius <= 0:
                pieces.append(self._time_blended(paths[first:k + 1], blend_radii[first:k]))
                first = k + 1
        return concatenate(pieces)

    def _time_blended(self, paths: Sequence[np.ndarray], blend_radii: Sequence[float]
                      ) -> JointTrajectory:
        """:meth:`time_sequence` of paths whose junctions all have a blend radius."""
        if len(paths) > 1:
            trajectory = JointTrajectory(self.robot.arm_joints, *self._toppra(
                _resample(self._rounded(paths, blend_radii), self.config.resample_step)))
            if self._trajectory_valid(trajectory, self._escape(_distinct(paths[0]))):
                return trajectory
        return concatenate([self.time_parametrize(path) for path in paths])

    def _rounded(self, paths: Sequence[np.ndarray], blend_radii: Sequence[float]
                 ) -> np.ndarray:
        """``paths`` joined into one ``float64[N, dof]`` path, junctions rounded off."""
        legs = [_resample(_distinct(path), self.config.check_step) for path in paths]
        joined, tail = legs[0], len(legs[0])  # tail: points of the last leg not yet blended
        for leg, radius in zip(legs[1:], blend_radii):
            corner = leg[0]
            before = self._blend_index(joined[::-1][:tail // 2 + 1], corner, radius)
            after = self._blend_index(leg[:len(leg) // 2 + 1], corner, radius)
            curve = _bezier(joined[-1 - before], corner, leg[after], self.config.check_step)
            joined = np.vstack([joined[:len(joined) - before], curve[1:-1], leg[after:]])
            tail = len(leg) - after
        return _distinct(joined)

    def _blend_index(self, points: np.ndarray, corner: np.ndarray, radius: float) -> int:
        """Where a blend leaves a path: the last of ``points`` with the TCP within ``radius``.

        ``points`` run away from the junction at joints ``corner`` (the first is the corner).
        """
        centre = self.robot.frame_pose(corner)[:3, 3]
        for k, q in enumerate(points):
            if np.linalg.norm(self.robot.frame_pose(q)[:3, 3] - centre) > radius:
                return k - 1
        return len(points) - 1

    def _escape(self, path: np.ndarray) -> np.ndarray | None:
        """Where a start in contact (see plan_path) has left it, or None for a free start.

        The path's first segment, from the start to this configuration, goes unchecked.
        """
        return path[1] if self.robot.in_collision(path[0], 0.0) else None

    def _toppra(self, path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TOPP-RA over a dense polyline; (times [M], positions [M, dof], velocities)."""
        config = self.config
        chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
        s = chord / chord[-1]
        spline = toppra.SplineInterpolator(s, path, bc_type='natural')
        velocity = 0.98 * config.velocity_scaling * self.robot.velocity_limits
        acceleration = np.full(self.robot.dof,
                               config.acceleration_scaling * config.acceleration_limit)
        constraints = [
            toppra_constraint.JointVelocityConstraint(np.stack([-velocity, velocity], axis=1)),
            toppra_constraint.JointAccelerationConstraint(
                np.stack([-acceleration, acceleration], axis=1))]
        grid = np.unique(np.concatenate([s, np.linspace(0.0, 1.0, 101)]))
        instance = toppra_algorithm.TOPPRA(constraints, spline, gridpoints=grid,
                                           parametrizer='ParametrizeConstAccel')
        timed = instance.compute_trajectory(0.0, 0.0)
        if timed is None:
            raise PlanningError('time parametrization failed')
        duration = float(timed.duration)
        times = np.arange(0.0, duration, config.sample_period)
        if duration - times[-1] < 0.25 * config.sample_period and times.size > 1:
            times = times[:-1]
        times = np.append(times, duration)
        positions = timed(times)
        velocities = timed(times, 1)
        positions[0], positions[-1] = path[0], path[-1]
        velocities[0] = velocities[-1] = 0.0
        return times, positions, velocities

    def _trajectory_valid(self, trajectory: JointTrajectory,
                          escape: np.ndarray | None = None) -> bool:
        """Contact check (margin 0) along the sampled trajectory, refined to ``check_step``.

        With ``escape`` (the free configuration a start in contact is left through), the
        samples before the one nearest to it are not checked.
        """
        positions = trajectory.positions
        if escape is not None:
            positions = positions[int(np.argmin(np.abs(positions - escape).max(axis=1))):]
        return all(self._edge_valid(a, b, 0.0) for a, b in zip(positions[:-1], positions[1:]))

    def plan(self, start: np.ndarray, goal: np.ndarray) -> JointTrajectory:
        """Plan and time a collision-free motion ``start`` -> ``goal`` (joints, rad)."""
        started = time.perf_counter()
        path = self.plan_path(start, goal)
        trajectory = self.time_parametrize(path)
        logging.getLogger(__name__).debug('planned %d waypoints in %.1f ms', len(path),
                                          1e3 * (time.perf_counter() - started))
        return trajectory


def _distinct(path: np.ndarray) -> np.ndarray:
    """``path`` as ``float64[N, dof]`` without consecutive repeated waypoints."""
    path = np.asarray(path, dtype=np.float64)
    keep = np.concatenate([[True], np.abs(np.diff(path, axis=0)).max(axis=1) > 1e-9])
    return path[keep]


def _bezier(start: np.ndarray, control: np.ndarray, end: np.ndarray, step: float
            ) -> np.ndarray:
    """Quadratic Bezier curve ``start`` -> ``end`` pulled towards ``control``.

    Returns:
        ``float64[M, dof]`` points, consecutive ones at most about ``step`` apart (rad).
    """
    length = np.abs(control - start).max() + np.abs(end - control).max()
    u = np.linspace(0.0, 1.0, max(2, int(np.ceil(length / step)) + 1))[:, None]
    return (1 - u) ** 2 * start + 2 * u * (1 - u) * control + u ** 2 * end


def _resample(path: np.ndarray, step: float) -> np.ndarray:
    """Insert points on each segment so consecutive points are at most ``step`` apart (rad)."""
    points = [path[:1]]
    for a, b in zip(path[:-1], path[1:]):
        count = max(1, int(np.ceil(np.abs(b - a).max() / step)))
        points.append(a + (b - a) * (np.arange(1, count + 1) / count)[:, None])
    return np.vstack(points)
