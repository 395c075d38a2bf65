"""detector_node: colour images in, ``litedet_ros/DetectionArray`` out.

Subscribes ``camera/camera/color/image_raw`` (rgb8, bgr8 or mono8) with sensor-data QoS and a
depth-1 queue, so a slow model always works on the newest frame; frames older than
``max_frame_age`` on arrival, or not newer than the last one, are dropped and counted.
Publishes ``detections`` (header of the source image, boxes in its pixels) and
``detections/image`` (the image with boxes drawn, only while someone subscribes). While some node
publishes ``grasps``, one image is in flight: after publishing an image's detections the node
skips images (counted, ``awaiting_grasps``) until the grasps of that image or a later one arrive
or ``await_grasps`` wall seconds pass (counted as ``unanswered``): the planner takes only the
newest detections, and detecting the images it would never plan slows the planning. ``~/enable``
(std_srvs/SetBool) pauses and resumes detection. Images taken while the controller's
``pick_status`` says a pick is under way, or before it ended, are skipped and counted
(``picking``) unless ``detect_while_picking`` is set (see
:class:`litedet_ros.motion.status.PickGate`).
Per-stage latency (preprocess, inference, postprocess, total, ms: count, mean, p50, p99, max)
is logged every ``stats_period`` and published as JSON on ``~/latency`` (std_msgs/String;
diagnostic_msgs is not installable here).

A model that cannot be loaded (missing, corrupt, labels or anchors not matching) is reported at
start; the node keeps running, counts the frames it cannot serve, and loads the model again when
a model parameter is set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
import json
from pathlib import Path
import time

import cv2
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool

from litedet_ros import conversions, topics
from litedet_ros.bringup.spin import follow_pick_status, spin_node
from litedet_ros.detection.detector import Detector
from litedet_ros.detection.node_config import DESCRIPTIONS, STAGES, DetectorNodeConfig
from litedet_ros.detection.types import Detections
from litedet_ros.errors import LitedetError
from litedet_ros.stage_times import LatencyStats, summary_line

LOG_THROTTLE = 2.0  # s between repeated warnings of one kind
IMAGE_QOS = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                       durability=qos_profile_sensor_data.durability,
                       history=qos_profile_sensor_data.history)


def draw_detections(image: np.ndarray, encoding: str, detections: Detections) -> np.ndarray:
    """Return a copy of an image with boxes, labels and scores drawn, in the same encoding.

    Args:
        image: ``uint8[H, W, 3]`` rgb8/bgr8 or ``uint8[H, W]`` mono8 pixels.
        encoding: ``rgb8``, ``bgr8`` or ``mono8``.
        detections: boxes in ``image`` pixels.
    """
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if encoding == 'mono8' else image.copy()
    colour = (0, 255, 0)
    for (x1, y1, x2, y2), score, label in zip(detections.boxes, detections.scores,
                                              detections.labels):
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
        cv2.putText(canvas, f'{label} {score:.2f}', (int(x1), max(int(y1) - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY) if encoding == 'mono8' else canvas


class DetectorNode(Node):
    """Run the detector on every fresh colour image."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('detector_node', **kwargs)
        defaults = DetectorNodeConfig()
        for name in DetectorNodeConfig.field_names():
            self.declare_parameter(name, getattr(defaults, name),
                                   ParameterDescriptor(description=DESCRIPTIONS[name]))
        #: Frames not turned into detections, by reason.
        self.drops: Counter = Counter()
        self.stats = LatencyStats(STAGES)
        self.enabled = True
        #: Detections whose grasps did not come within ``await_grasps``.
        self.unanswered = 0
        self._in_flight: tuple[int, float] | None = None  # (image stamp ns, monotonic s sent)
        self.detector: Detector | None = None
        self._last_stamp_ns = -1
        try:
            self.config = DetectorNodeConfig(**{
                name: self.get_parameter(name).value
                for name in DetectorNodeConfig.field_names()})
        except (ValueError, TypeError) as error:
            self.get_logger().error(f'invalid parameters, using defaults: {error}')
            self.config = defaults
        self._load_model()
        self._detections_pub = self.create_publisher(
            conversions.DetectionArrayMsg, topics.DETECTIONS, 10)
        self._debug_pub = self.create_publisher(Image, topics.DETECTIONS_IMAGE,
                                                qos_profile_sensor_data)
        self._latency_pub = self.create_publisher(String, '~/latency', 10)
        self.create_subscription(Image, topics.COLOR_IMAGE, self._on_image, IMAGE_QOS)
        self.create_subscription(conversions.GraspArrayMsg, topics.GRASPS, self._on_grasps, 10)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.pick_gate = follow_pick_status(self)
        self._stats_timer = self.create_timer(self.config.stats_period, self._report)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _load_model(self) -> None:
        config = self.config
        try:
            self.detector = config.load_detector()
        except (LitedetError, ImportError) as error:
            self.detector = None
            self.get_logger().error(
                f'cannot load the {config.backend} model {config.model_path()}: {error}; '
                'serving no detections until a model parameter is fixed')
            return
        self.get_logger().info(
            f'loaded {config.model_path()} ({config.backend}, {len(self.detector.labels)} '
            f'classes: {", ".join(self.detector.labels)})')

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        try:
            config = replace(self.config, **{p.name: p.value for p in parameters
                                             if p.name in DESCRIPTIONS})
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        old, self.config = self.config, config
        if old.reloads_model(config) or self.detector is None:
            self._load_model()
        else:
            self.detector.config = config.postprocess_config()
            self.detector.clahe = config.clahe
        if old.stats_period != config.stats_period:
            self._stats_timer.cancel()
            self._stats_timer = self.create_timer(config.stats_period, self._report)
        return SetParametersResult(successful=True)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        self.enabled = bool(request.data)
        response.success = True
        response.message = 'detection enabled' if self.enabled else 'detection paused'
        return response

    def _drop(self, reason: str, error: Exception | str) -> None:
        self.drops[reason] += 1
        self.get_logger().warning(f'frame dropped, {reason} ({self.drops[reason]} so far): '
                                  f'{error}', throttle_duration_sec=LOG_THROTTLE)

    def _on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        if not self.enabled:
            return
        if self.detector is None:
            self._drop('no_model', 'no model is loaded')
            return
        stamp_ns = conversions.stamp_to_ns(msg.header.stamp)
        if not self.config.detect_while_picking and self.pick_gate.blocks(stamp_ns):
            self.drops['picking'] += 1  # by design: no warning
            return
        if self._awaiting_grasps():
            self.drops['awaiting_grasps'] += 1  # by design: no warning
            return
        age = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-9
        if self.config.max_frame_age and age > self.config.max_frame_age:
            self._drop('stale', f'image is {age:.3f} s old')
            return
        if stamp_ns <= self._last_stamp_ns:
            self._drop('out_of_order', 'image stamp is not newer than the previous one')
            return
        try:
            pixels = conversions.image_to_numpy(msg)
            detections, times = self.detector.detect(pixels, msg.encoding, stamp_ns,
                                                     msg.header.frame_id)
        except LitedetError as error:
            self._drop(type(error).__name__, error)
            return
        self._last_stamp_ns = stamp_ns
        self._detections_pub.publish(conversions.detections_to_msg(detections))
        if self.config.await_grasps:
            self._in_flight = (stamp_ns, time.monotonic())
        self.stats.add(preprocess=times.preprocess, inference=times.inference,
                       postprocess=times.postprocess, total=time.perf_counter() - start)
        if self.config.publish_debug_image and self._debug_pub.get_subscription_count():
            self._debug_pub.publish(conversions.numpy_to_image(
                draw_detections(pixels, msg.encoding, detections), msg.encoding, stamp_ns,
                msg.header.frame_id))

    def _awaiting_grasps(self) -> bool:
        """Whether the last detections are still in flight (see the module docstring)."""
        if self._in_flight is None:
            return False
        if self.config.await_grasps and self.count_publishers(topics.GRASPS):
            if time.monotonic() - self._in_flight[1] < self.config.await_grasps:
                return True
            self.unanswered += 1
        self._in_flight = None
        return False

    def _on_grasps(self, msg: conversions.GraspArrayMsg) -> None:
        if self._in_flight and conversions.stamp_to_ns(msg.header.stamp) >= self._in_flight[0]:
            self._in_flight = None

    def _report(self) -> None:
        summary = self.stats.summary()
        report = {'latency_ms': summary, 'drops': dict(self.drops), 'unanswered': self.unanswered,
                  'enabled': self.enabled,
                  'model': str(self.config.model_path()) if self.detector else None}
        self._latency_pub.publish(String(data=json.dumps(report)))
        if summary:
            self.get_logger().info(summary_line(summary) + f'; drops {dict(self.drops)}, '
                                   f'unanswered {self.unanswered}')


def measure_end_to_end(models: dict[str, Path], frames: list[np.ndarray], count: int,
                       threads: int = 2, timeout: float = 5.0) -> dict[str, np.ndarray]:
    """End-to-end latency of ``detector_node`` for several models, measured in one process.

    One node per model (namespace = variant name) and a driver node share a single-threaded
    executor. For each frame and each variant in turn the driver publishes an rgb8 image
    (stamped now) and spins until the node's detections for that stamp arrive: the time covers
    DDS transport both ways, conversion, preprocessing, inference, decoding and publishing.

    Args:
        models: variant name -> model file.
        frames: ``uint8[H, W, 3]`` RGB images, used in turn.
        count: measured frames per variant (after 5 warm-up frames).
        threads: inference threads of each node.
        timeout: seconds to wait for one frame's detections.

    Returns:
        Variant name -> ``float[count]`` latencies, ms.

    Raises:
        RuntimeError: a node loaded no model, or detections did not arrive in time.
    """
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        driver = Node('detector_bench_driver', context=context)
        executor.add_node(driver)
        received: dict[str, int] = {}
        publishers = {}
        for name, path in models.items():
            node = DetectorNode(context=context, namespace=f'/{name}', parameter_overrides=[
                Parameter('model_file_path', value=str(path)),
                Parameter('num_threads', value=threads)])
            if node.detector is None:
                raise RuntimeError(f'detector_node could not load {path}')
            executor.add_node(node)
            publishers[name] = driver.create_publisher(
                Image, f'/{name}/{topics.COLOR_IMAGE}', IMAGE_QOS)
            driver.create_subscription(
                conversions.DetectionArrayMsg, f'/{name}/{topics.DETECTIONS}',
                lambda msg, name=name: received.__setitem__(
                    name, conversions.stamp_to_ns(msg.header.stamp)), 10)
        messages = [conversions.numpy_to_image(frame, 'rgb8', 0, 'camera_color_optical_frame')
                    for frame in frames]
        latencies = {name: np.empty(count) for name in models}
        for i in range(count + 5):
            for name, publisher in publishers.items():
                msg = messages[i % len(messages)]
                deadline = time.monotonic() + timeout
                while True:  # re-publish until discovery is complete (first frames only)
                    stamp_ns = driver.get_clock().now().nanoseconds
                    msg.header.stamp = conversions.ns_to_stamp(stamp_ns)
                    start = time.perf_counter()
                    publisher.publish(msg)
                    resend = time.monotonic() + (0.5 if i < 5 else timeout)
                    while received.get(name) != stamp_ns and time.monotonic() < resend:
                        executor.spin_once(timeout_sec=0.001)
                    if received.get(name) == stamp_ns:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f'no detections from {name} within {timeout} s')
                if i >= 5:
                    latencies[name][i - 5] = 1e3 * (time.perf_counter() - start)
        return latencies
    finally:
        for node in list(executor.get_nodes()):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        context.try_shutdown()


def main(args: list[str] | None = None) -> None:
    """Run the detector node until shutdown."""
    spin_node(DetectorNode, args)


if __name__ == '__main__':
    main()
