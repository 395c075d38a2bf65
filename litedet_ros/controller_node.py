"""Pick-and-place controller node: grasps in, trajectories and gripper commands out.

Subscribes (relative names, see :mod:`litedet_ros.topics`):

- ``grasps`` (litedet_ros/GraspArray): ranked grasps in the planning frame (``base_link``).
  Arrays in another frame, older than ``max_grasp_age``, or taken before the last attempt ended
  or the last look was asked for (``still_looks``) are refused (counted, throttled warning).
  No grasps and ``num_detections`` 0 = the bin looks empty; no grasps for detected objects =
  none of them has a feasible grasp.
- ``joint_states`` (sensor_msgs/JointState): the six arm joints and ``finger_joint`` (half the
  finger opening, m). Stamped longer ago than ``joint_state_timeout`` (ROS clock; unstamped
  ones count from receipt), or none for 2 s wall: no planning, and a motion is halted.

Publishes:

- ``joint_trajectory_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory), as a
  ros2_control joint_trajectory_controller expects; an empty one stops the arm.
- ``gripper_controller/commands`` (std_msgs/Float64MultiArray): ``data = [opening in m]``.

  A motion or gripper command with no subscriber on its topic is not sent (it would be lost):
  the attempt fails at once with the reason (see :attr:`ControllerNode.connected`).
- ``pick_status`` (litedet_ros/PickStatus) at every state change; reliable, transient local
  (late subscribers get the latest).
- ``planned_path`` (visualization_msgs/Marker): LINE_STRIP of the TCP positions of every
  trajectory sent to the arm, in the planning frame; reliable, transient local.

Services (all answer at once; results come on ``pick_status``):

- ``~/enable`` (std_srvs/SetBool): false pauses before the next motion, true resumes and clears
  an emergency stop once the arm is idle.
- ``~/pick_once`` (std_srvs/Trigger): start one attempt with the latest fresh grasps.
- ``~/run`` (std_srvs/SetBool): true starts attempts until the bin is empty (no fresh grasps
  within ``grasp_wait_timeout``, or an array without grasps and detections) or
  ``max_consecutive_failures`` failed in a row (counted from the start of the run); false lets
  the current attempt finish and starts no other. An array without grasps for detected objects
  is a FAILED attempt without motion ("no feasible grasp for N detected objects"), in which the
  array's best push not made since a grasp was last tried, if any, is made: it counts toward
  the failure limit unless a push was made (up to ``max_pushes_in_a_row`` since a grasp was last
  tried), and the run waits for an array of a newer image.
- ``~/stop`` (std_srvs/Trigger): emergency stop, the arm halts at once.

The task runs on a worker thread; callbacks only hand data over and never block, so one
executor thread serves status, stop and joint states while the task plans and moves (a
MultiThreadedExecutor would cost ~35 % of a core here in wake-ups for ``/clock`` and
``joint_states`` at 100 Hz alone, against ~6 % for a single thread).
"""

from __future__ import annotations

from dataclasses import replace
import math
import threading

from geometry_msgs.msg import Point, Pose, Vector3
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA, Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg
from visualization_msgs.msg import Marker

from litedet_ros import conversions, topics
from litedet_ros.bringup.spin import LATCHED_QOS, spin_node
from litedet_ros.errors import LitedetError
from litedet_ros.motion.controller import (
    ControllerConfig,
    GraspInbox,
    RemoteRobot,
    RobotUnavailableError,
)
from litedet_ros.motion.status import PickState, PickStatus
from litedet_ros.motion.task import GraspCandidates, PickPlaceTask
from litedet_ros.msg import GraspArray
from litedet_ros.msg import PickStatus as PickStatusMsg
from litedet_ros.trajectory import JointTrajectory

LOG_THROTTLE = 2.0  # s between repeated warnings of one kind


def _float(description: str, low: float, high: float, read_only: bool = False
           ) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=read_only,
                               floating_point_range=[FloatingPointRange(from_value=low,
                                                                        to_value=high)])


DESCRIPTORS = {
    'backend': ParameterDescriptor(description="Motion backend: 'builtin' (pinocchio, coal, "
                                   "OMPL, TOPP-RA) or 'moveit' (moveit_py).", read_only=True),
    'velocity_scaling': _float('Fraction of the URDF joint velocity limits used.', 0.01, 1.0,
                               read_only=True),
    'acceleration_scaling': _float('Fraction of the acceleration limit used.', 0.01, 1.0,
                                   read_only=True),
    'max_grasp_age': _float('Grasp arrays older than this are refused, s (0: no limit).',
                            0.0, 3600.0),
    'joint_state_timeout': _float('joint_states older than this stop planning and halt the '
                                  'arm, s.', 0.01, 10.0),
    'grasp_wait_timeout': _float('Longest wait for fresh grasps before an attempt, s; none '
                                 'ends a run.', 0.1, 600.0),
    'max_consecutive_failures': ParameterDescriptor(
        description='A run stops after this many failed attempts in a row.',
        integer_range=[IntegerRange(from_value=1, to_value=1000)]),
    'max_pushes_in_a_row': ParameterDescriptor(
        description='Pushes made since a grasp was last tried that are not failures (0: no '
        'pushes).', integer_range=[IntegerRange(from_value=0, to_value=1000)]),
    'pre_grasp_distance': _float('Back-off along the approach before the grasp, m.', 0.0, 0.5),
    'lift_height': _float('Straight lift after closing, m.', 0.0, 0.5),
    'clear_height': _float('TCP height clearing the bin rim: pre-grasps and lifts reach it, '
                           'm (0: off).', 0.0, 2.0),
    'place_position': ParameterDescriptor(description='TCP position at release [x, y, z], '
                                          'planning frame, m.'),
    'place_yaw': _float('Tool rotation about the vertical at release, rad.', -math.pi, math.pi),
    'place_half_turn': ParameterDescriptor(description='The release may also be half a turn '
                                           'from place_yaw, whichever the arm turns less to '
                                           'reach (false: exactly place_yaw).'),
    'place_grid': ParameterDescriptor(description='Release spots [columns along x, rows along '
                                      'y] centred on place_position, used in turn.'),
    'place_spacing': _float('Distance between neighbouring release spots, m.', 0.0, 0.5),
    'place_height': _float('Transport goal height above place_position, m.', 0.0, 0.5),
    'retreat_distance': _float('Straight rise after the release, m (0: none, the part is '
                               'dropped).', 0.0, 0.5),
    'departure_rise': _float('The next move from a release spot starts this far straight up, '
                             'without stopping, m (0: off).', 0.0, 0.5),
    'descent_guard': _float('The descent into the bin stops where the TCP is this far off its '
                            'line; the hand closes there, m (0: off).', 0.0, 0.1),
    'push_guard': _float('A push stops where the TCP is this far below its path; the hand '
                         'backs off upwards, m (0: off).', 0.0, 0.1),
    'still_looks': ParameterDescriptor(
        description='Grasps are tried only on parts whose box held still between two looks; '
        'at most this many more looks when all moved (0: one look).',
        integer_range=[IntegerRange(from_value=0, to_value=100)]),
    'still_gap': _float('Least time between the images of those two looks, s.', 0.0, 10.0),
    'still_box_tolerance': _float("Largest shift of a box's side between the two looks, px.",
                                  0.0, 1000.0),
    'min_grip_width': _float('Finger width below which the hand is empty, m.', 0.0, 0.1),
    'gripper_timeout': _float('Longest wait for the fingers to settle, s.', 0.1, 30.0),
    'goal_tolerance': _float('Largest joint error at the end of a motion, rad.', 0.001, 0.5),
    'control_period': _float('Polling period of execution, pause and stop, s.', 0.001, 0.1),
    'finger_length': _float("Gripper finger length of the cell's description the built-in "
                            'backend plans with, m.', 0.03, 0.2, read_only=True),
}


class ControllerNode(Node):
    """Run the pick-and-place task against a ros2_control style robot."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('controller_node', **kwargs)
        defaults = ControllerConfig()
        for name in ControllerConfig.field_names():
            default = getattr(defaults, name)
            self.declare_parameter(name, list(default) if isinstance(default, tuple) else default,
                                   DESCRIPTORS[name])
        self.config = self._config_from({p: self.get_parameter(p).value
                                         for p in ControllerConfig.field_names()})
        backend = self.config.make_backend()

        self._trajectory_pub = self.create_publisher(JointTrajectoryMsg, topics.JOINT_TRAJECTORY,
                                                     10)
        self._gripper_pub = self.create_publisher(Float64MultiArray, topics.GRIPPER_COMMAND, 10)
        self._status_pub = self.create_publisher(PickStatusMsg, topics.PICK_STATUS, LATCHED_QOS)
        self._path_pub = self.create_publisher(Marker, topics.PLANNED_PATH, LATCHED_QOS)

        self.backend = backend
        self.robot = RemoteRobot(backend.joint_names, self._send_trajectory, self._send_gripper,
                                 self._now, self.config.joint_state_timeout)
        self.inbox = GraspInbox(backend.planning_frame, self.config.max_grasp_age, self._now)
        self.task = PickPlaceTask(backend, self.robot, self.config.task_config(),
                                  self._publish_status)
        #: Messages refused at the callback boundary, by topic, and the latest reason.
        self.dropped = {'grasps': 0, 'joint_states': 0}
        self.last_error = ''
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()

        self.create_subscription(GraspArray, topics.GRASPS, self._on_grasps, 10)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state, 10)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/pick_once', self._on_pick_once)
        self.create_service(SetBool, '~/run', self._on_run)
        self.create_service(Trigger, '~/stop', self._on_stop)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._publish_status(self.task.status)
        self.get_logger().info(f'{backend.name} backend ready, planning frame '
                               f'{backend.planning_frame!r}')

    # -- parameters ----------------------------------------------------------------------------
    @staticmethod
    def _config_from(values: dict[str, object], base: ControllerConfig | None = None
                     ) -> ControllerConfig:
        for name in ('place_position', 'place_grid'):
            if name in values:
                values[name] = tuple(values[name])
        return replace(base or ControllerConfig(), **values)

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        values = {p.name: p.value for p in parameters if p.name in DESCRIPTORS}
        try:
            config = self._config_from(values, self.config)
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.config = config
        self.task.config = config.task_config()  # read by the task at its next step
        self.robot.joint_state_timeout = config.joint_state_timeout
        self.inbox.max_age = config.max_grasp_age
        return SetParametersResult(successful=True)

    # -- topics --------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / conversions.NS_PER_S

    def _drop(self, topic: str, error: LitedetError) -> None:
        self.dropped[topic] += 1
        self.last_error = f'{topic}: {error}'
        self.get_logger().warning(f'{topic} refused ({self.dropped[topic]} so far): {error}',
                                  throttle_duration_sec=LOG_THROTTLE)

    def _on_grasps(self, msg: GraspArray) -> None:
        try:
            self.inbox.offer(conversions.msg_to_grasps(msg),
                             conversions.stamp_to_ns(msg.header.stamp), msg.header.frame_id,
                             msg.num_detections, conversions.msg_to_pushes(msg))
        except LitedetError as error:
            self._drop('grasps', error)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            self.robot.update_joint_state(msg.name, msg.position, msg.velocity,
                                          conversions.stamp_to_ns(msg.header.stamp))
        except LitedetError as error:
            self._drop('joint_states', error)

    @property
    def connected(self) -> bool:
        """Whether the trajectory and the gripper controllers subscribe to the commands."""
        return all(p.get_subscription_count() > 0
                   for p in (self._trajectory_pub, self._gripper_pub))

    @staticmethod
    def _check_listened(publisher: Publisher) -> None:
        if publisher.get_subscription_count() == 0:
            raise RobotUnavailableError(f'nothing subscribes to {publisher.topic_name}')

    def _send_trajectory(self, trajectory: JointTrajectory) -> None:
        if len(trajectory.times):  # a stop goes out regardless
            self._check_listened(self._trajectory_pub)
        self._trajectory_pub.publish(conversions.joint_trajectory_to_msg(trajectory))
        if len(trajectory.times):
            self._publish_path(trajectory)

    def _publish_path(self, trajectory: JointTrajectory) -> None:
        header = conversions.make_header(self.get_clock().now().nanoseconds,
                                         self.backend.planning_frame)
        self._path_pub.publish(Marker(
            header=header, ns='planned_path', id=0, type=Marker.LINE_STRIP,
            action=Marker.ADD, pose=Pose(), scale=Vector3(x=0.005),
            color=ColorRGBA(r=0.1, g=0.6, b=1.0, a=1.0),
            points=[Point(x=x, y=y, z=z)
                    for x, y, z in self.backend.tcp_path(trajectory).tolist()]))

    def _send_gripper(self, opening: float) -> None:
        self._check_listened(self._gripper_pub)
        self._gripper_pub.publish(Float64MultiArray(data=[opening]))

    def _publish_status(self, status: PickStatus) -> None:
        stamped = replace(status, stamp_ns=self.get_clock().now().nanoseconds)
        self._status_pub.publish(conversions.pick_status_to_msg(stamped))

    # -- services ------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a pick_once or run request is still being served."""
        return self._worker is not None and self._worker.is_alive()

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response
                   ) -> SetBool.Response:
        response.success = True
        if not request.data:
            self.task.pause()
            response.message = 'paused: holding before the next motion'
        elif self.task.status.state != PickState.EMERGENCY_STOP:
            self.task.resume()
            response.message = 'enabled'
        elif self.busy:
            response.success = False
            response.message = 'emergency stop still ending the attempt; try again'
        else:
            self.task.reset()
            response.message = 'emergency stop cleared, enabled'
        return response

    def _start(self, job: str, response: Trigger.Response | SetBool.Response
               ) -> Trigger.Response | SetBool.Response:
        status = self.task.status
        if status.state == PickState.EMERGENCY_STOP:
            response.success, response.message = False, 'emergency stop: call ~/enable first'
        elif not status.enabled:
            response.success, response.message = False, 'disabled: call ~/enable first'
        elif self.busy:
            response.success, response.message = False, 'busy with a previous request'
        else:
            self._cancel.clear()
            target = self._pick_once if job == 'pick_once' else self._run
            self._worker = threading.Thread(target=target, name=job, daemon=True)
            self._worker.start()
            response.success, response.message = True, f'{job} started'
        return response

    def _on_pick_once(self, request: Trigger.Request, response: Trigger.Response
                      ) -> Trigger.Response:
        return self._start('pick_once', response)

    def _on_run(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            return self._start('run', response)
        self._cancel.set()  # read by the run between attempts and while waiting for grasps
        response.success = True
        response.message = ('stopping after the current attempt' if self.busy
                            else 'not running')
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._cancel.set()
        self.task.emergency_stop()
        response.success, response.message = True, 'emergency stop: arm halted'
        return response

    # -- worker thread -------------------------------------------------------------------------
    def _fresh_grasps(self) -> GraspCandidates:
        seen = self.inbox.wait(self.config.grasp_wait_timeout, self._cancel.is_set)
        if seen is None and self._cancel.is_set():
            self.get_logger().info('stopped while waiting for fresh grasps')
        elif seen is None:
            self.get_logger().info(f'no fresh grasps within {self.config.grasp_wait_timeout} s')
        elif not seen.grasps and seen.num_detections:
            self.get_logger().info(f'no feasible grasp for {seen.num_detections} detected '
                                   'objects')
        return seen or GraspCandidates()

    def _attempt_finished(self) -> None:
        self.inbox.scene_changed(self.get_clock().now().nanoseconds)

    def _pick_once(self) -> None:
        seen = self._fresh_grasps()
        result = self.task.pick_once(seen.grasps, seen.num_detections)
        self._attempt_finished()
        self.get_logger().info(f'pick: {result.outcome.name} {result.reason}'.rstrip())

    def _run(self) -> None:
        first = True

        def detect() -> GraspCandidates:
            # after its first, each look of a run comes from an image taken after it was asked
            # for: after the last attempt, or after the previous look (still_looks)
            nonlocal first
            if not first:
                self._attempt_finished()
            first = False
            return GraspCandidates() if self._cancel.is_set() else self._fresh_grasps()

        results = self.task.run(detect)
        self.get_logger().info(f'run ended after {len(results)} attempts: '
                               f'{[f"{r.outcome.name} {r.reason}".rstrip() for r in results]}')

    def destroy_node(self) -> None:
        """Halt the arm, end the worker and destroy the node."""
        if self.busy:
            self._on_stop(Trigger.Request(), Trigger.Response())
            self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run the controller node until shutdown."""
    spin_node(ControllerNode, args)
