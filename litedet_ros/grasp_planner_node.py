"""Grasp planner node: detections + aligned depth + camera_info in, ranked 6-DOF grasps out.

Subscribes (relative names, see :mod:`litedet_ros.topics`):

- ``detections`` (litedet_ros/DetectionArray), reliable, the newest only (keep last 1);
- ``camera/camera/aligned_depth_to_color/image_raw`` (sensor_msgs/Image, 16UC1 in units of
  ``1 / depth_image_units_divisor`` m, or 32FC1 in m) and its ``camera_info``, sensor-data QoS.

The three are matched by stamp within ``time_sync_slop`` (message_filters' approximate-time
policy is not available here: :class:`~litedet_ros.grasping.sync.ApproximateTimeSync`); each
input is kept for ``sync_queue_duration`` (stamps), so the depth of an image is still there when
its detections arrive late. Inputs whose stamp goes backwards, that arrive older than the last
matched set, or that find no partner within that time are dropped and counted (with a warning,
except depth and camera_info of images whose detections never came: the detector skips frames
when busy).

While the controller's ``pick_status`` (litedet_ros/PickStatus, reliable, transient local)
says a pick is under way, matched sets are skipped and counted (``picking``) unless
``plan_while_picking`` is set: the arm is in or near the camera's view and the controller only
takes grasps of images after its attempt ended; sets of images taken before that end are skipped
too. Without a controller every set is planned.

Publishes, for every matched set planned (also when no grasp was found):

- ``grasps`` (litedet_ros/GraspArray): ranked, poses in ``target_frame``, stamp of the image;
  ``num_detections`` = detections of the image plus the parts found in depth only
  (``undetected_parts``: looked for when no detected part has a grasp; their grasps have
  ``detection_index`` -1 and an ``undetected`` detection with their box), so an empty array
  tells an empty bin (0) from parts without a feasible grasp;
- ``grasps/poses`` (geometry_msgs/PoseArray): the same poses sorted by score;
- ``grasps/markers`` (visualization_msgs/MarkerArray): gripper shapes at the best
  ``marker_grasps`` grasps, a sphere at each object's point centroid and, when no object has
  a grasp, an arrow along each offered push (the best one opaque).

The last two are for people (RViz, a recording): they are built only while someone subscribes
(building them took 5-7 ms a look, on the cores the planning shares).

Per-stage latency of each planned set (``inputs``: decoding and converting them, ``plan``,
``publish``: building and sending the grasp array, ``total``: from the match to the last
message sent; ms: count, mean, p50, p99, max) is logged every ``stats_period`` with the drop
counts, and published as JSON on ``~/latency`` (std_msgs/String), as ``detector_node`` does.

Camera pose: tf2 at the image stamp when ``tf2_ros`` is importable and ``use_tf`` is set (never
the latest transform for an old image); otherwise the calibrated ``camera_pose`` parameter, or,
when it is unset, the images' frame in the robot description (``urdf/workcell.urdf.xacro``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
import json
import time

from geometry_msgs.msg import Point, Pose, PoseArray, Vector3
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, String
from visualization_msgs.msg import Marker, MarkerArray

from litedet_ros import conversions, topics
from litedet_ros.bringup.spin import follow_pick_status, spin_node
from litedet_ros.camera.types import CameraInfo as CameraModel
from litedet_ros.camera.types import PinholeCamera
from litedet_ros.description import CAMERA_FRAME
from litedet_ros.detection.types import Detections
from litedet_ros.errors import InvalidMessageError, LitedetError
from litedet_ros.grasping.camera import decode_depth
from litedet_ros.grasping.collision import gripper_boxes
from litedet_ros.grasping.node_config import DESCRIPTIONS, GraspNodeConfig
from litedet_ros.grasping.planner import GraspPlanner, PlanResult
from litedet_ros.grasping.sync import ApproximateTimeSync
from litedet_ros.msg import DetectionArray
from litedet_ros.stage_times import LatencyStats, summary_line

LOG_THROTTLE = 2.0  # s between repeated warnings of one kind
LATENCY_WARMUP = 5  # frames sent before latency_frames measures
READ_ONLY = ('target_frame', 'use_tf')
STREAMS = ('detections', 'depth', 'camera_info')
STAGES = ('inputs', 'plan', 'publish', 'total')


class TfCameraPose:
    """Camera pose from tf2 at the image stamp (only where ``tf2_ros`` is installed)."""

    def __init__(self, node: Node) -> None:
        import tf2_ros  # noqa: PLC0415 - optional: not installable from PyPI

        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)

    def lookup(self, target: str, source: str, stamp: rclpy.time.Time) -> np.ndarray:
        """Return ``float64[4, 4]`` target <- source at ``stamp`` (raises tf2 exceptions)."""
        transform = self.buffer.lookup_transform(target, source, stamp)
        t, q = transform.transform.translation, transform.transform.rotation
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = t.x, t.y, t.z
        pose.orientation = q
        return conversions.pose_to_matrix(pose)


class GraspPlannerNode(Node):
    """Plan grasps for every matched (detections, depth, camera_info) set."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('grasp_planner_node', **kwargs)
        defaults = GraspNodeConfig()
        for name in GraspNodeConfig.field_names():
            default = getattr(defaults, name)
            if default == ():  # unset by default: an empty list would be typed as bytes
                default = Parameter.Type.DOUBLE_ARRAY
            elif isinstance(default, tuple):
                default = list(default)
            self.declare_parameter(name, default, ParameterDescriptor(
                description=DESCRIPTIONS[name], read_only=name in READ_ONLY))
        self.config = replace(defaults, **{
            name: self._value(self.get_parameter_or(name))
            for name in GraspNodeConfig.field_names()})
        self.planner = GraspPlanner(self.config.planner_config())
        self.sync = ApproximateTimeSync(STREAMS, int(self.config.time_sync_slop * 1e9),
                                        int(self.config.sync_queue_duration * 1e9))
        #: Inputs and detections that produced no grasp, by reason.
        self.drops: Counter = Counter()
        self.stats = LatencyStats(STAGES)
        self.tf = None
        if self.config.use_tf:
            try:
                self.tf = TfCameraPose(self)
            except ImportError:
                self.get_logger().info('tf2_ros is not installed: camera pose without tf2')
        if self.tf is None and not self.config.camera_pose:
            try:  # expands the description once, before the first image
                position = self.config.camera_transform(CAMERA_FRAME)[:3, 3]
                self.get_logger().info(f'{CAMERA_FRAME} from the robot description at '
                                       f'{np.round(position, 4).tolist()} m')
            except LitedetError as error:
                self.get_logger().warning(f'no camera pose in the robot description: {error}')

        self._grasps_pub = self.create_publisher(conversions.GraspArrayMsg, topics.GRASPS, 10)
        self._poses_pub = self.create_publisher(PoseArray, topics.GRASP_POSES, 10)
        self._markers_pub = self.create_publisher(MarkerArray, topics.GRASP_MARKERS, 10)
        self._latency_pub = self.create_publisher(String, '~/latency', 10)
        # the newest detections only: a planner slower than the detector skips to the latest
        # image instead of working through a queue of older ones
        self.create_subscription(DetectionArray, topics.DETECTIONS,
                                 lambda msg: self._offer('detections', msg), 1)
        self.create_subscription(Image, topics.DEPTH_IMAGE,
                                 lambda msg: self._offer('depth', msg), qos_profile_sensor_data)
        self.create_subscription(CameraInfo, topics.DEPTH_INFO,
                                 lambda msg: self._offer('camera_info', msg),
                                 qos_profile_sensor_data)
        self.pick_gate = follow_pick_status(self)
        self._stats_timer = self.create_timer(self.config.stats_period, self._report)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @staticmethod
    def _value(parameter: Parameter) -> object:
        value = parameter.value  # None: a parameter without a value (camera_pose)
        return () if value is None else tuple(value) if isinstance(value, list) else value

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        try:
            config = replace(self.config, **{p.name: self._value(p) for p in parameters
                                             if p.name in DESCRIPTIONS})
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        old, self.config = self.config, config
        self.planner = GraspPlanner(config.planner_config())
        self.sync.slop_ns = int(config.time_sync_slop * 1e9)
        self.sync.queue_duration_ns = int(config.sync_queue_duration * 1e9)
        if old.stats_period != config.stats_period:
            self._stats_timer.cancel()
            self._stats_timer = self.create_timer(config.stats_period, self._report)
        return SetParametersResult(successful=True)

    def _count(self, reason: str, error: Exception | str, count: int = 1) -> None:
        self.drops[reason] += count
        self.get_logger().warning(f'{reason} ({self.drops[reason]} so far): {error}',
                                  throttle_duration_sec=LOG_THROTTLE)

    def _offer(self, stream: str, msg) -> None:
        before = Counter(self.sync.stream_drops)
        matched = self.sync.add(stream, conversions.stamp_to_ns(msg.header.stamp), msg)
        for (source, reason), count in (self.sync.stream_drops - before).items():
            if reason == 'unmatched' and source != 'detections':
                # the depth of an image without detections (the detector skipped it, or the
                # planner was busy and kept only the newest): expected, counted quietly
                self.drops[f'sync_{reason}'] += count
            else:
                self._count(f'sync_{reason}',
                            f'{count} {source} input(s) dropped by the time synchroniser', count)
        if matched is None:
            return
        stamp_ns = conversions.stamp_to_ns(matched['detections'].header.stamp)
        if not self.config.plan_while_picking and self.pick_gate.blocks(stamp_ns):
            self.drops['picking'] += 1  # by design: no warning
            return
        self._plan(matched['detections'], matched['depth'], matched['camera_info'])

    def _plan(self, detections_msg: DetectionArray, depth_msg: Image,
              info_msg: CameraInfo) -> None:
        start = time.perf_counter()
        try:
            if detections_msg.header.frame_id != depth_msg.header.frame_id:
                raise InvalidMessageError(
                    f'detections are in {detections_msg.header.frame_id!r} but the depth in '
                    f'{depth_msg.header.frame_id!r}: depth must be aligned to colour')
            detections = conversions.msg_to_detections(detections_msg)
            info = conversions.msg_to_camera_info(info_msg)
            camera = PinholeCamera.from_k(info.k, info.width, info.height)
            depth = decode_depth(conversions.image_to_numpy(depth_msg), depth_msg.encoding,
                                 self.config.depth_image_units_divisor)
            transform = self._camera_transform(depth_msg)
            decoded = time.perf_counter()
            result = self.planner.plan(depth, camera, detections, transform,
                                       self.config.target_frame)
        except LitedetError as error:
            self._count(type(error).__name__, error)
            self._publish(PlanResult((), (), Counter()), detections_msg)
            return
        planned = time.perf_counter()
        for reason, count in result.drops.items():
            self.drops[reason] += count
        sent = self._publish(result, detections_msg)
        self.stats.add(inputs=decoded - start, plan=planned - decoded, publish=sent - planned,
                       total=time.perf_counter() - start)

    def _camera_transform(self, depth_msg: Image) -> np.ndarray:
        if self.tf is None:
            return self.config.camera_transform(depth_msg.header.frame_id)
        try:
            return self.tf.lookup(self.config.target_frame, depth_msg.header.frame_id,
                                  rclpy.time.Time.from_msg(depth_msg.header.stamp))
        except Exception as error:  # tf2 raises its own exception family
            raise LitedetError(f'no transform at the image stamp: {error}') from error

    def _publish(self, result: PlanResult, detections_msg: DetectionArray) -> float:
        """Send the grasp array, then the poses and markers; return when the array was sent."""
        grasps = list(result.grasps)
        msg = conversions.grasps_to_msg(grasps, detections_msg,
                                        conversions.stamp_to_ns(detections_msg.header.stamp),
                                        self.config.target_frame, result.pushes,
                                        len(result.undetected))
        self._grasps_pub.publish(msg)
        sent = time.perf_counter()
        if self._poses_pub.get_subscription_count():
            self._poses_pub.publish(PoseArray(
                header=msg.header, poses=[conversions.matrix_to_pose(g.pose) for g in grasps]))
        if self._markers_pub.get_subscription_count():
            self._markers_pub.publish(self._markers(result, msg.header))
        return sent

    def _report(self) -> None:
        summary = self.stats.summary()
        self._latency_pub.publish(String(data=json.dumps(
            {'latency_ms': summary, 'drops': dict(self.drops)})))
        if summary:
            self.get_logger().info(summary_line(summary) + f'; drops {dict(self.drops)}')

    def _markers(self, result: PlanResult, header) -> MarkerArray:
        markers = [Marker(header=header, action=Marker.DELETEALL)]
        gripper = self.planner.config.gripper
        for rank, grasp in enumerate(result.grasps[:self.config.marker_grasps]):
            centres, half = gripper_boxes(gripper, grasp.width)
            # the parts at the grasp pose, without the swept approach
            half = half.copy()
            half[:, 2] -= gripper.approach_distance / 2
            centres = centres.copy()
            centres[:, 2] += gripper.approach_distance / 2
            shade = 1.0 - 0.7 * rank / max(self.config.marker_grasps, 1)
            for part, (centre, extent) in enumerate(zip(centres, half)):
                pose = grasp.pose.copy()
                pose[:3, 3] = grasp.pose[:3, :3] @ centre + grasp.pose[:3, 3]
                markers.append(Marker(
                    header=header, ns='grasps', id=3 * rank + part, type=Marker.CUBE,
                    pose=conversions.matrix_to_pose(pose),
                    scale=Vector3(x=2 * extent[0], y=2 * extent[1], z=2 * extent[2]),
                    color=ColorRGBA(r=0.1, g=shade, b=0.2, a=0.6)))
        for index, estimate in enumerate(result.objects):
            if estimate is None:
                continue
            centroid = np.eye(4)
            centroid[:3, 3] = estimate.centroid
            markers.append(Marker(
                header=header, ns='objects', id=index, type=Marker.SPHERE,
                pose=conversions.matrix_to_pose(centroid),
                scale=Vector3(x=0.015, y=0.015, z=0.015),
                color=ColorRGBA(r=1.0, g=0.6, b=0.0, a=0.9)))
        for rank, push in enumerate(result.pushes):  # the finger tips' path along each push
            tip = push.start[:3, 2] * self.planner.config.gripper.tcp_to_tip
            markers.append(Marker(
                header=header, ns='push', id=rank, type=Marker.ARROW,
                points=[Point(x=float(x), y=float(y), z=float(z))
                        for x, y, z in (push.start[:3, 3] + tip, push.end[:3, 3] + tip)],
                scale=Vector3(x=0.01, y=0.02, z=0.02),
                color=ColorRGBA(r=0.9, g=0.1, b=0.9, a=0.9 if rank == 0 else 0.3)))
        return MarkerArray(markers=markers)


def frame_to_grasps_latency(depth: np.ndarray, camera: PinholeCamera, detections: Detections,
                            parameters: dict[str, object], repeats: int, domain_id: int,
                            timeout: float = 5.0) -> np.ndarray:
    """Time the node from a frame's last input message to its ``GraspArray``, over real DDS.

    A client node in the same process publishes camera_info, detections and a 16UC1 depth image
    (mm) of one frame, the depth last; the latency runs from just before that publish to the
    client receiving the grasps (both nodes on one single-threaded executor).

    Args:
        depth: ``float32[H, W]`` aligned depth, metres, NaN where invalid.
        camera: intrinsics of ``depth``.
        detections: boxes of the frame (``frame_id`` set to the optical frame).
        parameters: node parameter overrides (camera pose, bin, ...).
        repeats: frames measured (after ``LATENCY_WARMUP`` frames).
        domain_id: ROS domain of the two nodes (pick one no other process uses).
        timeout: longest wait for one frame's grasps, s.

    Returns:
        ``float64[repeats]`` latencies, milliseconds.

    Raises:
        TimeoutError: the node did not answer a frame in time.
    """
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain_id)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    try:
        node = GraspPlannerNode(context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in parameters.items()])
        client = rclpy.create_node('grasp_latency_client', context=context)
        arrivals: list[float] = []
        client.create_subscription(conversions.GraspArrayMsg, topics.GRASPS,
                                   lambda _: arrivals.append(time.perf_counter()), 10)
        info_pub = client.create_publisher(CameraInfo, topics.DEPTH_INFO,
                                           qos_profile_sensor_data)
        detections_pub = client.create_publisher(DetectionArray, topics.DETECTIONS, 10)
        depth_pub = client.create_publisher(Image, topics.DEPTH_IMAGE, qos_profile_sensor_data)
        executor.add_node(node)
        executor.add_node(client)

        def spin_until(predicate) -> None:
            deadline = time.monotonic() + timeout
            while not predicate():
                if time.monotonic() > deadline:
                    raise TimeoutError('the grasp planner node did not answer in time')
                executor.spin_once(timeout_sec=0.01)

        spin_until(lambda: min(info_pub.get_subscription_count(),
                               detections_pub.get_subscription_count(),
                               depth_pub.get_subscription_count(),
                               node.count_subscribers(topics.GRASPS)) > 0)
        k = [[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]]
        model = CameraModel(camera.width, camera.height, k, np.zeros(5),
                            frame_id=detections.frame_id)
        pixels = np.nan_to_num(depth * 1000.0).round().astype(np.uint16)
        latencies = []
        for frame in range(LATENCY_WARMUP + repeats):
            stamp_ns = (frame + 1) * 100_000_000
            info = conversions.camera_info_to_msg(model, stamp_ns)
            boxes = conversions.detections_to_msg(replace(detections, stamp_ns=stamp_ns))
            image = conversions.numpy_to_image(pixels, '16UC1', stamp_ns, detections.frame_id)
            info_pub.publish(info)
            detections_pub.publish(boxes)
            spin_until(lambda stamp=stamp_ns: node.sync.latest_stamp('detections')
                       == node.sync.latest_stamp('camera_info') == stamp)
            answered = len(arrivals)
            start = time.perf_counter()
            depth_pub.publish(image)
            spin_until(lambda count=answered: len(arrivals) > count)
            if frame >= LATENCY_WARMUP:
                latencies.append((arrivals[-1] - start) * 1e3)
        return np.array(latencies)
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def main(args: list[str] | None = None) -> None:
    """Run the grasp planner node until shutdown."""
    spin_node(GraspPlannerNode, args)


if __name__ == '__main__':
    main()
