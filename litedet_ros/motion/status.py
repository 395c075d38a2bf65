"""Pick-and-place task states, outcomes and the counters the controller reports."""

from __future__ import annotations

from dataclasses import dataclass
import enum

#: Reason prefix of a FAILED result in which nothing was picked: objects were seen, none had a
#: feasible grasp (and at most a push rearranged them). It counts toward the stop rule but is
#: not a pick attempt in the figures.
NO_FEASIBLE_GRASP = 'no feasible grasp'
#: In the reason of such a result, what follows when the task pushed a part instead.
PUSHED = '; pushed'


class PickState(enum.IntEnum):
    """What the pick-and-place task is doing (values match ``PickStatus.msg``)."""

    IDLE = 0
    PAUSED = 1
    WAITING_FOR_GRASPS = 2
    PLANNING = 3
    APPROACHING = 4
    GRASPING = 5
    LIFTING = 6
    TRANSPORTING = 7
    PLACING = 8
    RETREATING = 9
    RECOVERING = 10
    STOPPED = 11
    EMERGENCY_STOP = 12
    PUSHING = 13


#: States in which a pick is under way: the arm is about to enter, is in, or is leaving the
#: camera's view, and the scene changes; an image of these states shows nothing the next pick
#: can use.
PICK_UNDER_WAY = frozenset({
    PickState.PLANNING, PickState.APPROACHING, PickState.GRASPING, PickState.LIFTING,
    PickState.TRANSPORTING, PickState.PLACING, PickState.RETREATING, PickState.RECOVERING,
    PickState.PUSHING})


class PickGate:
    """Tell, from the controller's status, which images show a pick under way.

    While a pick is under way (:data:`PICK_UNDER_WAY`) the arm is in or near the camera's view
    and the scene changes; the controller only takes grasps of images taken after its attempt
    ended. Perception nodes skip the other images instead of spending cores the simulator and
    the motion planner need. Before any status nothing is skipped.

    Attributes:
        under_way: the last status says a pick is under way.
        ended_ns: stamp of the status that ended the last pick (0 before one ended).
    """

    def __init__(self) -> None:
        self.under_way = False
        self.ended_ns = 0

    def update(self, state: int, stamp_ns: int) -> None:
        """Take a status: its state code (an unknown code is not a pick) and its stamp."""
        under_way = state in PICK_UNDER_WAY
        if self.under_way and not under_way:
            self.ended_ns = stamp_ns
        self.under_way = under_way

    def blocks(self, stamp_ns: int) -> bool:
        """Whether an image stamped ``stamp_ns`` shows a pick under way or the scene before it."""
        return self.under_way or stamp_ns < self.ended_ns


class PickOutcome(enum.IntEnum):
    """Result of one pick attempt (values match ``PickStatus.msg``)."""

    NONE = 0
    SUCCESS = 1
    PARTIAL_SUCCESS = 2
    FAILED = 3


@dataclass(frozen=True)
class PickResult:
    """Outcome of one pick attempt.

    Attributes:
        outcome: SUCCESS (placed), PARTIAL_SUCCESS (picked, not placed as asked), FAILED.
        reason: human-readable cause, empty on plain success.
        cycle_time: seconds from the start of planning to the end of the attempt (after the
            release, or the retreat if there is one).
    """

    outcome: PickOutcome
    reason: str = ''
    cycle_time: float = 0.0


@dataclass(frozen=True)
class PickStatus:
    """Snapshot of the controller: state, counters and the last result.

    Attributes:
        state: current task state.
        enabled: whether the controller may start new picks.
        attempts: pick attempts started since start-up.
        successes: attempts that ended in SUCCESS.
        failures: attempts that ended in FAILED.
        consecutive_failures: FAILED attempts since the last SUCCESS.
        last_result: result of the most recent finished attempt.
        stamp_ns: time of this snapshot, nanoseconds (ROS clock).
    """

    state: PickState
    enabled: bool
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_result: PickResult = PickResult(PickOutcome.NONE)
    stamp_ns: int = 0
