"""Motion backends behind one interface: ``builtin`` (default) and ``moveit``.

A backend answers the questions the pick-and-place task asks: where is the TCP, which joints
reach a pose, and a timed, collision-free trajectory to joints, to a pose, or along a straight
line. It also keeps the collision world (runtime obstacles, the object attached to the tool,
the finger opening). ``builtin`` is pinocchio + coal + OMPL + TOPP-RA and runs everywhere;
``moveit`` drives MoveIt 2 through moveit_py where it is installed.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from litedet_ros.motion.ik import IkConfig, InverseKinematics
from litedet_ros.motion.model import MotionError, Obstacle, RobotModel
from litedet_ros.motion.planner import JointPlanner, PlannerConfig
from litedet_ros.trajectory import JointTrajectory, concatenate

BACKENDS = ('builtin', 'moveit')


@dataclass(frozen=True)
class Leg:
    """One leg of a motion through several goals (:meth:`MotionBackend.plan_sequence`).

    Attributes:
        pose: ``float64[4, 4]`` TCP goal in the planning frame.
        straight: a straight TCP line to ``pose`` (as :meth:`MotionBackend.plan_cartesian`);
            else a free-space motion (as :meth:`MotionBackend.plan_to_pose`).
        blend_radius: the motion may leave this leg within this TCP distance of its goal
            and carry on into the next leg without stopping, like the blend radius of Pilz's
            motion sequences; 0 stops at the goal (always on the last leg), m.
    """

    pose: np.ndarray
    straight: bool = False
    blend_radius: float = 0.0


class MotionBackend(abc.ABC):
    """What the task needs from a motion planner.

    Poses are ``float64[4, 4]`` TCP poses in :attr:`planning_frame`; joints are
    ``float64[dof]`` in :attr:`joint_names` order (rad).

    Every planning method raises :class:`MotionError` (``IkError`` for unreachable poses,
    ``PlanningError`` otherwise) with a reason, and returns trajectories starting at ``start``.
    """

    name: str

    @property
    @abc.abstractmethod
    def joint_names(self) -> tuple[str, ...]:
        """Planned joints, in configuration order."""

    @property
    @abc.abstractmethod
    def planning_frame(self) -> str:
        """Frame of every pose in and out."""

    @abc.abstractmethod
    def tcp_pose(self, joints: np.ndarray) -> np.ndarray:
        """Forward kinematics of the TCP."""

    def tcp_path(self, trajectory: JointTrajectory) -> np.ndarray:
        """TCP positions at the points of ``trajectory``, ``float64[N, 3]``, planning frame, m."""
        return np.array([self.tcp_pose(q)[:3, 3] for q in trajectory.positions],
                        dtype=np.float64).reshape(-1, 3)

    @abc.abstractmethod
    def ik(self, pose: np.ndarray, reference: np.ndarray, contact: bool = False) -> np.ndarray:
        """Collision-free joints reaching ``pose``, nearest ``reference``.

        ``contact=True`` marks a pose where the hand may come close to the cell (grasp, place):
        it is checked like the straight-line moves, without the free-space planning margin.
        """

    @abc.abstractmethod
    def plan_to_joints(self, start: np.ndarray, goal: np.ndarray) -> JointTrajectory:
        """Collision-free timed motion to a joint goal."""

    @abc.abstractmethod
    def plan_cartesian(self, start: np.ndarray, pose: np.ndarray) -> JointTrajectory:
        """Timed straight-line TCP motion to ``pose`` (approach, lift, retreat)."""

    @abc.abstractmethod
    def add_obstacle(self, obstacle: Obstacle) -> None:
        """Add or replace a runtime obstacle (pose in the planning frame)."""

    @abc.abstractmethod
    def remove_obstacle(self, name: str) -> None:
        """Remove a runtime obstacle."""

    @abc.abstractmethod
    def attach(self, obstacle: Obstacle) -> None:
        """Attach an object to the TCP (``obstacle.pose`` is tcp <- object)."""

    @abc.abstractmethod
    def detach(self) -> None:
        """Release the attached object from the collision model."""

    @abc.abstractmethod
    def set_gripper_opening(self, opening: float) -> None:
        """Finger opening assumed by collision checks, m."""

    def plan_to_pose(self, start: np.ndarray, pose: np.ndarray) -> JointTrajectory:
        """IK first (a fast answer for unreachable poses), then a joint-space plan."""
        return self.plan_to_joints(start, self.ik(pose, start))

    def plan_sequence(self, start: np.ndarray, legs: Sequence[Leg]) -> JointTrajectory:
        """Timed motion through the goals of ``legs`` in turn, blending where they ask to.

        This default plans each leg on its own and stops at every goal; backends that can
        blend override it.
        """
        parts: list[JointTrajectory] = []
        for leg in legs:
            joints = parts[-1].positions[-1] if parts else start
            parts.append(self.plan_cartesian(joints, leg.pose) if leg.straight
                         else self.plan_to_pose(joints, leg.pose))
        return concatenate(parts)


@dataclass(frozen=True)
class BuiltinConfig:
    """Settings of the built-in backend.

    Attributes:
        planner: joint-space planning and timing.
        ik: numerical IK and Cartesian interpolation.
        contact_margin: clearance kept by straight-line moves near the grasp, m (the planner's
            margin applies to free-space moves).
    """

    planner: PlannerConfig = field(default_factory=PlannerConfig)
    ik: IkConfig = field(default_factory=IkConfig)
    contact_margin: float = 0.002


class BuiltinBackend(MotionBackend):
    """pinocchio + coal + OMPL + TOPP-RA: the default backend."""

    name = 'builtin'

    def __init__(self, robot: RobotModel, config: BuiltinConfig | None = None) -> None:
        """Wrap a robot model."""
        self.robot = robot
        self.config = config or BuiltinConfig()
        self.solver = InverseKinematics(robot, self.config.ik)
        self.planner = JointPlanner(robot, self.config.planner)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.robot.arm_joints

    @property
    def planning_frame(self) -> str:
        return self.robot.planning_frame

    def tcp_pose(self, joints: np.ndarray) -> np.ndarray:
        return self.robot.frame_pose(_joints(joints, self.robot.dof))

    def ik(self, pose: np.ndarray, reference: np.ndarray, contact: bool = False) -> np.ndarray:
        margin = self.config.contact_margin if contact else self.config.planner.margin
        return self.solver.solve(pose, _joints(reference, self.robot.dof), margin)

    def plan_to_joints(self, start: np.ndarray, goal: np.ndarray) -> JointTrajectory:
        return self.planner.plan(_joints(start, self.robot.dof), _joints(goal, self.robot.dof))

    def plan_cartesian(self, start: np.ndarray, pose: np.ndarray) -> JointTrajectory:
        path = self.solver.cartesian(_joints(start, self.robot.dof), pose,
                                     self.config.contact_margin)
        return self.planner.time_parametrize(path)

    def plan_sequence(self, start: np.ndarray, legs: Sequence[Leg]) -> JointTrajectory:
        joints, paths = _joints(start, self.robot.dof), []
        for leg in legs:
            paths.append(
                self.solver.cartesian(joints, leg.pose, self.config.contact_margin)
                if leg.straight else self.planner.plan_path(joints, self.ik(leg.pose, joints)))
            joints = paths[-1][-1]
        return self.planner.time_sequence(paths, [leg.blend_radius for leg in legs[:-1]])

    def add_obstacle(self, obstacle: Obstacle) -> None:
        self.robot.add_obstacle(obstacle)

    def remove_obstacle(self, name: str) -> None:
        self.robot.remove_obstacle(name)

    def attach(self, obstacle: Obstacle) -> None:
        self.robot.attach(obstacle)

    def detach(self) -> None:
        self.robot.detach()

    def set_gripper_opening(self, opening: float) -> None:
        self.robot.set_gripper_opening(opening)


def _joints(joints: np.ndarray, dof: int) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (dof,) or not np.isfinite(joints).all():
        raise MotionError(f'expected {dof} finite joint values, got shape {joints.shape}')
    return joints


def make_backend(name: str = 'builtin', config: BuiltinConfig | None = None,
                 **workcell_args: float | str) -> MotionBackend:
    """Create a backend for the litedet workcell.

    Args:
        name: 'builtin' or 'moveit'.
        config: settings of the builtin backend (moveit reads its own configuration).
        **workcell_args: xacro arguments of the cell (builtin backend only).

    Raises:
        MotionError: unknown name, or the moveit backend without moveit_py.
    """
    if name == 'builtin':
        return BuiltinBackend(RobotModel.from_workcell(**workcell_args), config)
    if name == 'moveit':
        from litedet_ros.motion.moveit_backend import MoveItBackend  # noqa: PLC0415

        return MoveItBackend()
    raise MotionError(f'unknown motion backend {name!r}; choose one of {BACKENDS}')
