"""Joint trajectories: the planner's output, the controller's command, the simulator's input.

A trajectory is what a ros2_control ``joint_trajectory_controller`` receives: joint names,
points with ``time_from_start``, positions and optionally velocities. Validation (refuse bad
input) checks it in full before any motion starts, so a refused trajectory never moves the arm;
the sampler interpolates it as the controller does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicHermiteSpline, interp1d

from litedet_ros.errors import LitedetError


class TrajectoryError(LitedetError):
    """A joint trajectory is refused; the message says why. The arm did not move."""


@dataclass(frozen=True)
class JointTrajectory:
    """Joint-space trajectory.

    Attributes:
        joint_names: names of the J joints, in column order.
        times: ``float64[N]`` time from start of each point, s.
        positions: ``float64[N, J]`` joint positions, rad (m for prismatic joints).
        velocities: ``float64[N, J]`` joint velocities, rad/s, or None (then positions are
            interpolated linearly, as the controller does without velocities).
    """

    joint_names: tuple[str, ...]
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray | None = None

    @property
    def duration(self) -> float:
        """Time from start of the last point, s."""
        return float(self.times[-1])


def concatenate(trajectories: Sequence[JointTrajectory]) -> JointTrajectory:
    """One trajectory running ``trajectories`` one after the other.

    Each must start where the previous one ends and name the same joints in the same order;
    the repeated first points are dropped. Velocities are kept if every part has them.
    """
    first = trajectories[0]
    times, positions = [first.times], [first.positions]
    velocities = [first.velocities]
    for part in trajectories[1:]:
        times.append(part.times[1:] - part.times[0] + times[-1][-1])
        positions.append(part.positions[1:])
        velocities.append(None if part.velocities is None else part.velocities[1:])
    joined = None if any(v is None for v in velocities) else np.vstack(velocities)
    return JointTrajectory(first.joint_names, np.concatenate(times), np.vstack(positions),
                           joined)


@dataclass(frozen=True)
class JointLimits:
    """Limits of the joints a trajectory may command.

    Attributes:
        names: joint names (the controller's joint list), in the order of the arrays.
        lower: ``float64[J]`` lower position limits.
        upper: ``float64[J]`` upper position limits.
        velocity: ``float64[J]`` absolute velocity limits.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray


def validate_trajectory(trajectory: JointTrajectory, limits: JointLimits,
                        current: np.ndarray, start_tolerance: float = 0.05,
                        velocity_margin: float = 1e-3) -> JointTrajectory:
    """Check a trajectory against the controller's joints, limits and current state.

    Args:
        trajectory: the received trajectory, joints in any order.
        limits: the controller's joints and their limits; the trajectory must name all of them.
        current: ``float64[J]`` current joint positions, in ``limits.names`` order.
        start_tolerance: largest allowed distance of the first point from ``current``, per
            joint, rad.
        velocity_margin: relative slack on velocity limits (rounding in upstream planners).

    Returns:
        The trajectory with columns reordered to ``limits.names``.

    Raises:
        TrajectoryError: unknown, missing or repeated joint names; empty or ragged arrays;
            NaN/inf; time stamps negative or not strictly increasing; positions beyond limits;
            velocities (given, or implied between points) beyond limits; first point further
            than ``start_tolerance`` from ``current``.
    """
    names = tuple(trajectory.joint_names)
    unknown = sorted(set(names) - set(limits.names))
    if unknown:
        raise TrajectoryError(f'unknown joint name(s) {unknown}; expected {list(limits.names)}')
    if len(set(names)) != len(names) or set(names) != set(limits.names):
        raise TrajectoryError(f'trajectory must name each of {list(limits.names)} once, '
                              f'got {list(names)}')
    times = np.asarray(trajectory.times, dtype=np.float64)
    positions = np.asarray(trajectory.positions, dtype=np.float64)
    joints = len(names)
    if times.ndim != 1 or times.size == 0 or positions.shape != (times.size, joints):
        raise TrajectoryError(f'expected N >= 1 times and N x {joints} positions, got '
                              f'{times.shape} and {positions.shape}')
    velocities = None
    if trajectory.velocities is not None:
        velocities = np.asarray(trajectory.velocities, dtype=np.float64)
        if velocities.shape != positions.shape:
            raise TrajectoryError(f'velocities shape {velocities.shape} != positions shape '
                                  f'{positions.shape}')
    arrays = [times, positions] + ([velocities] if velocities is not None else [])
    if not all(np.isfinite(a).all() for a in arrays):
        raise TrajectoryError('trajectory contains NaN or inf')
    if times[0] < 0 or np.any(np.diff(times) <= 0):
        raise TrajectoryError('time_from_start must be >= 0 and strictly increasing')
    order = [names.index(n) for n in limits.names]
    positions = positions[:, order]
    velocities = velocities[:, order] if velocities is not None else None
    below = positions < limits.lower - 1e-9
    above = positions > limits.upper + 1e-9
    if below.any() or above.any():
        point, joint = np.argwhere(below | above)[0]
        raise TrajectoryError(
            f'point {point}: {limits.names[joint]} = {positions[point, joint]:.4f} outside '
            f'[{limits.lower[joint]:.4f}, {limits.upper[joint]:.4f}]')
    vmax = limits.velocity * (1.0 + velocity_margin)
    if velocities is not None and (np.abs(velocities) > vmax).any():
        point, joint = np.argwhere(np.abs(velocities) > vmax)[0]
        raise TrajectoryError(f'point {point}: {limits.names[joint]} velocity '
                              f'{velocities[point, joint]:.3f} beyond limit {vmax[joint]:.3f}')
    start = np.asarray(current, dtype=np.float64)
    # Implied velocities: from the current state to the first point, then between points.
    path = np.vstack([start, positions])
    dt = np.diff(np.concatenate([[0.0], times]))
    implied = np.abs(np.diff(path, axis=0))
    limit = vmax * np.where(dt > 0, dt, np.inf)[:, None]
    if (implied > limit)[dt > 0].any():
        segment, joint = np.argwhere((implied > limit) & (dt > 0)[:, None])[0]
        raise TrajectoryError(f'segment to point {segment}: {limits.names[joint]} needs '
                              f'{implied[segment, joint] / dt[segment]:.3f} rad/s, beyond '
                              f'limit {vmax[joint]:.3f}')
    error = np.abs(positions[0] - start)
    if error.max() > start_tolerance:
        joint = int(np.argmax(error))
        raise TrajectoryError(f'first point is {error[joint]:.4f} from the current state on '
                              f'{limits.names[joint]} (tolerance {start_tolerance})')
    return JointTrajectory(tuple(limits.names), times, positions, velocities)


class TrajectorySampler:
    """Evaluate a validated trajectory at any time, starting from the current state.

    Before the first point the arm moves from ``start`` to it (as joint_trajectory_controller
    does when ``time_from_start`` of the first point is > 0); after the last point it holds.
    """

    def __init__(self, trajectory: JointTrajectory, start: np.ndarray) -> None:
        """Build the interpolant.

        Args:
            trajectory: a trajectory returned by :func:`validate_trajectory`.
            start: ``float64[J]`` joint positions when execution starts.
        """
        times = trajectory.times
        positions = trajectory.positions
        velocities = trajectory.velocities
        if times[0] > 0:
            times = np.concatenate([[0.0], times])
            positions = np.vstack([start, positions])
            if velocities is not None:
                velocities = np.vstack([np.zeros_like(start), velocities])
        self.duration = float(times[-1])
        self._final = positions[-1]
        if times.size == 1:
            self._spline = None
        elif velocities is not None:
            self._spline = CubicHermiteSpline(times, positions, velocities, axis=0)
        else:
            self._spline = interp1d(times, positions, axis=0)
        self._velocity = (self._spline.derivative() if velocities is not None and
                          self._spline is not None else None)
        self._acceleration = None if self._velocity is None else self._velocity.derivative()
        self._times = times
        self._positions = positions

    def __call__(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (positions ``float64[J]``, velocities ``float64[J]``) at time ``t`` s."""
        if self._spline is None or t >= self.duration:
            return self._final.copy(), np.zeros_like(self._final)
        t = max(t, 0.0)
        if self._velocity is not None:
            return self._spline(t), self._velocity(t)
        k = int(np.clip(np.searchsorted(self._times, t, side='right') - 1, 0,
                        self._times.size - 2))
        slope = ((self._positions[k + 1] - self._positions[k]) /
                 (self._times[k + 1] - self._times[k]))
        return self._spline(t), slope

    def acceleration(self, t: float) -> np.ndarray:
        """Return the accelerations ``float64[J]`` at time ``t`` s (zero without velocities)."""
        if self._acceleration is None or t >= self.duration:
            return np.zeros_like(self._final)
        return self._acceleration(max(t, 0.0))
