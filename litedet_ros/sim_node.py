"""Simulated workcell node: the MuJoCo cell speaking ROS 2 like a Gazebo + ros2_control setup.

Publishes (relative names; images with sensor-data QoS, the rest reliable):

- ``camera/camera/color/image_raw`` (rgb8) and ``camera/camera/color/camera_info``
- ``camera/camera/aligned_depth_to_color/image_raw`` (16UC1 mm, or 32FC1 m) and ``.../camera_info``
  -- all four with the same stamp (sim time of the render) and frame id
  ``camera_color_optical_frame``
- ``joint_states`` (sensor_msgs/JointState: the six arm joints and ``finger_joint``, the pad
  distance from the centre line in m, i.e. half the opening)
- ``/clock`` (rosgraph_msgs/Clock): the sim time; run the other nodes with ``use_sim_time``
- ``sim/objects`` (litedet_ros/ObjectStateArray): ground-truth object poses in ``world``, where
  each object is (bin, hand, placed, dropped), and the count of robot contacts with the fixed
  cell (collisions). For evaluation only, never for control.

Accepts:

- ``joint_trajectory_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory), as a
  ros2_control joint_trajectory_controller: all six arm joints, any order; starts on receipt and
  replaces the running one; an empty trajectory stops and holds. Refused (logged, counted, no
  motion): unknown joints, NaN/inf, positions or velocities beyond limits, non-increasing times,
  first point further than ``start_tolerance`` from the current state.
- ``gripper_controller/commands`` (std_msgs/Float64MultiArray, forward_command_controller
  style): ``data = [opening in m]`` (0 closes with the grip-force limit; 0.088 is fully open).
- service ``sim/reset_bin`` (litedet_ros/ResetBin): a new seeded, settled bin of 0-25 objects;
  the arm goes home, the gripper opens; sim time keeps increasing.

All MuJoCo work (physics, rendering: the EGL context belongs to one thread) happens in one
simulation thread; callbacks hand it requests and wait for the result.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from litedet_ros import conversions, topics
from litedet_ros.bringup.spin import spin_node
from litedet_ros.camera.types import CameraInfo
from litedet_ros.description import (
    ARM_JOINTS,
    CAMERA_FRAME,
    GRIPPER_JOINT,
    default_finger_length,
)
from litedet_ros.errors import LitedetError
from litedet_ros.msg import ObjectStateArray
from litedet_ros.sim.camera import encode_depth
from litedet_ros.sim.node_config import SimNodeConfig
from litedet_ros.sim.workcell import (
    MAX_OBJECTS,
    PhysicsDivergedError,
    Workcell,
    check_scene_request,
)
from litedet_ros.srv import ResetBin

WORLD_FRAME = 'world'
CLOCK_PERIOD = 0.01  # sim time between /clock messages and between command pick-ups, s
# Wall time the paced simulation may fall behind before it stops trying to catch up. Catching
# up runs sim time faster than real time, so everything that reacts on the wall clock (a
# service call, a controller's stop) would appear slower in sim time; a slow machine gets a
# sim that runs slower than real time instead, as Gazebo's does.
MAX_LAG = 0.05


def _float_range(description: str, low: float, high: float) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=True,
                               floating_point_range=[FloatingPointRange(from_value=low,
                                                                        to_value=high)])


def _int_range(description: str, low: int, high: int) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=True,
                               integer_range=[IntegerRange(from_value=low, to_value=high)])


PARAMETERS = {
    'seed': (0, _int_range('Seed of the first bin scene.', 0, 2 ** 31 - 1)),
    'num_objects': (10, _int_range('Objects in the first bin scene.', 0, MAX_OBJECTS)),
    'real_time_factor': (1.0, _float_range('Sim seconds per wall second; 0 = as fast as '
                                           'possible.', 0.0, 1000.0)),
    'camera_rate': (15.0, _float_range('Camera frames per sim second.', 0.1, 90.0)),
    'joint_state_rate': (100.0, _float_range('joint_states per sim second.', 1.0, 1000.0)),
    'objects_rate': (10.0, _float_range('sim/objects per sim second.', 0.1, 100.0)),
    'depth_encoding': ('16UC1', ParameterDescriptor(
        description='Depth encoding: 16UC1 (mm, as realsense-ros) or 32FC1 (m).',
        read_only=True)),
    'depth_noise': (True, ParameterDescriptor(
        description='Apply the D435 depth artefact model (noise, holes at edges and grazing '
                    'angles); false publishes ideal depth.', read_only=True)),
    'start_tolerance': (0.05, _float_range("Largest distance of a trajectory's first point "
                                           'from the current state, rad.', 0.0, 1.0)),
    'finger_length': (default_finger_length(), _float_range(
        "Length of the gripper's fingers in the cell (workcell xacro finger_length), m.",
        0.03, 0.2)),
}


class _Request:
    """A callback's request to the simulation thread, with its outcome."""

    def __init__(self, kind: str, payload: object) -> None:
        self.kind = kind
        self.payload = payload
        self.error: str = ''
        self.done = threading.Event()


class SimNode(Node):
    """Run the simulated workcell and expose it through ROS 2 topics and services."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('sim_node', **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.config = SimNodeConfig(**{name: self.get_parameter(name).value
                                       for name in PARAMETERS})
        sensor = qos_profile_sensor_data
        self._color_pub = self.create_publisher(Image, topics.COLOR_IMAGE, sensor)
        self._color_info_pub = self.create_publisher(CameraInfoMsg, topics.COLOR_INFO, sensor)
        self._depth_pub = self.create_publisher(Image, topics.DEPTH_IMAGE, sensor)
        self._depth_info_pub = self.create_publisher(CameraInfoMsg, topics.DEPTH_INFO, sensor)
        self._joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, 10)
        self._clock_pub = self.create_publisher(Clock, '/clock', 10)
        self._objects_pub = self.create_publisher(ObjectStateArray, topics.SIM_OBJECTS, 10)
        self.create_subscription(JointTrajectoryMsg, topics.JOINT_TRAJECTORY,
                                 self._on_trajectory, 10)
        self.create_subscription(Float64MultiArray, topics.GRIPPER_COMMAND, self._on_gripper, 10)
        self.create_service(ResetBin, topics.SIM_RESET_BIN, self._on_reset)

        #: Counters of refused input and the latest reason.
        self.rejected_trajectories = 0
        self.rejected_gripper_commands = 0
        self.failed_resets = 0
        self.last_error = ''
        self.frames_published = 0
        self.publish_errors = 0
        self.physics_errors = 0
        #: Why the simulation thread ended on an unexpected error ('' while it runs): the node
        #: then publishes nothing, and :func:`main` exits with status 1 for the supervisor.
        self.failure = ''
        self._scene = (self.config.seed, self.config.num_objects)  # the scene last settled
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._startup_error = ''
        self._thread = threading.Thread(target=self._run, name='sim', daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error:
            raise LitedetError(self._startup_error)

    # ------------------------------------------------------------------ callbacks
    def _submit(self, kind: str, payload: object, timeout: float = 60.0) -> str:
        request = _Request(kind, payload)
        self._requests.put(request)
        if self.failure:  # set before the failed thread's last drain: no request is left waiting
            self._refuse_pending()
        if not request.done.wait(timeout):
            return f'{kind} not processed within {timeout} s'
        return request.error

    def _refuse(self, what: str, error: str) -> None:
        self.last_error = f'{what}: {error}'
        self.get_logger().warning(f'refused {what}: {error}', throttle_duration_sec=2.0)

    def _on_trajectory(self, msg: JointTrajectoryMsg) -> None:
        try:
            trajectory = conversions.msg_to_joint_trajectory(msg)
        except LitedetError as error:
            self.rejected_trajectories += 1
            self._refuse('trajectory', str(error))
            return
        error = self._submit('trajectory', trajectory)
        if error:
            self.rejected_trajectories += 1
            self._refuse('trajectory', error)

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        data = list(msg.data)
        error = (f'expected data = [opening in m], got {len(data)} values' if len(data) != 1
                 else self._submit('gripper', data[0]))
        if error:
            self.rejected_gripper_commands += 1
            self._refuse('gripper command', error)

    def _on_reset(self, request: ResetBin.Request, response: ResetBin.Response
                  ) -> ResetBin.Response:
        error = self._submit('reset', (int(request.seed), int(request.num_objects)))
        response.success = not error
        if error:
            self.failed_resets += 1
            self._refuse('reset_bin', error)
            response.message = error
        else:
            response.message = (f'bin refilled: seed {request.seed}, '
                                f'{request.num_objects} objects settled')
        return response

    # ------------------------------------------------------------------ simulation thread
    def _run(self) -> None:
        config = self.config
        try:
            cell = Workcell(config.workcell_config(), seed=config.seed,
                            num_objects=config.num_objects)
        except Exception as error:  # the constructor waits for _ready: it must always be set
            self._startup_error = str(error) if isinstance(error, LitedetError) else (
                f'building the workcell failed: {type(error).__name__}: {error}\n'
                f'{traceback.format_exc()}')
            self._ready.set()
            return
        self._ready.set()
        self._camera_info = self._camera_info_for(cell)
        chunk = max(1, int(round(CLOCK_PERIOD / cell.model.opt.timestep)))
        due = {'camera': cell.time, 'joints': cell.time, 'objects': cell.time}
        periods = {'camera': 1 / config.camera_rate, 'joints': 1 / config.joint_state_rate,
                   'objects': 1 / config.objects_rate}
        wall_start, sim_start = time.monotonic(), cell.time
        diverged = False  # the last chunk's physics diverged (the cell went back before it)
        try:
            while not self._stop.is_set() and self.context.ok():
                if self._serve_requests(cell):
                    due = dict.fromkeys(due, cell.time)
                    wall_start, sim_start = time.monotonic(), cell.time
                    diverged = False
                try:
                    cell.step(chunk)
                    diverged = False
                except PhysicsDivergedError as error:
                    self.physics_errors += 1
                    if diverged:
                        self.get_logger().error(
                            f'{error}; it diverged in the chunk before too: reloading the '
                            f'scene (seed {self._scene[0]}, {self._scene[1]} objects)')
                        cell.reset(*self._scene)
                        due = dict.fromkeys(due, cell.time)
                        wall_start, sim_start = time.monotonic(), cell.time
                        diverged = False
                    else:
                        self.get_logger().error(str(error))
                        diverged = True
                now = cell.time
                stamp_ns = int(round(now * conversions.NS_PER_S))
                self._clock_pub.publish(Clock(clock=conversions.ns_to_stamp(stamp_ns)))
                for name, publish in (('joints', self._publish_joints),
                                      ('objects', self._publish_objects),
                                      ('camera', self._publish_camera)):
                    if now >= due[name] - 1e-9:
                        try:
                            publish(cell, stamp_ns)
                        except LitedetError as error:
                            self.publish_errors += 1
                            self._refuse(f'publishing {name}', str(error))
                        due[name] += periods[name] * max(1, int((now - due[name]) //
                                                                periods[name]) + 1)
                if config.real_time_factor > 0:
                    ahead = (now - sim_start) / config.real_time_factor - (
                        time.monotonic() - wall_start)
                    if ahead > 0:
                        self._stop.wait(ahead)
                    elif ahead < -MAX_LAG:
                        wall_start, sim_start = time.monotonic(), now
        except Exception as error:
            # Ctrl-C shutting the context down between the check above and a publish is a
            # normal end; anything else stops the simulation, which must not pass unnoticed
            if self.context.ok():
                self.failure = f'{type(error).__name__}: {error}'
                self.get_logger().fatal(f'simulation thread failed, no more sim topics:\n'
                                        f'{traceback.format_exc()}')
                self._refuse_pending()
        finally:
            cell.close()

    def _refuse_pending(self) -> None:
        """Answer the requests queued for the failed simulation thread (from either thread)."""
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            request.error = f'the simulation has stopped ({self.failure})'
            request.done.set()

    def _serve_requests(self, cell: Workcell) -> bool:
        """Apply pending requests; return whether the scene was replaced."""
        reset = False
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return reset
            try:
                if request.kind == 'trajectory':
                    if len(request.payload.times) == 0:
                        cell.stop()  # joint_trajectory_controller: empty = stop and hold
                    else:
                        cell.execute(request.payload)
                elif request.kind == 'gripper':
                    cell.command_gripper(float(request.payload))
                else:
                    seed, count = request.payload
                    check_scene_request(seed, count)
                    cell.reset(seed, count)
                    self._scene = (seed, count)
                    reset = True
            except LitedetError as error:
                request.error = str(error)
            request.done.set()

    def _camera_info_for(self, cell: Workcell) -> CameraInfo:
        return CameraInfo.from_pinhole(cell.config.intrinsics, CAMERA_FRAME)

    def _publish_joints(self, cell: Workcell, stamp_ns: int) -> None:
        msg = JointState(header=conversions.make_header(stamp_ns, ''),
                         name=[*ARM_JOINTS, GRIPPER_JOINT])
        msg.position = [*map(float, cell.arm_positions()), cell.gripper_width() / 2]
        msg.velocity = [*map(float, cell.arm_velocities()), 0.0]
        self._joint_pub.publish(msg)

    def _publish_objects(self, cell: Workcell, stamp_ns: int) -> None:
        self._objects_pub.publish(conversions.object_states_to_msg(
            cell.object_states(), stamp_ns, WORLD_FRAME, cell.robot_collisions))

    def _publish_camera(self, cell: Workcell, stamp_ns: int) -> None:
        rgb = cell.render_rgb()
        depth = encode_depth(cell.render_depth(), self.config.depth_encoding)
        info = conversions.camera_info_to_msg(self._camera_info, stamp_ns)
        self._color_pub.publish(conversions.numpy_to_image(rgb, 'rgb8', stamp_ns, CAMERA_FRAME))
        self._color_info_pub.publish(info)
        self._depth_pub.publish(conversions.numpy_to_image(depth, self.config.depth_encoding,
                                                           stamp_ns, CAMERA_FRAME))
        self._depth_info_pub.publish(info)
        self.frames_published += 1

    def destroy_node(self) -> None:
        """Stop the simulation thread and destroy the node."""
        self._stop.set()
        self._thread.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run the sim node until shutdown; exit with status 1 if its simulation thread fails."""
    failure = ''

    def failed(node: SimNode) -> bool:
        nonlocal failure
        failure = node.failure
        return bool(failure)

    spin_node(SimNode, args, until=failed)
    if failure:
        sys.exit(1)
