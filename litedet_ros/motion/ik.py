"""Inverse kinematics of the TCP: closed form for UR arms, damped least squares for any arm.

The closed-form solver (``ur_analytic_ik``) is used when its forward kinematics reproduces the
URDF's (checked at start-up on random configurations), so a modified arm silently falls back to
the numerical solver instead of returning wrong joints. Poses are TCP poses in the planning
frame (``float64[4, 4]``); the solver converts them to the UR ``base`` -> ``tool0`` convention.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import itertools

import numpy as np
import pinocchio as pin

from litedet_ros.motion.model import MotionError, RobotModel

UR_MODELS = ('ur3', 'ur3e', 'ur5', 'ur5e', 'ur7e', 'ur10', 'ur10e', 'ur12e', 'ur15', 'ur16e',
             'ur18', 'ur20', 'ur30')


class IkError(MotionError):
    """No joint configuration reaches the pose within limits and free of collision."""


@dataclass(frozen=True)
class IkConfig:
    """Numerical IK and Cartesian path settings.

    Attributes:
        tolerance: pose error accepted by the numerical solver (norm of the twist, m / rad).
        max_iterations: damped-least-squares iterations per start.
        damping: damping factor of the least-squares step.
        restarts: random restarts of the numerical solver after the seed fails.
        max_ik_step: largest joint change of one numerical iteration, rad.
        cartesian_step: largest TCP translation between Cartesian waypoints, m.
        cartesian_angle_step: largest TCP rotation between Cartesian waypoints, rad.
        max_joint_step: largest joint change between consecutive Cartesian waypoints, rad
            (a larger one means a branch switch or a singularity: the path is refused).
        posture: joints (rad) whose branch the closed-form solver's goals are taken in when
            one there is free (the elbow and wrist 2 bent the same way: the signs of the sines
            of joints 3 and 5), before the nearest in another branch: a goal nearest the
            current joints in another branch flips the elbow or the wrist on the way, and
            the arm carries on from there. None: the nearest.
    """

    tolerance: float = 1e-6
    max_iterations: int = 100
    damping: float = 1e-4
    restarts: int = 10
    max_ik_step: float = 0.5
    cartesian_step: float = 0.005
    cartesian_angle_step: float = 0.05
    max_joint_step: float = 0.15
    posture: tuple[float, ...] | None = None


def _ur_solver(robot: RobotModel) -> object | None:
    """Return the ``ur_analytic_ik`` module of the arm whose kinematics match, or None."""
    try:
        import ur_analytic_ik  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    if not (robot.model.existFrame('base') and robot.model.existFrame('tool0')):
        return None
    base = robot.static_frame('base')
    samples = np.random.default_rng(0).uniform(-np.pi, np.pi, (5, robot.dof))
    expected = [np.linalg.solve(base, robot.frame_pose(q, 'tool0')) for q in samples]
    for name in UR_MODELS:
        solver = getattr(ur_analytic_ik, name, None)
        if solver is not None and all(np.allclose(solver.forward_kinematics(*q), pose, atol=1e-6)
                                      for q, pose in zip(samples, expected)):
            return solver
    return None


def _wrap_near(solutions: np.ndarray, reference: np.ndarray, lower: np.ndarray,
               upper: np.ndarray) -> np.ndarray:
    """Shift each joint by a multiple of 2 pi to the value within the limits nearest ``reference``.

    The nearest value at all (within pi of ``reference``) is not enough: from a wrist 3 at -200
    deg a goal's -12 deg comes out as -372, past the -360 limit, and its branch would be dropped
    for one that flips the elbow on the way (a part in the hand flies off).

    Args:
        solutions: ``float64[K, dof]`` joints, rad.
        reference: ``float64[dof]`` joints to be near, rad.
        lower: ``float64[dof]`` lower joint limits, rad.
        upper: ``float64[dof]`` upper joint limits, rad.

    Returns:
        ``float64[K', dof]``: the shifted solutions that have a value within the limits for
        every joint, in their order.
    """
    nearest = reference + np.remainder(solutions - reference + np.pi, 2 * np.pi) - np.pi
    shifted = nearest[None] + 2 * np.pi * np.array([0.0, -1.0, 1.0])[:, None, None]
    inside = (shifted >= lower - 1e-9) & (shifted <= upper + 1e-9)  # [3, K, dof]
    pick = np.where(inside, np.abs(shifted - reference), np.inf).argmin(axis=0)
    wrapped = np.take_along_axis(shifted, pick[None], axis=0)[0]
    return wrapped[inside.any(axis=0).all(axis=1)]


class InverseKinematics:
    """TCP inverse kinematics with joint-limit and collision filtering."""

    def __init__(self, robot: RobotModel, config: IkConfig | None = None,
                 analytic: bool = True) -> None:
        """Set up the solver.

        Args:
            robot: the robot model (its attached object and obstacles are honoured).
            config: numerical and Cartesian settings.
            analytic: use the closed form when the arm is a UR (False forces the numerical one).
        """
        self.robot = robot
        self.config = config or IkConfig()
        self._ur = _ur_solver(robot) if analytic else None
        if self._ur is not None:
            # tcp pose in planning frame -> tool0 pose in the UR base frame
            self._base_inv = np.linalg.inv(robot.static_frame('base'))
            zero = np.zeros(robot.dof)
            self._tcp_to_tool0 = np.linalg.solve(robot.frame_pose(zero),
                                                 robot.frame_pose(zero, 'tool0'))
        self._rng = np.random.default_rng(0)

    @property
    def analytic(self) -> bool:
        """Whether the closed-form solver is in use."""
        return self._ur is not None

    def solutions(self, pose: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """All IK branches for ``pose``, each turned nearest ``reference`` within the limits.

        Args:
            pose: ``float64[4, 4]`` TCP target, planning frame.
            reference: ``float64[dof]`` joints the solutions should be close to, rad.

        Returns:
            ``float64[K, dof]`` sorted by distance to ``reference`` (K may be 0). Not checked
            for collision.
        """
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise IkError('IK target must be a finite 4x4 pose')
        reference = np.asarray(reference, dtype=np.float64)
        if self._ur is not None:
            target = self._base_inv @ pose @ self._tcp_to_tool0
            found = np.asarray(self._ur.inverse_kinematics(target), dtype=np.float64)
            candidates = _wrap_near(found.reshape(-1, self.robot.dof), reference,
                                    self.robot.lower, self.robot.upper)
        else:
            found = self._dls(pose, reference)
            candidates = np.array([] if found is None or not self.robot.within_limits(found)
                                  else [found]).reshape(-1, self.robot.dof)
        order = np.argsort(np.linalg.norm(candidates - reference, axis=1))
        return candidates[order]

    def solve(self, pose: np.ndarray, reference: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Collision-free IK solution nearest ``reference`` (in the branch of ``posture`` first).

        Args:
            pose: ``float64[4, 4]`` TCP target, planning frame.
            reference: ``float64[dof]`` current joints, rad.
            margin: clearance required from obstacles, m.

        Returns:
            ``float64[dof]`` joints, rad.

        Raises:
            IkError: no branch reaches the pose within the limits, or all collide.
        """
        candidates = self.solutions(pose, reference)
        if self._ur is None:
            candidates = itertools.chain(candidates, self._restarts(pose))
        elif self.config.posture is not None:
            candidates = candidates[np.argsort(~self._in_posture(candidates), kind='stable')]
        colliding = []
        for q in candidates:
            if not self.robot.in_collision(q, margin):
                return q
            colliding.append(q)
        if not colliding:
            raise IkError('pose is out of reach (no IK solution within joint limits)')
        pairs = self.robot.colliding_pairs(colliding[0], margin)
        raise IkError(f'all {len(colliding)} IK solutions collide (nearest: {pairs[:3]})')

    def _in_posture(self, solutions: np.ndarray) -> np.ndarray:
        """``bool[K]``: which UR ``solutions`` ``[K, 6]`` lie in the branch of ``posture``."""
        bends = np.sign(np.sin(solutions[:, [2, 4]]))
        return (bends == np.sign(np.sin(np.asarray(self.config.posture)[[2, 4]]))).all(axis=1)

    def cartesian(self, start: np.ndarray, pose: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Joint waypoints moving the TCP on a straight line from FK(start) to ``pose``.

        Position is interpolated linearly and orientation along the geodesic; each waypoint's
        IK is the branch nearest the previous waypoint.

        Args:
            start: ``float64[dof]`` start joints, rad.
            pose: ``float64[4, 4]`` TCP goal, planning frame.
            margin: clearance required at every waypoint, m.

        Returns:
            ``float64[N, dof]`` waypoints, N >= 2, the first equal to ``start``.

        Raises:
            IkError: a waypoint is unreachable, collides, or needs a joint jump larger than
                ``max_joint_step`` (branch switch or singularity).
        """
        start = np.asarray(start, dtype=np.float64)
        first = self.robot.frame_pose(start)
        pose = np.asarray(pose, dtype=np.float64)
        rotation = pin.log3(first[:3, :3].T @ pose[:3, :3])
        translation = pose[:3, 3] - first[:3, 3]
        steps = max(1, int(np.ceil(max(np.linalg.norm(translation) / self.config.cartesian_step,
                                       np.linalg.norm(rotation) /
                                       self.config.cartesian_angle_step))))
        waypoints = [start]
        for fraction in np.arange(1, steps + 1) / steps:
            target = np.eye(4)
            target[:3, :3] = first[:3, :3] @ pin.exp3(fraction * rotation)
            target[:3, 3] = first[:3, 3] + fraction * translation
            previous = waypoints[-1]
            candidates = self.solutions(target, previous)
            if len(candidates) == 0:
                raise IkError(f'straight line leaves the workspace at {fraction:.0%}')
            q = candidates[0]
            if np.abs(q - previous).max() > self.config.max_joint_step:
                raise IkError(f'straight line needs a joint jump at {fraction:.0%} '
                              '(singularity or branch switch)')
            if self.robot.in_collision(q, margin):
                pairs = self.robot.colliding_pairs(q, margin)
                raise IkError(f'straight line collides at {fraction:.0%}: {pairs[:3]}')
            waypoints.append(q)
        return np.array(waypoints)

    def _dls(self, pose: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
        """Damped least squares from ``seed``; the converged joints or None."""
        target = pin.SE3(pose)
        q = np.clip(seed, self.robot.lower, self.robot.upper)
        damping = self.config.damping
        for _ in range(self.config.max_iterations):
            current, jacobian = self.robot.tcp_jacobian(q)
            offset = pin.SE3(current).actInv(target)
            error = pin.log6(offset).vector
            if np.linalg.norm(error) < self.config.tolerance:
                return q
            jac = -pin.Jlog6(offset.inverse()) @ jacobian
            step = -jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), error)
            step *= min(1.0, self.config.max_ik_step / max(np.abs(step).max(), 1e-12))
            q = np.clip(q + step, self.robot.lower, self.robot.upper)
        return None

    def _restarts(self, pose: np.ndarray) -> Iterator[np.ndarray]:
        """Numerical IK from random seeds: yields each converged ``float64[dof]``."""
        for _ in range(self.config.restarts):
            seed = self._rng.uniform(np.maximum(self.robot.lower, -np.pi),
                                     np.minimum(self.robot.upper, np.pi))
            q = self._dls(pose, seed)
            if q is not None:
                yield q
