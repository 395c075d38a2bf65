"""The controller's ROS-free parts: its settings, the robot seen through messages, the grasp inbox.

The controller node wires these to topics: :class:`RemoteRobot` is the task's
:class:`~litedet_ros.motion.task.RobotInterface` over a ros2_control style robot (joint states
in; trajectories and gripper commands out through callables), :class:`GraspInbox` keeps the
latest grasp array that is in the planning frame and fresh enough to plan with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
import math
import threading
import time

import numpy as np

from litedet_ros.description import GRIPPER_JOINT, HOME_JOINTS, default_finger_length
from litedet_ros.errors import InvalidMessageError, LitedetError, StaleInputError
from litedet_ros.grasping.types import Grasp, Push
from litedet_ros.motion.backend import BACKENDS, BuiltinConfig, MotionBackend, make_backend
from litedet_ros.motion.ik import IkConfig
from litedet_ros.motion.planner import PlannerConfig
from litedet_ros.motion.task import GraspCandidates, TaskConfig, tool_down_pose
from litedet_ros.trajectory import JointTrajectory

NS_PER_S = 1_000_000_000


class ControllerConfigError(LitedetError):
    """A controller setting is out of its range."""


class RobotUnavailableError(LitedetError):
    """A command cannot reach the robot (nothing subscribes to its topic)."""


@dataclass(frozen=True)
class ControllerConfig:
    """Validated controller settings (the node's parameters; m, rad, s).

    Attributes:
        backend: motion backend, 'builtin' or 'moveit'.
        velocity_scaling: fraction of the URDF joint velocity limits used, (0, 1].
        acceleration_scaling: fraction of the planner's acceleration limit used, (0, 1].
        max_grasp_age: grasp arrays older than this (ROS clock) are refused, s; 0 disables.
        joint_state_timeout: joint states stamped longer ago than this (ROS clock) are
            stale: no planning, and a running motion is halted, s.
        grasp_wait_timeout: longest wait for a fresh grasp array before an attempt, s; none
            arriving ends a run (``~/run``) as an empty bin.
        max_consecutive_failures: a run stops after this many failed attempts in a row
            (looks without a feasible grasp for the detected objects included, unless a
            push was made in them).
        max_pushes_in_a_row: pushes made since a grasp was last tried that do not count as
            failures (see :class:`~litedet_ros.motion.task.TaskConfig`); 0 never pushes.
        pre_grasp_distance: back-off along the approach axis before the grasp, m.
        lift_height: straight lift after closing, m.
        clear_height: TCP height at which the open hand clears the bin rim: pre-grasps and
            lifts reach at least this high (see :class:`~litedet_ros.motion.task.TaskConfig`);
            0 disables, m.
        place_position: (x, y, z) of the TCP at release, planning frame, m.
        place_yaw: tool rotation about the vertical at release, rad.
        place_half_turn: the release may also be half a turn from ``place_yaw``, whichever
            the arm turns less to get to (see :class:`~litedet_ros.motion.task.TaskConfig`).
        place_grid: (columns along x, rows along y) of release spots centred on
            ``place_position``, used in turn; (1, 1) releases every part at the same spot.
        place_spacing: distance between neighbouring release spots, m.
        place_height: height of the transport goal above the place position, m.
        retreat_distance: straight rise after the release, m; 0: none, the part is dropped
            (see :class:`~litedet_ros.motion.task.TaskConfig`).
        departure_rise: the next move from the spot of a release starts this far straight up,
            without stopping (see :class:`~litedet_ros.motion.task.TaskConfig`); 0: off, m.
        descent_guard: the descent into the bin stops where the TCP gets this far off its line
            (a part pushing the arm aside) and the hand closes there (see
            :class:`~litedet_ros.motion.task.TaskConfig`); 0 disables, m.
        push_guard: a push stops where the TCP gets this far below its path (a jammed part
            twisting the hand down towards the floor) and the hand backs off upwards (see
            :class:`~litedet_ros.motion.task.TaskConfig`); 0 disables, m.
        still_looks: with grasps in sight, the bin is looked at again and only grasps of parts
            whose detection box did not move are tried; at most this many more looks when
            every part moved (see :class:`~litedet_ros.motion.task.TaskConfig`); 0: one look.
        still_gap: least time between the images of the two looks, s.
        still_box_tolerance: largest shift of a box's side between the two looks, px.
        min_grip_width: finger width below which the hand counts as empty, m.
        gripper_timeout: longest wait for the fingers to settle, s.
        goal_tolerance: largest joint error accepted at the end of a motion, rad.
        control_period: polling period of execution, pause and stop, s.
        finger_length: finger length of the workcell description (xacro ``finger_length``)
            the built-in backend plans with, m.
    """

    backend: str = 'builtin'
    velocity_scaling: float = 1.0
    acceleration_scaling: float = 1.0
    max_grasp_age: float = 2.0
    joint_state_timeout: float = 0.5
    grasp_wait_timeout: float = 5.0
    max_consecutive_failures: int = 3
    max_pushes_in_a_row: int = 6
    pre_grasp_distance: float = 0.10
    lift_height: float = 0.15
    clear_height: float = 0.22
    place_position: tuple[float, float, float] = (0.05, 0.46, 0.16)
    place_yaw: float = 0.0
    place_half_turn: bool = True
    place_grid: tuple[int, int] = (3, 2)
    place_spacing: float = 0.08
    place_height: float = 0.10
    retreat_distance: float = 0.0
    departure_rise: float = 0.05
    descent_guard: float = 0.003
    push_guard: float = 0.003
    still_looks: int = 2
    still_gap: float = 0.1
    still_box_tolerance: float = 2.0
    min_grip_width: float = 0.004
    gripper_timeout: float = 2.0
    goal_tolerance: float = 0.03
    control_period: float = 0.01
    finger_length: float = field(default_factory=default_finger_length)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ControllerConfigError(f'backend must be one of {BACKENDS}, got '
                                        f'{self.backend!r}')
        if len(self.place_position) != 3 or not all(map(math.isfinite, self.place_position)):
            raise ControllerConfigError(f'place_position must be 3 finite values (x, y, z in '
                                        f'm), got {list(self.place_position)}')
        object.__setattr__(self, 'place_position', tuple(map(float, self.place_position)))
        for name in ('velocity_scaling', 'acceleration_scaling'):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ControllerConfigError(f'{name} must be in (0, 1], got '
                                            f'{getattr(self, name)}')
        for name in ('joint_state_timeout', 'grasp_wait_timeout', 'gripper_timeout',
                     'goal_tolerance', 'control_period', 'finger_length'):
            if not getattr(self, name) > 0.0:
                raise ControllerConfigError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('max_grasp_age', 'pre_grasp_distance', 'lift_height', 'clear_height',
                     'place_height', 'retreat_distance', 'departure_rise', 'descent_guard',
                     'push_guard', 'still_gap', 'still_box_tolerance', 'min_grip_width'):
            if not getattr(self, name) >= 0.0:
                raise ControllerConfigError(f'{name} must be >= 0, got {getattr(self, name)}')
        if len(self.place_grid) != 2 or min(self.place_grid) < 1:
            raise ControllerConfigError(f'place_grid must be 2 counts >= 1 (columns, rows), '
                                        f'got {list(self.place_grid)}')
        object.__setattr__(self, 'place_grid', tuple(map(int, self.place_grid)))
        if not (math.isfinite(self.place_spacing) and self.place_spacing >= 0):
            raise ControllerConfigError(f'place_spacing must be >= 0, got {self.place_spacing}')
        if not math.isfinite(self.place_yaw):
            raise ControllerConfigError('place_yaw must be finite')
        if self.max_consecutive_failures < 1:
            raise ControllerConfigError(f'max_consecutive_failures must be >= 1, got '
                                        f'{self.max_consecutive_failures}')
        if self.still_looks < 0:
            raise ControllerConfigError(f'still_looks must be >= 0, got {self.still_looks}')
        if self.max_pushes_in_a_row < 0:
            raise ControllerConfigError(f'max_pushes_in_a_row must be >= 0, got '
                                        f'{self.max_pushes_in_a_row}')

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the settings (= node parameter names)."""
        return tuple(f.name for f in fields(cls))

    def place_offsets(self) -> tuple[tuple[float, float], ...]:
        """(dx, dy) of the release spots from ``place_position``, row by row, m."""
        columns, rows = self.place_grid
        return tuple(((i - (columns - 1) / 2) * self.place_spacing,
                      (j - (rows - 1) / 2) * self.place_spacing)
                     for j in range(rows) for i in range(columns))

    def task_config(self) -> TaskConfig:
        """Settings of the pick-and-place task."""
        return TaskConfig(
            place_pose=tool_down_pose(self.place_position, self.place_yaw),
            place_offsets=self.place_offsets(), place_half_turn=self.place_half_turn,
            pre_grasp_distance=self.pre_grasp_distance, lift_height=self.lift_height,
            clear_height=self.clear_height,
            place_height=self.place_height, retreat_distance=self.retreat_distance,
            departure_rise=self.departure_rise,
            descent_guard=self.descent_guard, push_guard=self.push_guard,
            still_looks=self.still_looks, still_gap=self.still_gap,
            still_box_tolerance=self.still_box_tolerance,
            min_grip_width=self.min_grip_width,
            max_consecutive_failures=self.max_consecutive_failures,
            max_pushes_in_a_row=self.max_pushes_in_a_row,
            max_grasp_age=self.max_grasp_age, control_period=self.control_period,
            gripper_timeout=self.gripper_timeout, goal_tolerance=self.goal_tolerance)

    def make_backend(self) -> MotionBackend:
        """The motion backend; the built-in one models the cell with these fingers."""
        return make_backend(self.backend, self.builtin_config(), finger_length=self.finger_length)

    def builtin_config(self) -> BuiltinConfig:
        """Settings of the built-in motion backend (goals in the home posture's branch)."""
        return BuiltinConfig(planner=PlannerConfig(
            velocity_scaling=self.velocity_scaling,
            acceleration_scaling=self.acceleration_scaling), ik=IkConfig(posture=HOME_JOINTS))


class RemoteRobot:
    """The task's robot interface over a ros2_control style robot.

    Joint states come in through :meth:`update_joint_state` (any thread); trajectories and
    gripper openings go out through the ``send_*`` callables.

    A motion counts as finished once its duration has passed and the arm is at the last point,
    or has stopped after leaving the first one: a trajectory that the robot has not started yet
    (it is still in transit, or the robot's clock runs faster than the network) is not taken
    for a finished one; the task's watchdog bounds the wait.

    Joint states are stale when their stamp is older than ``joint_state_timeout`` on the
    robot's clock (sim time if used; as MoveIt's current state monitor), or when none has
    arrived for ``silence_timeout`` wall seconds (a simulator whose clock stopped). A query
    waits up to ``joint_state_timeout`` wall seconds for a fresh state, since the clock and the
    states arrive on different topics, then raises :class:`StaleInputError`; a running motion
    is halted.
    """

    def __init__(self, joint_names: Sequence[str],
                 send_trajectory: Callable[[JointTrajectory], None],
                 send_gripper: Callable[[float], None], clock: Callable[[], float],
                 joint_state_timeout: float = 0.5, silence_timeout: float = 2.0,
                 settle_tolerance: float = 0.005, settle_velocity: float = 0.01) -> None:
        """Wire the robot.

        Args:
            joint_names: the arm joints, in the backend's configuration order.
            send_trajectory: publishes a trajectory (an empty one stops and holds); may raise
                :class:`RobotUnavailableError` for a non-empty one, which :meth:`execute`
                passes on.
            send_gripper: publishes a finger opening, m; may raise
                :class:`RobotUnavailableError`.
            clock: current time of the robot's clock (ROS time, sim time if used), s.
            joint_state_timeout: see the class docstring, s.
            silence_timeout: see the class docstring, wall s.
            settle_tolerance: joint distance from the last point that ends a motion, rad.
            settle_velocity: joint speed below which a motion past its duration has ended,
                rad/s.
        """
        self.joint_names = tuple(joint_names)
        self.joint_state_timeout = joint_state_timeout
        self.silence_timeout = silence_timeout
        self._send_trajectory, self._send_gripper = send_trajectory, send_gripper
        self._clock = clock
        self._settle = (settle_tolerance, settle_velocity)
        self._lock = threading.Lock()
        # (wall time of receipt, arm, arm velocity, finger opening, stamp on the robot clock s)
        self._state: tuple[float, np.ndarray, np.ndarray, float, float] | None = None
        self._motion: _Motion | None = None

    def update_joint_state(self, names: Sequence[str], positions: Sequence[float],
                           velocities: Sequence[float], stamp_ns: int) -> None:
        """Take one ``sensor_msgs/JointState`` worth of data.

        Args:
            names: joint names (any order; extra joints are ignored).
            positions: one per name (rad; ``finger_joint`` is half the opening, m).
            velocities: one per name, or empty, rad/s.
            stamp_ns: header stamp, nanoseconds; 0 (unstamped) = the time of receipt.

        Raises:
            InvalidMessageError: lengths disagree, an arm joint or the finger joint is
                missing, or a needed value is not finite. The previous state is kept.
        """
        if len(positions) != len(names) or len(velocities) not in (0, len(names)):
            raise InvalidMessageError(f'joint_states: {len(names)} names, {len(positions)} '
                                      f'positions, {len(velocities)} velocities')
        index = {name: k for k, name in enumerate(names)}
        missing = [n for n in (*self.joint_names, GRIPPER_JOINT) if n not in index]
        if missing:
            raise InvalidMessageError(f'joint_states lacks {missing}')
        columns = [index[n] for n in self.joint_names]
        arm = np.array([positions[k] for k in columns], dtype=np.float64)
        speed = np.array([velocities[k] for k in columns] if velocities else
                         np.zeros(len(columns)), dtype=np.float64)
        opening = 2.0 * float(positions[index[GRIPPER_JOINT]])
        if not (np.isfinite(arm).all() and np.isfinite(speed).all() and math.isfinite(opening)):
            raise InvalidMessageError('joint_states holds NaN or inf')
        stamp = stamp_ns / NS_PER_S if stamp_ns else self._clock()
        with self._lock:
            self._state = (time.monotonic(), arm, speed, opening, stamp)

    def _fresh_state(self) -> tuple[float, np.ndarray, np.ndarray, float, float]:
        deadline = time.monotonic() + self.joint_state_timeout
        while True:
            with self._lock:
                state = self._state
            if state is None:
                raise StaleInputError('no joint_states received yet')
            silence = time.monotonic() - state[0]
            age = self._clock() - state[4]
            if age <= self.joint_state_timeout and silence <= self.silence_timeout:
                return state
            if time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        if silence > self.silence_timeout:
            raise StaleInputError(f'no joint_states for {silence:.2f} s (wall; silence_timeout '
                                  f'{self.silence_timeout} s)')
        raise StaleInputError(f'joint_states are {age:.2f} s old (joint_state_timeout '
                              f'{self.joint_state_timeout} s)')

    # -- RobotInterface ------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def joint_positions(self) -> np.ndarray:
        return self._fresh_state()[1].copy()

    def execute(self, trajectory: JointTrajectory) -> None:
        self._fresh_state()
        with self._lock:
            self._motion = _Motion(self.now() + trajectory.duration,
                                   trajectory.positions[0].copy(),
                                   trajectory.positions[-1].copy())
        try:
            self._send_trajectory(trajectory)
        except LitedetError:
            with self._lock:
                self._motion = None
            raise

    def executing(self) -> bool:
        with self._lock:
            motion = self._motion
        if motion is None:
            return False
        try:
            _, arm, speed, _, _ = self._fresh_state()
        except StaleInputError:
            self.halt()
            raise
        tolerance, velocity = self._settle
        moving = np.abs(speed).max() > velocity
        motion.started = (motion.started or moving
                          or np.abs(arm - motion.start).max() > tolerance)
        if self.now() < motion.end_time or (np.abs(arm - motion.goal).max() > tolerance
                                            and (moving or not motion.started)):
            return True
        with self._lock:
            self._motion = None
        return False

    def halt(self) -> None:
        with self._lock:
            self._motion = None
        self._send_trajectory(JointTrajectory(self.joint_names, np.zeros(0),
                                              np.zeros((0, len(self.joint_names)))))

    def command_gripper(self, opening: float) -> None:
        self._send_gripper(float(opening))

    def finger_width(self) -> float:
        return self._fresh_state()[3]


@dataclass
class _Motion:
    """A trajectory sent to the robot: when it should end, its first and last points."""

    end_time: float
    start: np.ndarray
    goal: np.ndarray
    started: bool = False


class GraspInbox:
    """The latest usable grasp array; refuses arrays in another frame or too old.

    An array also counts as too old when it was taken before the end of the last attempt or
    before the run asked for a second look (:meth:`scene_changed`): the arm has moved objects
    since, (after an attempt that found no feasible grasp) the same image would give the same
    answer, or the second look must come from a later image.
    """

    def __init__(self, planning_frame: str, max_age: float, clock: Callable[[], float]) -> None:
        """Set up the inbox.

        Args:
            planning_frame: frame every grasp pose must be expressed in.
            max_age: largest age of an array on arrival (ROS clock), s; 0 disables.
            clock: current ROS time, s.
        """
        self.planning_frame = planning_frame
        self.max_age = max_age
        self._clock = clock
        self._changed = threading.Condition()
        self._grasps: GraspCandidates | None = None
        self._stamp_ns = 0
        self._valid_after_ns = 0

    def offer(self, grasps: Sequence[Grasp], stamp_ns: int, frame_id: str,
              num_detections: int = 0, pushes: tuple[Push, ...] = ()) -> None:
        """Store an array (replacing the previous one).

        Args:
            grasps: the array's grasps.
            stamp_ns: stamp of the source image (ROS clock), ns.
            frame_id: frame of the array.
            num_detections: detections the grasps were planned from (0: nothing seen).
            pushes: the pushes the array offers instead of grasps, best first.

        Raises:
            InvalidMessageError: the array or one of its grasps is not in the planning frame.
            StaleInputError: older than ``max_age`` or than the last scene change.
        """
        frames = {frame_id, *(g.frame_id for g in grasps),
                  *(p.frame_id for p in pushes)} - {self.planning_frame}
        if frames:
            raise InvalidMessageError(f'grasps in frame(s) {sorted(frames)}, expected '
                                      f'{self.planning_frame!r}')
        age = self._clock() - stamp_ns / NS_PER_S
        if self.max_age > 0 and age > self.max_age:
            raise StaleInputError(f'grasp array is {age:.2f} s old (max_grasp_age '
                                  f'{self.max_age} s)')
        with self._changed:
            if stamp_ns < self._valid_after_ns:
                raise StaleInputError('grasp array was taken before the last attempt ended or '
                                      'the last look was asked for')
            self._grasps = GraspCandidates(tuple(grasps), int(num_detections), tuple(pushes))
            self._stamp_ns = stamp_ns
            self._changed.notify_all()

    def scene_changed(self, stamp_ns: int) -> None:
        """An attempt ended at ``stamp_ns`` (ROS clock, ns): forget the array it used.

        From now on only arrays taken at or after ``stamp_ns``, and after the forgotten one,
        are accepted (even if no time passed on the clock, the same image is not used twice).
        """
        with self._changed:
            self._valid_after_ns = max(stamp_ns, self._stamp_ns + 1)
            self._grasps = None

    def wait(self, timeout: float, cancelled: Callable[[], bool] = lambda: False
             ) -> GraspCandidates | None:
        """The current array, waiting up to ``timeout`` s (wall) for one; None if none came."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._grasps is None and not cancelled():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(min(remaining, 0.05))
            return self._grasps

