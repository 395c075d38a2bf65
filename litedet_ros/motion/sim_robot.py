"""The MuJoCo workcell as a :class:`~litedet_ros.motion.task.RobotInterface` (no ROS).

Time is simulated time: :meth:`SimRobot.wait` advances the physics, so the task's watchdog and
gripper timeouts are measured in sim seconds and a pick runs as fast as the machine allows.
Physics that diverge twice in a row halt the arm where it was (the cell restores the state before
them) and are counted, as ``sim_node`` logs them: the task sees a stopped arm, as it does in the
graph, not an error from a wait. Unlike ``sim_node`` it never reloads the scene (which would put
the placed parts back in the bin): a state that diverges again is restored again.
"""

from __future__ import annotations

import numpy as np

from litedet_ros.sim.workcell import PhysicsDivergedError, Workcell
from litedet_ros.trajectory import JointTrajectory


class SimRobot:
    """Drive a :class:`~litedet_ros.sim.workcell.Workcell` directly."""

    def __init__(self, cell: Workcell) -> None:
        """Wrap a cell (its scene may be reset between uses)."""
        self.cell = cell
        self.divergences = 0  # waits whose physics diverged twice, the arm halted

    def now(self) -> float:
        return self.cell.time

    def wait(self, seconds: float) -> None:
        try:
            self.cell.advance(seconds)
        except PhysicsDivergedError:
            self.divergences += 1

    def joint_positions(self) -> np.ndarray:
        return self.cell.arm_positions()

    def execute(self, trajectory: JointTrajectory) -> None:
        self.cell.execute(trajectory)

    def executing(self) -> bool:
        return self.cell.trajectory_active

    def halt(self) -> None:
        self.cell.stop()

    def command_gripper(self, opening: float) -> None:
        self.cell.command_gripper(opening)

    def finger_width(self) -> float:
        return self.cell.gripper_width()
