"""MoveIt 2 backend through moveit_py (ROS 2 Jazzy), for installs that have MoveIt.

Imported only on request (``make_backend('moveit')``): moveit_py is not on PyPI, so this module
is ROS-side code, exercised where MoveIt is installed. It plans with the ``manipulator`` group
of ``config/workcell.srdf`` (OMPL pipeline for free motion, Pilz LIN for straight lines) and
keeps obstacles and the attached object in MoveIt's planning scene.
"""

from __future__ import annotations

import numpy as np

from litedet_ros.description import TCP_FRAME
from litedet_ros.motion.backend import MotionBackend
from litedet_ros.motion.ik import IkError
from litedet_ros.motion.model import MotionError, Obstacle
from litedet_ros.motion.planner import PlanningError
from litedet_ros.trajectory import JointTrajectory

try:
    from geometry_msgs.msg import Pose
    from moveit.core.robot_state import RobotState
    from moveit.planning import MoveItPy, PlanRequestParameters
    from moveit_msgs.msg import AttachedCollisionObject, CollisionObject
    from shape_msgs.msg import SolidPrimitive
except ImportError as error:  # pragma: no cover - depends on the install
    raise MotionError(f'the moveit backend needs moveit_py (MoveIt 2), not importable here: '
                      f'{error}') from error

GROUP = 'manipulator'
ATTACHED_ID = 'attached_object'
PRIMITIVES = {'box': SolidPrimitive.BOX, 'cylinder': SolidPrimitive.CYLINDER,
              'sphere': SolidPrimitive.SPHERE}


def _pose_msg(matrix: np.ndarray) -> Pose:
    """``float64[4, 4]`` -> geometry_msgs/Pose."""
    import pinocchio as pin  # noqa: PLC0415

    quaternion = pin.Quaternion(np.asarray(matrix)[:3, :3])
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in matrix[:3, 3])
    pose.orientation.x, pose.orientation.y = float(quaternion.x), float(quaternion.y)
    pose.orientation.z, pose.orientation.w = float(quaternion.z), float(quaternion.w)
    return pose


def _pose_matrix(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> ``float64[4, 4]``."""
    import pinocchio as pin  # noqa: PLC0415

    o = pose.orientation
    matrix = np.eye(4)
    matrix[:3, :3] = pin.Quaternion(o.w, o.x, o.y, o.z).toRotationMatrix()
    matrix[:3, 3] = (pose.position.x, pose.position.y, pose.position.z)
    return matrix


class MoveItBackend(MotionBackend):
    """Plans with MoveIt 2 via moveit_py; the planning scene holds the collision world."""

    name = 'moveit'

    def __init__(self, node_name: str = 'litedet_moveit_py', config_dict: dict | None = None,
                 ik_timeout: float = 0.05) -> None:
        """Start moveit_py.

        Args:
            node_name: name of the node moveit_py creates.
            config_dict: MoveIt configuration (e.g. ``MoveItConfigsBuilder(...).to_dict()``);
                None reads the node's parameters set by the launch file.
            ik_timeout: time budget of the kinematics plugin, s.
        """
        self._moveit = MoveItPy(node_name=node_name, config_dict=config_dict)
        self._arm = self._moveit.get_planning_component(GROUP)
        self._model = self._moveit.get_robot_model()
        self._scene = self._moveit.get_planning_scene_monitor()
        self._group = self._model.get_joint_model_group(GROUP)
        self._ik_timeout = ik_timeout
        self._lin = PlanRequestParameters(self._moveit)
        self._lin.planning_pipeline = 'pilz_industrial_motion_planner'
        self._lin.planner_id = 'LIN'

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self._group.active_joint_model_names)

    @property
    def planning_frame(self) -> str:
        return self._model.model_frame

    def _state(self, joints: np.ndarray) -> RobotState:
        state = RobotState(self._model)
        state.set_joint_group_positions(GROUP, np.asarray(joints, dtype=np.float64))
        state.update()
        return state

    def tcp_pose(self, joints: np.ndarray) -> np.ndarray:
        return _pose_matrix(self._state(joints).get_pose(TCP_FRAME))

    def ik(self, pose: np.ndarray, reference: np.ndarray, contact: bool = False) -> np.ndarray:
        state = self._state(reference)
        if not state.set_from_ik(GROUP, _pose_msg(pose), TCP_FRAME, self._ik_timeout):
            raise IkError('pose is out of reach (MoveIt kinematics found no solution)')
        return np.asarray(state.get_joint_group_positions(GROUP))

    def _plan(self, start: np.ndarray, parameters: PlanRequestParameters | None = None,
              **goal: object) -> JointTrajectory:
        self._arm.set_start_state(robot_state=self._state(start))
        self._arm.set_goal_state(**goal)
        result = (self._arm.plan(single_plan_parameters=parameters) if parameters
                  else self._arm.plan())
        if not result:
            raise PlanningError(f'MoveIt planning failed: {result.error_code}')
        message = result.trajectory.get_robot_trajectory_msg().joint_trajectory
        times = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec
                          for p in message.points])
        return JointTrajectory(tuple(message.joint_names), times,
                               np.array([p.positions for p in message.points]),
                               np.array([p.velocities for p in message.points]))

    def plan_to_joints(self, start: np.ndarray, goal: np.ndarray) -> JointTrajectory:
        return self._plan(start, robot_state=self._state(goal))

    def plan_cartesian(self, start: np.ndarray, pose: np.ndarray) -> JointTrajectory:
        from geometry_msgs.msg import PoseStamped  # noqa: PLC0415

        target = PoseStamped()
        target.header.frame_id = self.planning_frame
        target.pose = _pose_msg(pose)
        return self._plan(start, self._lin, pose_stamped_msg=target, pose_link=TCP_FRAME)

    def _collision_object(self, obstacle: Obstacle, frame: str, operation: int
                          ) -> CollisionObject:
        message = CollisionObject()
        message.id = obstacle.name
        message.header.frame_id = frame
        primitive = SolidPrimitive(type=PRIMITIVES[obstacle.shape],
                                   dimensions=list(obstacle.size))
        if obstacle.shape == 'cylinder':  # MoveIt's order is (height, radius)
            primitive.dimensions = [obstacle.size[1], obstacle.size[0]]
        message.primitives = [primitive]
        message.primitive_poses = [_pose_msg(obstacle.pose)]
        message.operation = operation
        return message

    def add_obstacle(self, obstacle: Obstacle) -> None:
        with self._scene.read_write() as scene:
            scene.apply_collision_object(
                self._collision_object(obstacle, self.planning_frame, CollisionObject.ADD))
            scene.current_state.update()

    def remove_obstacle(self, name: str) -> None:
        message = CollisionObject(id=name, operation=CollisionObject.REMOVE)
        message.header.frame_id = self.planning_frame
        with self._scene.read_write() as scene:
            scene.apply_collision_object(message)

    def attach(self, obstacle: Obstacle) -> None:
        attached = AttachedCollisionObject()
        attached.link_name = TCP_FRAME
        attached.object = self._collision_object(
            Obstacle(ATTACHED_ID, obstacle.shape, obstacle.size, obstacle.pose), TCP_FRAME,
            CollisionObject.ADD)
        attached.touch_links = ['left_finger', 'right_finger', 'gripper_base']
        with self._scene.read_write() as scene:
            scene.process_attached_collision_object(attached)
            scene.current_state.update()

    def detach(self) -> None:
        attached = AttachedCollisionObject()
        attached.link_name = TCP_FRAME
        attached.object = CollisionObject(id=ATTACHED_ID, operation=CollisionObject.REMOVE)
        with self._scene.read_write() as scene:
            scene.process_attached_collision_object(attached)
            scene.apply_collision_object(attached.object)

    def set_gripper_opening(self, opening: float) -> None:
        with self._scene.read_write() as scene:
            scene.current_state.set_joint_group_positions('gripper',
                                                          np.array([opening / 2.0] * 2))
            scene.current_state.update()
