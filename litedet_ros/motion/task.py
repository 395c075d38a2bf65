"""The pick-and-place task: a recovering state machine over a motion backend and a robot.

One attempt (:meth:`PickPlaceTask.pick_once`) reads top to bottom::

    PLANNING      best grasp whose pre-grasp, approach and carry are all feasible (IK first);
                  the carry, planned with the object attached, is one motion: straight up
                  out of the bin, over to above the place pose and straight down, turning
                  the corners without stopping
    APPROACHING   open the gripper to the grasp width, move to the pre-grasp and, turning
                  there without stopping, in a straight line to the grasp (fingers not yet
                  there: stop at the pre-grasp until they are; held off it by a part left in
                  the hand: open wide to drop it into the bin, still held off -> FAILED); a
                  descent pushed off its line by a part stops there, the carry is re-planned
    GRASPING      close, verify the finger width (empty hand -> FAILED)
    LIFTING       start the carry; once the object is lifted out, verify again on the move
                  (slip: fingers closing on and on -> halt, FAILED)
    TRANSPORTING  the rest of the carry, verify (drop -> PARTIAL_SUCCESS)
    PLACING       open -> SUCCESS, or with a ``retreat_distance``:
    RETREATING    straight line up -> SUCCESS

The next move away from the release spot (to the next pre-grasp, or a push) starts with a straight
rise of ``departure_rise`` turning into the rest of the move without stopping: parts piled on the
place zone under the open fingers are not swept off it. A run that ends there ends with that rise.

Planning failures move on to the next grasp candidate without moving the arm; a failure after the
arm moved ends the attempt (RECOVERING: open, back off upwards, move out of the camera's view to
above the place zone) and :meth:`run` re-detects; grasps near the last few that failed so are then
tried after all others (a part jammed in the pile would fail the same way again). :meth:`run` stops
when the bin looks empty (no grasps and no detections) or after ``max_consecutive_failures``.
Objects seen but without a feasible grasp (the grasp planner refuses risky ones) make an attempt
that FAILED without motion, reason starting with :data:`NO_FEASIBLE_GRASP`, and :meth:`run`
re-detects. Such a look counts toward the stop rule unless the grasp planner offered a push and it
was made (the scene changed): up to ``max_pushes_in_a_row`` pushes since the last grasp was tried
do not. Of the offered pushes the best one not made already since then is taken (a push that
changed nothing is offered again by the next look). Every motion has a watchdog (planned
duration x 1.1 + 0.5 s, as MoveIt's trajectory execution manager), and until then to end within
``goal_tolerance`` of its goal; :meth:`emergency_stop` halts the robot at once, from any
thread, and the task ends within one control period.

The task talks to the robot through :class:`RobotInterface`, implemented by the simulation core
and by the ROS controller node alike.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
import threading
from typing import Protocol

import numpy as np

from litedet_ros.errors import LitedetError
from litedet_ros.grasping.types import Grasp, Push, tool_down_pose
from litedet_ros.motion.backend import Leg, MotionBackend
from litedet_ros.motion.model import MotionError, Obstacle
from litedet_ros.motion.status import (
    NO_FEASIBLE_GRASP,
    PUSHED,
    PickOutcome,
    PickResult,
    PickState,
    PickStatus,
)
from litedet_ros.trajectory import JointTrajectory

#: Fingers this close to their commanded opening have reached it, m.
AT_OPENING = 1e-3
#: Fingers that have not moved this long (s) after a command are taken as unable to move (they
#: already touch the part); until then their stillness does not count. Through the simulated
#: graph they started up to 130 ms after the command.
FINGER_START_TIMEOUT = 0.3
#: Fingers settled farther than this from the grasp opening are held off it (m).
FINGERS_BLOCKED = 3e-3
#: Fingers still for this long have stopped on a part that turned in the grip, s.
STILL_TIME = 0.05
#: A push whose start and end both lie this close to those of a push made is the same push, m.
SAME_PUSH = 0.02
#: A TCP this close to the last release (m) is still at its spot: the next move rises off it.
AT_RELEASE = 0.02
#: Right-multiplied, turns a pose half a turn about its own z (the tool axis).
HALF_TURN = np.diag([-1.0, -1.0, 1.0, 1.0])


class RobotInterface(Protocol):
    """The robot as the task sees it (simulated or real). Units: rad, m, s.

    ``now``/``wait`` give the task its clock: real time on hardware, simulated time in the sim
    core (where ``wait`` advances the physics). ``halt`` must be callable from any thread.
    """

    def now(self) -> float:
        """Current time, s."""

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass."""

    def joint_positions(self) -> np.ndarray:
        """Arm joints ``float64[dof]`` in the backend's order; StaleInputError if unknown."""

    def execute(self, trajectory: JointTrajectory) -> None:
        """Start executing; raise a LitedetError if the trajectory is refused."""

    def executing(self) -> bool:
        """Whether a trajectory is still running."""

    def halt(self) -> None:
        """Stop the arm now (hold position)."""

    def command_gripper(self, opening: float) -> None:
        """Start moving the fingers to ``opening`` (distance between the pads, m)."""

    def finger_width(self) -> float:
        """Measured distance between the pads, m."""


@dataclass(frozen=True)
class GraspCandidates:
    """One look at the bin: grasp candidates and the detections they were planned from.

    Attributes:
        grasps: candidates in the planning frame, any order.
        num_detections: objects detected in the source image (0 also when unknown). No grasps
            and no detections means the bin looks empty; no grasps for detected objects means
            none of them has a feasible grasp.
        pushes: with no grasps for detected objects, pushes that may free one, best first.
    """

    grasps: tuple[Grasp, ...] = ()
    num_detections: int = 0
    pushes: tuple[Push, ...] = ()

    @property
    def bin_empty(self) -> bool:
        """Whether nothing was seen: no grasps and no detections."""
        return not self.grasps and self.num_detections == 0


@dataclass(frozen=True)
class TaskConfig:
    """Pick-and-place settings (planning frame, m, s).

    Attributes:
        place_pose: ``float64[4, 4]`` TCP pose at release (default: over the tote, 16 cm up).
        place_half_turn: the release may also be ``place_pose`` turned half a turn about the
            tool axis, whichever the arm gets to from the grasp with the smaller turn of its
            most turned joint (parallel fingers let a part go alike either way; the wrist
            otherwise turned up to a half turn with the part in the hand). Off for a fixture
            that needs the part's yaw.
        place_offsets: (dx, dy) shifts of ``place_pose`` used in turn, one per object placed,
            so that parts are laid side by side instead of piled up, m.
        pre_grasp_distance: back-off along the approach axis before the grasp, m.
        lift_height: straight lift after closing, m (world up).
        clear_height: TCP height (planning frame z) at which the open hand clears the bin
            rim: the pre-grasp is backed off further along a descending approach until the TCP
            is this high, and the lift rises at least this high, so that the free-space moves
            to and from the bin run above it (a straight joint-space move, planned in
            milliseconds) instead of threading under the rim; 0 disables, m.
        place_height: height above ``place_pose`` of the transport goal, m.
        retreat_distance: straight rise after the release, m. 0 (the default) ends the
            attempt at the release: the part is dropped from ``place_pose`` (in the simulated
            cell the TCP is 16 cm above the table, the tote's rim 10 cm high), and the next move
            to the bin starts from there (see ``departure_rise``). A place pose on a surface
            needs a retreat.
        departure_rise: the next move from the spot of a release (no retreat) starts straight up
            this far, turning into the rest of the move within ``blend_radius`` (at most half
            the rise) of its top: parts piled under the open fingers stay put; 0: the move
            leaves the spot any way the planner finds, m.
        blend_radius: the approach and the carry turn their corners (the pre-grasp; the top
            of the lift, the transport goal) without stopping, leaving the paths within this
            distance of the corner. The lift rises this much further, so that it is straight
            up to the height that ``lift_height`` and ``clear_height`` ask for; the descent
            onto the place pose is straight for the last ``place_height - blend_radius`` (the
            tote's rim is below the place pose); the descent into the bin starts within this
            distance of the pre-grasp. 0 stops at the corners, m.
        descent_guard: below the pre-grasp (past the blend), the approach stops as soon as the
            TCP is this far off its straight line to the grasp: a part the fingers met pushes
            the arm aside, towards walls it was planned to pass millimetres from (the arm keeps
            to its line within 2 mm otherwise). The hand closes where the arm stopped and the
            carry is planned again from there. 0 disables, m.
        push_guard: a push (down to its start, along it and back up) stops as soon as the TCP
            is this far below its straight path, and the hand backs off upwards: a part jammed
            in its way holds the hand back and twists it down (in the simulated cell the finger
            tips then met the floor 10 mm below within 0.1 s). Riding up over parts and being
            deflected sideways are let be (there, 29 % of pushes went more than 3 mm off their
            path so; a guard on those too stopped as many pushes). 0 disables, m.
        open_margin: opening added to the current finger width to let go of a part after a
            failed attempt, m. (The approach opens to the grasp's own width: the grasp
            planner's margin is in it, and its collision checks assumed it.)
        release_width: opening commanded to release the object (at least
            ``release_clearance`` wider than it was held), m.
        release_clearance: the retreat after a release starts once the fingers are this much
            wider than they held the part (they open on to ``release_width`` meanwhile); without
            a retreat they open fully before the attempt ends, m.
        min_grip_width: finger width below which the hand is considered empty, m.
        slip_tolerance: finger closing after the grasp that counts as a slip, m; at the top of
            the lift only if the fingers are still closing (faster than ``still_speed`` over
            ``grip_settle_time``) and do not stop within ``grip_turn_time``: a part that turned
            in the grip and stopped them is carried.
        attached_size: (x, z) extents of the box modelling a held object, m (y = grip width);
            x is the fingers' width: the grasp planner keeps the fingers off the bin walls,
            and a wider box refused lifts beside a wall that the part itself, inside the bin,
            could make.
        max_consecutive_failures: :meth:`PickPlaceTask.run` stops after this many.
        max_pushes_in_a_row: looks without a grasp whose push was made do not count as
            failures, up to this many since a grasp was last tried; then offered pushes are
            not made until one is (0: never push).
        failed_grasp_memory: positions of the last this many grasps that failed after the arm
            moved are remembered (0 forgets them at once).
        failed_grasp_radius: grasps within this distance of a remembered failure are tried
            after all others, m.
        max_grasp_age: grasps older than this are refused, s (0 disables the check).
        still_looks: with grasps in sight, :meth:`PickPlaceTask.run` looks at the bin again
            ``still_gap`` after the image they came from, and tries only the grasps of that
            look whose detection box was in the first one too (every side within
            ``still_box_tolerance``; a grasp without a box is kept): a part still rolling or
            sliding when the camera looked is elsewhere when the fingers get there (in the
            simulated cell, cans rolling at 4-17 cm/s left the hand empty). When every grasp's
            part moved, it looks again, this many times at most, and then takes the last look
            as it is. 0: one look.
        still_gap: least time between the images of the two looks, s.
        still_box_tolerance: largest shift of a box's side between the two looks, pixels.
        control_period: polling period of execution and stop, s.
        gripper_timeout: longest wait for the fingers to settle, s.
        grip_settle_time: fingers still for this long short of their command have closed on
            an object (0.3 s cost 0.25 s a pick for the same picks), s.
        grip_turn_time: fingers still closing at the top of the lift are watched this much
            longer, the arm carrying on, for a part turning in the grip to stop them, s.
        still_speed: fingers moving slower than this are still (they move at up to
            0.15 m/s; a part creeping in the closed grip does not hold the task up), m/s.
        goal_tolerance: largest joint error accepted at the end of a motion (the arm has
            until the watchdog's limit to get there), rad.
        watchdog_factor: execution watchdog = duration * factor + watchdog_slack.
        watchdog_slack: see ``watchdog_factor``, s.
    """

    place_pose: np.ndarray = field(default_factory=lambda: tool_down_pose((0.05, 0.5, 0.16)))
    place_offsets: tuple[tuple[float, float], ...] = ((0.0, 0.0),)
    place_half_turn: bool = True
    pre_grasp_distance: float = 0.10
    lift_height: float = 0.15
    clear_height: float = 0.0
    place_height: float = 0.10
    retreat_distance: float = 0.0
    departure_rise: float = 0.0
    blend_radius: float = 0.03
    descent_guard: float = 0.003
    push_guard: float = 0.003
    open_margin: float = 0.02
    release_width: float = 0.08
    release_clearance: float = 0.01
    min_grip_width: float = 0.004
    slip_tolerance: float = 0.006
    attached_size: tuple[float, float] = (0.022, 0.04)
    max_consecutive_failures: int = 3
    max_pushes_in_a_row: int = 6
    failed_grasp_memory: int = 3
    failed_grasp_radius: float = 0.02
    max_grasp_age: float = 0.0
    still_looks: int = 0
    still_gap: float = 0.1
    still_box_tolerance: float = 2.0
    control_period: float = 0.01
    gripper_timeout: float = 2.0
    grip_settle_time: float = 0.15
    grip_turn_time: float = 0.3
    still_speed: float = 0.02
    goal_tolerance: float = 0.03
    watchdog_factor: float = 1.1
    watchdog_slack: float = 0.5


class _AbortError(Exception):
    """Ends the current attempt with an outcome and a reason."""

    def __init__(self, reason: str, outcome: PickOutcome = PickOutcome.FAILED,
                 moved: bool = True, counts: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.outcome, self.moved, self.counts = reason, outcome, moved, counts


class _EmergencyStopError(Exception):
    """The emergency stop was pressed during the attempt."""


class _FingersLateError(Exception):
    """The fingers had not reached the grasp opening when the arm came to the pre-grasp."""


@dataclass(frozen=True)
class _Plan:
    """A feasible attempt.

    ``approach`` goes to ``pre_grasp`` (a TCP pose) and on, straight, to the grasp;
    ``departed_at`` is the time into it at which the TCP has risen off the last release spot
    (0 when it does not start there), ``descent_at`` the time at which it comes within the
    blend radius of the pre-grasp (where the straight descent begins). ``lifted_at`` is the
    time into ``carry`` at the end of the straight lift (the object out of the bin); ``place``
    the TCP pose at release.
    """

    grasp: Grasp
    pre_grasp: np.ndarray
    approach: JointTrajectory
    departed_at: float
    descent_at: float
    carry: JointTrajectory
    lifted_at: float
    place: np.ndarray


class PickPlaceTask:
    """Pick objects from the bin and place them in the place zone, recovering from failures."""

    def __init__(self, backend: MotionBackend, robot: RobotInterface,
                 config: TaskConfig | None = None,
                 on_status: Callable[[PickStatus], None] | None = None) -> None:
        """Wire the task.

        Args:
            backend: motion planner (its collision world must describe the cell).
            robot: the robot to drive.
            config: task settings.
            on_status: called with a fresh :class:`PickStatus` at every state change.
        """
        self.backend = backend
        self.robot = robot
        self.config = config or TaskConfig()
        self._on_status = on_status
        self._lock = threading.Lock()
        self._status = PickStatus(PickState.IDLE, enabled=True)
        self._placed = 0  # objects released in the place zone: picks the next place offset
        self._released_at: np.ndarray | None = None  # TCP pose of the last release, no retreat
        # positions of the grasps that last failed after the arm moved, oldest first
        self._failed_at: deque[np.ndarray] = deque(maxlen=self.config.failed_grasp_memory)
        self._pushes_made: list[Push] = []  # since a grasp was last tried
        self._estop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()

    # -- control (any thread) ----------------------------------------------------------------
    @property
    def status(self) -> PickStatus:
        """Latest status snapshot."""
        with self._lock:
            return self._status

    def pause(self) -> None:
        """Hold before the next motion until :meth:`resume` (the current motion finishes)."""
        self._resume.clear()
        self._update(enabled=False)

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        self._resume.set()
        self._update(enabled=not self._estop.is_set())

    def emergency_stop(self) -> None:
        """Halt the robot now; the running attempt ends FAILED. Cleared by :meth:`reset`."""
        self._estop.set()
        self.robot.halt()
        self._update(state=PickState.EMERGENCY_STOP, enabled=False)

    def reset(self) -> None:
        """Clear the emergency stop, the failure and push streaks and the failed grasps."""
        self._failed_at.clear()
        self._pushes_made.clear()
        self._estop.clear()
        self._resume.set()
        self._update(state=PickState.IDLE, enabled=True, consecutive_failures=0)

    # -- the task ------------------------------------------------------------------------------
    def run(self, detect: Callable[[], GraspCandidates]) -> list[PickResult]:
        """Pick until the bin is empty, ``max_consecutive_failures`` or an emergency stop.

        With ``still_looks``, grasps are tried only on parts that held still between two looks
        (see :class:`TaskConfig`). Detected objects without any grasp make a FAILED attempt
        ("no feasible grasp for N detected objects"), in which the best offered push that can
        be planned and was not made since a grasp was last tried (:func:`new_pushes`), if any,
        is made while fewer than ``max_pushes_in_a_row`` were, and the bin is looked at again.
        A made push leaves the failure streak as it was. Each run starts with no failure or
        push streak (a run after one that stopped is not cut short by its streak), and ends
        with the fingers risen off the last release spot (``departure_rise``).

        Args:
            detect: looks at the bin again (after each attempt) and returns what it saw;
                :attr:`GraspCandidates.bin_empty` ends the run (IDLE).
        """
        results = []
        self._pushes_made.clear()
        # one status: the previous run's STOPPED is not published with the fresh streak
        self._update(state=PickState.WAITING_FOR_GRASPS, consecutive_failures=0)
        while not self._estop.is_set():
            self._update(state=PickState.WAITING_FOR_GRASPS)
            seen = detect()
            if seen.grasps and self.config.still_looks:
                seen = self._still_grasps(seen, detect)
            if seen.bin_empty:
                self._rise_off_release()
                self._update(state=PickState.IDLE)
                break
            may_push = len(self._pushes_made) < self.config.max_pushes_in_a_row
            results.append(self.pick_once(
                seen.grasps, seen.num_detections,
                new_pushes(seen.pushes, self._pushes_made) if may_push else ()))
            if self.status.consecutive_failures >= self.config.max_consecutive_failures:
                self._rise_off_release()
                self._update(state=PickState.STOPPED)
                break
        return results

    def _rise_off_release(self) -> None:
        """At the end of a run, the open fingers still on a release spot rise off it.

        Left there (see ``departure_rise``), they rest among the parts just placed, touching
        some on both sides (the simulator then counts them in the hand). The rise is part of
        the run's end, with no state of its own; if it fails the arm stays where it is.
        """
        current = self.robot.joint_positions()
        departure = self._departure(current)
        if not departure:
            return
        try:
            self._execute(self.backend.plan_cartesian(current, departure[0].pose))
        except (_AbortError, _EmergencyStopError, LitedetError):
            pass

    def _still_grasps(self, seen: GraspCandidates, detect: Callable[[], GraspCandidates]
                      ) -> GraspCandidates:
        """A later look, with only the grasps of parts that did not move since ``seen``.

        See ``still_looks`` of :class:`TaskConfig`; a later look without grasps is returned as
        it is.
        """
        config = self.config
        for _ in range(config.still_looks):
            taken = max(grasp.stamp_ns for grasp in seen.grasps) * 1e-9  # image time, s
            self.robot.wait(max(0.0, taken + config.still_gap - self.robot.now()))
            again = detect()
            still = tuple(grasp for grasp in again.grasps
                          if _box_seen(grasp, seen.grasps, config.still_box_tolerance))
            if still or not again.grasps:
                return replace(again, grasps=still)
            seen = again
        return seen

    def pick_once(self, grasps: Sequence[Grasp], num_detections: int = 0,
                  pushes: Sequence[Push] = ()) -> PickResult:
        """One attempt with the best feasible grasp among ``grasps``; never raises.

        Without grasps, the first of ``pushes`` that can be planned is made instead; the result
        is FAILED either way, its reason "no feasible grasp for N detected objects", followed by
        :data:`PUSHED` and the push's outcome when there were pushes. A push that moved the arm
        does not add to the failure streak.

        Args:
            grasps: candidates in the planning frame, any order.
            num_detections: objects detected in the source image, for the reason of an
                attempt without grasps.
            pushes: pushes for when there are no grasps, best first.
        """
        started = self.robot.now()
        self._update(attempts=self.status.attempts + 1)
        plan, counts = None, True  # counts: towards the failure streak
        try:
            if self._estop.is_set():
                raise _EmergencyStopError
            if not grasps and pushes:
                made, pushed = self._push(pushes)  # ends out of the camera's view: no recovery
                if made is not None:
                    self._pushes_made.append(made)
                raise _AbortError(f'{NO_FEASIBLE_GRASP} for {num_detections} detected objects'
                                  f'{PUSHED} {pushed}', moved=False, counts=made is None)
            if grasps:
                self._pushes_made.clear()
            plan = self._choose(grasps, num_detections)
            plan = self._approach(plan)
            width = self._grasp(plan)
            self._carry(plan, width)
            self._place(plan.place)
            result = PickResult(PickOutcome.SUCCESS)
        except _EmergencyStopError:
            result = PickResult(PickOutcome.FAILED, 'emergency stop')
        except _AbortError as abort:
            result, counts = PickResult(abort.outcome, abort.reason), abort.counts
            if abort.moved and plan is not None and abort.outcome == PickOutcome.FAILED:
                self._failed_at.append(plan.grasp.pose[:3, 3])
            if abort.moved and not self._estop.is_set():
                self._recover(plan if self.status.state == PickState.APPROACHING else None)
        except LitedetError as error:  # e.g. joint states went stale mid-attempt
            result = PickResult(PickOutcome.FAILED, str(error))
            self._recover()
        result = replace(result, cycle_time=self.robot.now() - started)
        self._finish(result, counts)
        return result

    # -- steps -------------------------------------------------------------------------------
    def _choose(self, grasps: Sequence[Grasp], num_detections: int) -> _Plan:
        self._update(state=PickState.PLANNING)
        reasons = []
        for grasp in sorted(grasps, key=lambda g: (self._near_failure(g), -g.score)):
            try:
                return self._plan_grasp(grasp)
            except LitedetError as error:
                reasons.append(str(error))
        if reasons:
            raise _AbortError(f'{NO_FEASIBLE_GRASP} among {len(reasons)}: {reasons[0]}',
                              moved=False)
        if num_detections:
            raise _AbortError(f'{NO_FEASIBLE_GRASP} for {num_detections} detected objects',
                              moved=False)
        raise _AbortError('no grasp candidates', moved=False)

    def _near_failure(self, grasp: Grasp) -> bool:
        """Whether ``grasp`` lies within ``failed_grasp_radius`` of a remembered failure."""
        position = grasp.pose[:3, 3]
        return any(np.linalg.norm(position - failed) <= self.config.failed_grasp_radius
                   for failed in self._failed_at)

    def _plan_grasp(self, grasp: Grasp) -> _Plan:
        config, backend = self.config, self.backend
        if grasp.frame_id != backend.planning_frame:
            raise MotionError(f'grasp in frame {grasp.frame_id!r}, expected '
                              f'{backend.planning_frame!r}')
        age = self.robot.now() - grasp.stamp_ns * 1e-9
        if config.max_grasp_age > 0 and age > config.max_grasp_age:
            raise MotionError(f'grasp is {age:.1f} s old (max_grasp_age '
                              f'{config.max_grasp_age} s)')
        current = self.robot.joint_positions()
        backend.set_gripper_opening(grasp.width)
        backend.ik(grasp.pose, current, contact=True)  # cheapest test first: reachable?
        pre_grasp = _backed_off(grasp.pose, config)
        radius = config.blend_radius
        departure = self._departure(current)
        approach = backend.plan_sequence(current, (*departure,
                                                   Leg(pre_grasp, blend_radius=radius),
                                                   Leg(grasp.pose, straight=True)))
        dx, dy = config.place_offsets[self._placed % len(config.place_offsets)]
        place = self._release_pose(_translated(config.place_pose, (dx, dy, 0.0)),
                                   approach.positions[-1])
        carry, lifted_at = self._plan_carry(approach.positions[-1], grasp.pose, grasp.width,
                                            place)
        return _Plan(grasp, pre_grasp, approach, self._departed_at(approach, departure),
                     self._time_near(approach, pre_grasp, radius), carry, lifted_at, place)

    def _release_pose(self, place: np.ndarray, grasp_joints: np.ndarray) -> np.ndarray:
        """The release pose: ``place`` or, with ``place_half_turn``, ``place`` turned.

        Turned half a turn about the tool axis when the transport goal above it needs a
        smaller turn of the most turned joint from ``grasp_joints``.
        """
        if not self.config.place_half_turn:
            return place
        turns = []
        for pose in (place, place @ HALF_TURN):
            above = _translated(pose, (0, 0, self.config.place_height))
            try:
                turns.append(np.abs(self.backend.ik(above, grasp_joints) - grasp_joints).max())
            except MotionError:
                turns.append(np.inf)
        return place @ HALF_TURN if turns[1] < turns[0] else place

    def _plan_carry(self, start: np.ndarray, grasp_pose: np.ndarray, width: float,
                    place: np.ndarray) -> tuple[JointTrajectory, float]:
        """The carry from joints ``start`` (TCP at ``grasp_pose``) to the release at ``place``.

        Returns:
            ``(carry, lifted_at)``: the motion, planned with the part attached, and the time
            into it at the end of the straight lift.
        """
        config, backend = self.config, self.backend
        lifted = _translated(grasp_pose, (0, 0, max(config.lift_height,
                                                    config.clear_height - grasp_pose[2, 3])))
        radius = config.blend_radius
        legs = (Leg(_translated(lifted, (0, 0, radius)), straight=True, blend_radius=radius),
                Leg(_translated(place, (0, 0, config.place_height)), blend_radius=radius),
                Leg(place, straight=True))
        backend.attach(self._held_object(width))  # the widest the part can be held
        try:
            carry = backend.plan_sequence(start, legs)
        finally:
            backend.detach()
        tcp = backend.tcp_path(carry)
        return carry, float(carry.times[np.argmin(np.linalg.norm(tcp - lifted[:3, 3], axis=1))])

    def _push(self, pushes: Sequence[Push]) -> tuple[Push | None, str]:
        """Make the first push that plans, then leave the camera's view.

        The hand goes above the push's start along its tool axis (as far as a pre-grasp, and
        above ``clear_height``), closing on the way (once off a release spot: see
        :meth:`_departed_at`), and once it is closed (as the motion was
        planned) down that axis (straight down, or leaning for a drag by a wall), along the
        push and back up the same way, then to above the place zone like a recovery. Unless the
        emergency stop was pressed, nothing it meets ends more than the push; fingers that do
        not close (a part caught between them) end it above the start.

        Returns:
            ``(push, how)``: the push whose motion the arm started (None when none could be
            planned), and what it did.
        """
        self._update(state=PickState.PUSHING)
        backend, config = self.backend, self.config
        backend.set_gripper_opening(0.0)
        for push in pushes:
            try:
                if push.frame_id != backend.planning_frame:
                    raise MotionError(f'push in frame {push.frame_id!r}, expected '
                                      f'{backend.planning_frame!r}')
                current = self.robot.joint_positions()
                departure = self._departure(current)
                over_start = _backed_off(push.start, config)
                above = backend.plan_sequence(current, (*departure, Leg(over_start)))
                legs = (Leg(push.start, straight=True), Leg(push.end, straight=True),
                        Leg(_backed_off(push.end, config), straight=True))
                motion = backend.plan_sequence(above.positions[-1], legs)
                break
            except LitedetError as error:
                failure = error
        else:
            return None, f'nothing: planning failed: {failure}'
        path = np.array([over_start[:3, 3], *(leg.pose[:3, 3] for leg in legs)])

        def sunk() -> bool:
            tcp = backend.tcp_pose(self.robot.joint_positions())[:3, 3]
            return _below_path(tcp, path) > config.push_guard

        try:
            self._execute(above, checks=((self._departed_at(above, departure),
                                          lambda: self.robot.command_gripper(0.0)),))
            width = self._await_fingers(0.0)
            if width > FINGERS_BLOCKED:
                raise _AbortError(f'fingers held at {1e3 * width:.1f} mm')
            if not self._execute(motion, guard=(0.0, sunk) if config.push_guard > 0
                                 else None):
                raise _AbortError(f'pushed {1e3 * config.push_guard:.0f} mm below its path')
        except _AbortError as abort:
            self._recover()
            return push, f'detection {push.detection_index}, stopped: {abort.reason}'
        try:
            self._leave_view()
        except (_AbortError, LitedetError):
            pass  # the arm stays above the bin; the next attempt plans from there
        return push, f'detection {push.detection_index} {100 * push.length:.0f} cm'

    def _approach(self, plan: _Plan) -> _Plan:
        """Go down to the grasp; return the plan, its carry re-planned if the guard stopped it."""
        self._update(state=PickState.APPROACHING)
        # the fingers reach the grasp width on the way to the pre-grasp (planned with it);
        # should they not have got there, the arm stops until they settle, then descends from
        # the pre-grasp. Held off the width by a part caught between them (one that stayed in
        # the hand at the last release), they open to let it fall back into the bin first.
        width = plan.grasp.width

        def shape_fingers() -> None:
            self.robot.command_gripper(width)

        def fingers_shaped() -> None:
            if abs(self.robot.finger_width() - width) >= AT_OPENING:
                raise _FingersLateError

        def pushed_aside() -> bool:
            return self._off_descent(plan) > self.config.descent_guard

        guarded = self.config.descent_guard > 0
        try:
            finished = self._execute(
                plan.approach, checks=((plan.departed_at, shape_fingers),
                                       (plan.descent_at, fingers_shaped)),
                guard=(plan.descent_at, pushed_aside) if guarded else None)
        except _FingersLateError:
            opening = self._await_fingers(width)
            if abs(opening - width) > FINGERS_BLOCKED:
                self._gripper(max(self.config.release_width, opening + self.config.open_margin))
                opening = self._gripper(width)
            if abs(opening - width) > FINGERS_BLOCKED:
                raise _AbortError(f'fingers held at {1e3 * opening:.1f} mm, the grasp needs '
                                  f'{1e3 * width:.1f} mm') from None
            try:
                descent = self.backend.plan_sequence(
                    self.robot.joint_positions(),
                    (Leg(plan.pre_grasp), Leg(plan.grasp.pose, straight=True)))
            except LitedetError as error:
                raise _AbortError(f'planning the descent failed: {error}') from error
            finished = self._execute(descent, guard=(0.0, pushed_aside) if guarded else None)
        if finished:
            return plan
        # stopped by the guard: the hand closes here, the carry starts from here
        current = self.robot.joint_positions()
        try:
            carry, lifted_at = self._plan_carry(current, self.backend.tcp_pose(current),
                                                plan.grasp.width, plan.place)
        except LitedetError as error:
            raise _AbortError(f'planning the carry from where the descent stopped failed: '
                              f'{error}') from error
        return replace(plan, carry=carry, lifted_at=lifted_at)

    def _off_descent(self, plan: _Plan) -> float:
        """Distance (m) of the TCP from the straight line of the descent into the bin.

        0 above it: within the blend radius of the pre-grasp, where the corner is rounded.
        """
        start, end = plan.pre_grasp[:3, 3], plan.grasp.pose[:3, 3]
        axis = (end - start) / np.linalg.norm(end - start)
        offset = self.backend.tcp_pose(self.robot.joint_positions())[:3, 3] - start
        along = float(offset @ axis)
        if along <= self.config.blend_radius:
            return 0.0
        return float(np.linalg.norm(offset - along * axis))

    def _grasp(self, plan: _Plan) -> float:
        self._update(state=PickState.GRASPING)
        width = self._gripper(0.0)
        if width < self.config.min_grip_width:
            raise _AbortError(f'empty hand after close (finger width {1e3 * width:.1f} mm)')
        return width

    def _carry(self, plan: _Plan, width: float) -> None:
        self._update(state=PickState.LIFTING)

        settle = self.config.grip_settle_time

        def lifted() -> None:  # a slip here halts the arm at the top of the lift, over the bin
            before, since = self.robot.finger_width(), self.robot.now()
            self.robot.wait(settle)
            # fingers closed on since the grasp: a part that only turned in the grip has stopped
            # them again (over the time the wait really took) or soon does, a slipping one not
            turned = settle > 0 and (before - self.robot.finger_width()
                                     <= self.config.still_speed * (self.robot.now() - since)
                                     or self._fingers_stop())
            self._verify_held(width, 'object slipped after lift', PickOutcome.FAILED,
                              allow_slip=turned)
            self._update(state=PickState.TRANSPORTING)

        self._execute(plan.carry, checks=((max(plan.lifted_at - settle, 0.0), lifted),))
        # only an empty hand: a part that turned in the grip (a can rolling a few mm) is
        # still held, and placing it beats dropping it back into the bin from the recovery
        self._verify_held(width, 'object dropped in transit', PickOutcome.PARTIAL_SUCCESS,
                          allow_slip=True)

    def _fingers_stop(self) -> bool:
        """Whether fingers still closing on a lifted part stop within ``grip_turn_time``.

        A part turning in the grip stops them again once it lies flat between the pads; a
        slipping one does not until the hand is empty.
        """
        robot, config = self.robot, self.config
        deadline = robot.now() + config.grip_turn_time
        still_since = None
        while robot.now() < deadline:
            previous, last = robot.finger_width(), robot.now()
            robot.wait(config.control_period)
            if self._estop.is_set():
                raise _EmergencyStopError
            width, now = robot.finger_width(), robot.now()
            if width < config.min_grip_width:
                return False
            if now <= last:
                continue
            if previous - width > config.still_speed * (now - last):
                still_since = None
            elif still_since is None:
                still_since = last
            elif now - still_since >= STILL_TIME:
                return True
        return False

    def _place(self, place: np.ndarray) -> None:
        self._update(state=PickState.PLACING)
        config = self.config
        held, retreat = self.robot.finger_width(), config.retreat_distance > 0
        # a part held about as wide as release_width would stay wedged between the fingers
        release = max(config.release_width, held + config.release_clearance)
        # a retreat starts once the fingers are off the part (they open fully on the way);
        # without one the next move may go sideways, so they open fully as the part falls
        off = held + config.release_clearance if retreat else release - AT_OPENING
        self._gripper(release, until=lambda width: width >= off)
        self._placed += 1
        if not retreat:
            self._released_at = place
            return
        self._update(state=PickState.RETREATING)
        above = _translated(place, (0, 0, self.config.retreat_distance))
        self._checkpoint()
        try:
            retreat = self.backend.plan_cartesian(self.robot.joint_positions(), above)
        except LitedetError as error:
            raise _AbortError(f'planning the retreat failed: {error}',
                              PickOutcome.PARTIAL_SUCCESS) from error
        self._execute(retreat)

    def _recover(self, descent: _Plan | None = None) -> None:
        """After a failed attempt: open, back off upwards, then leave the camera's view.

        The fingers open ``open_margin`` wider than they are, so that a part still between
        them (a slip verdict on a part that only turned) is let go rather than squeezed.
        After an attempt that ended on the way down to the grasp of ``descent`` (the guard
        stopped the hand where a part pushed it, towards a wall maybe): fingers still at the
        grasp's opening hold nothing and stay there, as wider could press one into the wall,
        and when the straight rise is not free the hand backs out the way it came, to the
        pre-grasp. The arm then goes to above the place zone, where a successful attempt ends
        too: the next look at the bin sees the parts, not the arm over them.
        """
        self._update(state=PickState.RECOVERING)
        try:
            opening = max(self.robot.finger_width(), self.config.min_grip_width)
            if descent is None or abs(opening - descent.grasp.width) > FINGERS_BLOCKED:
                self._gripper(opening + self.config.open_margin)
            current = self.robot.joint_positions()
            up = _translated(self.backend.tcp_pose(current),
                             (0, 0, self.config.pre_grasp_distance))
            try:
                back_off = self.backend.plan_cartesian(current, up)
            except LitedetError:
                if descent is None:
                    raise
                back_off = self.backend.plan_cartesian(current, descent.pre_grasp)
            self._execute(back_off)
            self._leave_view()
        except (_AbortError, _EmergencyStopError, LitedetError):
            pass  # the arm stays where it is; the next attempt plans from there

    def _time_near(self, trajectory: JointTrajectory, pose: np.ndarray,
                   radius: float = 0.0) -> float:
        """Time into ``trajectory`` where the TCP first comes within ``radius`` (m) of ``pose``.

        Where it comes nearest to ``pose``'s position if it never does.
        """
        distance = np.linalg.norm(self.backend.tcp_path(trajectory) - pose[:3, 3], axis=1)
        near = distance <= radius
        return float(trajectory.times[np.argmax(near) if near.any() else np.argmin(distance)])

    def _departed_at(self, trajectory: JointTrajectory, departure: tuple[Leg, ...]) -> float:
        """Time into a move starting with ``departure`` when its fingers may start to move.

        At the top of the rise off a release spot (:meth:`_departure`), 0 without one. A
        part just released may still lie between the open fingers, on the parts piled in the
        tote below them: fingers closing there would take it back.
        """
        return self._time_near(trajectory, departure[0].pose) if departure else 0.0

    def _departure(self, current: np.ndarray) -> tuple[Leg, ...]:
        """The first leg of a move from joints ``current``: up off a release spot, or none.

        See ``departure_rise``: only when the TCP is within ``AT_RELEASE`` of the last
        release (made without a retreat).
        """
        rise = self.config.departure_rise
        if rise <= 0 or self._released_at is None:
            return ()
        tcp = self.backend.tcp_pose(current)
        if np.linalg.norm(tcp[:3, 3] - self._released_at[:3, 3]) > AT_RELEASE:
            return ()
        return (Leg(_translated(tcp, (0, 0, rise)), straight=True,
                    blend_radius=min(self.config.blend_radius, rise / 2)),)

    def _leave_view(self) -> None:
        """Go to above the place zone, out of the camera's view of the bin."""
        clear = _translated(self.config.place_pose, (0, 0, self.config.place_height))
        self._execute(self.backend.plan_to_pose(self.robot.joint_positions(), clear))

    # -- helpers -------------------------------------------------------------------------------
    def _execute(self, trajectory: JointTrajectory,
                 checks: Sequence[tuple[float, Callable[[], None]]] = (),
                 guard: tuple[float, Callable[[], bool]] | None = None) -> bool:
        """Run a trajectory under the watchdog and the emergency stop.

        ``checks``: ``(t, verify)`` pairs, in the order of ``t``; each ``verify()`` runs once,
        ``t`` s into the motion (at its end, if it ends first); the robot halts if one raises.
        ``guard = (t, stop)``: from ``t`` s into the motion ``stop()`` is asked every control
        period; the robot halts when it says so.

        Returns:
            True when the motion ran to its goal, False when the guard halted it.
        """
        self._checkpoint()
        robot, config = self.robot, self.config
        try:
            robot.execute(trajectory)
        except LitedetError as error:
            raise _AbortError(f'trajectory refused by the robot: {error}') from error
        if self._estop.is_set():  # the stop's halt may have landed just before the send
            robot.halt()
            raise _EmergencyStopError
        started, pending = robot.now(), list(checks)
        limit = trajectory.duration * config.watchdog_factor + config.watchdog_slack
        while robot.executing():
            if self._estop.is_set():
                robot.halt()
                raise _EmergencyStopError
            if robot.now() > started + limit:
                robot.halt()
                raise _AbortError(f'execution watchdog: motion not finished after {limit:.2f} s')
            while pending and robot.now() - started >= pending[0][0]:
                try:
                    pending.pop(0)[1]()
                except (_AbortError, _FingersLateError):
                    robot.halt()
                    raise
            if guard is not None and robot.now() - started >= guard[0] and guard[1]():
                robot.halt()
                return False
            robot.wait(config.control_period)
        if self._estop.is_set():  # halted from another thread while we waited
            raise _EmergencyStopError
        for _, verify in pending:  # the motion ended before they were due
            verify()
        # the arm may end behind the trajectory (fingers landing on a part hold it back for a
        # moment): like a controller's goal time, it has until the watchdog's limit to settle
        def goal_error() -> float:
            return float(np.abs(robot.joint_positions() - trajectory.positions[-1]).max())

        error = goal_error()
        while error > config.goal_tolerance and robot.now() <= started + limit:
            robot.wait(config.control_period)
            if self._estop.is_set():
                raise _EmergencyStopError
            error = goal_error()
        if error > config.goal_tolerance:
            raise _AbortError(f'motion ended {error:.3f} rad from its goal')
        return True

    def _gripper(self, opening: float,
                 until: Callable[[float], bool] | None = None) -> float:
        """Command the fingers and wait until they settle; return the measured width.

        ``until(width)``, if given, ends the wait early as soon as it holds.
        """
        self._command_gripper(opening)
        return self._await_fingers(opening, until)

    def _command_gripper(self, opening: float) -> None:
        """Command the fingers (not while paused or stopped) without waiting for them."""
        self._checkpoint()
        self.robot.command_gripper(opening)

    def _await_fingers(self, opening: float,
                       until: Callable[[float], bool] | None = None) -> float:
        """Wait until the fingers commanded to ``opening`` settle (see :meth:`_gripper`)."""
        robot, config = self.robot, self.config
        deadline = robot.now() + config.gripper_timeout
        previous = robot.finger_width()
        if abs(previous - opening) < AT_OPENING:  # already there (pre-shaped on the way)
            return previous
        # the speed over the time that passed since the last poll: a robot's wait may take
        # longer than asked (a ROS node sleeping 10 ms of wall time on a loaded machine), and
        # over 20 ms a part creeping in the grip moves twice the distance of 10 ms. Stillness
        # counts once the fingers have moved, or FINGER_START_TIMEOUT after the command
        started = still_since = last_time = robot.now()
        while robot.now() < deadline:
            robot.wait(config.control_period)
            if self._estop.is_set():
                raise _EmergencyStopError
            width, now = robot.finger_width(), robot.now()
            if until is not None and until(width):
                break
            if now <= last_time:  # no time has passed (the robot's clock did not tick)
                continue
            if abs(width - previous) > config.still_speed * (now - last_time):
                still_since = now  # later than started from the first move on
            elif (still_since > started or now - started >= FINGER_START_TIMEOUT) and \
                    now - still_since >= 0.1 and (abs(width - opening) < AT_OPENING
                                                  or now - still_since >= config.grip_settle_time):
                break
            previous, last_time = width, now
        return robot.finger_width()

    def _verify_held(self, width: float, reason: str, outcome: PickOutcome,
                     allow_slip: bool = False) -> None:
        """Abort unless the fingers still hold something.

        Unless ``allow_slip``, they must also have closed no more than ``slip_tolerance`` since
        the grasp.
        """
        now = self.robot.finger_width()
        slipped = not allow_slip and width - now > self.config.slip_tolerance
        if now < self.config.min_grip_width or slipped:
            raise _AbortError(f'{reason} (finger width {1e3 * width:.1f} -> {1e3 * now:.1f} mm)',
                         outcome)

    def _held_object(self, width: float) -> Obstacle:
        x, z = self.config.attached_size
        return Obstacle('held', 'box', (x, max(width, 1e-3), z), np.eye(4))

    def _checkpoint(self) -> None:
        """Between motions: honour the emergency stop and pause."""
        if self._estop.is_set():
            raise _EmergencyStopError
        if not self._resume.is_set():
            state = self.status.state
            self._update(state=PickState.PAUSED)
            while not self._resume.is_set() and not self._estop.is_set():
                self.robot.wait(self.config.control_period)
            if self._estop.is_set():
                raise _EmergencyStopError
            self._update(state=state)

    def _finish(self, result: PickResult, counts: bool = True) -> None:
        """End an attempt; ``counts``: a failure adds to the failure streak."""
        status = self.status
        success = result.outcome == PickOutcome.SUCCESS
        failed = result.outcome == PickOutcome.FAILED
        streak = 0 if success else status.consecutive_failures + (failed and counts)
        state = PickState.EMERGENCY_STOP if self._estop.is_set() else PickState.IDLE
        self._update(state=state, last_result=result,
                     successes=status.successes + success, failures=status.failures + failed,
                     consecutive_failures=streak)

    def _update(self, **changes: object) -> None:
        with self._lock:
            if self._estop.is_set() and 'state' in changes:
                changes['state'] = PickState.EMERGENCY_STOP
            self._status = replace(self._status, **changes)
            status = self._status
        if self._on_status is not None:
            self._on_status(status)


def new_pushes(offered: Sequence[Push], made: Sequence[Push]) -> tuple[Push, ...]:
    """``offered`` without the pushes of ``made`` (both ends within ``SAME_PUSH``), in order.

    The grasp planner offers the pushes of an unchanged bin again: one made that moved nothing
    would be repeated until the push limit ends the run.
    """
    return tuple(push for push in offered if not any(
        np.linalg.norm(push.start[:3, 3] - other.start[:3, 3]) < SAME_PUSH
        and np.linalg.norm(push.end[:3, 3] - other.end[:3, 3]) < SAME_PUSH for other in made))


def _backed_off(pose: np.ndarray, config: TaskConfig) -> np.ndarray:
    """``pose`` backed off along its tool +z, as a pre-grasp or above a push's ends.

    By ``pre_grasp_distance``, and, when the tool points down (a grasp or push from above,
    straight or tilted), until above ``clear_height``.
    """
    approach = pose[:3, 2]
    back_off = config.pre_grasp_distance
    if approach[2] < -0.1:
        back_off = max(back_off, (config.clear_height - pose[2, 3]) / -approach[2])
    return _translated(pose, -back_off * approach)


def _box_seen(grasp: Grasp, before: Sequence[Grasp], tolerance: float) -> bool:
    """Whether ``grasp`` has no box, or one of ``before`` has its box within ``tolerance``."""
    return grasp.box is None or any(
        other.box is not None and max(abs(a - b) for a, b in zip(grasp.box, other.box))
        <= tolerance for other in before)


def _below_path(point: np.ndarray, corners: np.ndarray) -> float:
    """How far (m) ``point`` lies below the nearest point of the polyline through ``corners``.

    ``corners``: ``float[K, 3]``; 0 when ``point`` is not below that point.
    """
    starts, steps = corners[:-1], np.diff(corners, axis=0)
    lengths = np.maximum(np.einsum('ij,ij->i', steps, steps), 1e-18)
    along = np.clip(np.einsum('ij,ij->i', point - starts, steps) / lengths, 0.0, 1.0)
    nearest = starts + along[:, None] * steps
    nearest = nearest[np.argmin(np.linalg.norm(nearest - point, axis=1))]
    return max(float(nearest[2] - point[2]), 0.0)


def _translated(pose: np.ndarray, offset: Sequence[float]) -> np.ndarray:
    """``pose`` moved by ``offset`` (planning frame, m)."""
    moved = np.array(pose, dtype=np.float64)
    moved[:3, 3] += offset
    return moved
