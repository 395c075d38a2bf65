"""Latency probe: per-stage latency of the running perception graph, written as JSON, then exit.

Listens (raw, never deserializing images) to the colour image, detections and grasps for
``warmup`` + ``duration`` wall seconds and measures, after the warm-up, the latency of each
stage from the receive times of the messages of one image stamp
(:mod:`litedet_ros.bringup.latency`), the rate of each topic, and the detector's own latest
report (``detector_node/latency``). Writes ``output_file``::

    {"duration_s", "latency": {stage: {"n", "p50_ms", "p99_ms", "mean_ms"}},
     "rate_hz": {topic: messages per second}, "detector_report": {...} | null}

``litedet-ros bench perception`` starts it beside camera_node (playing a recording),
detector_node and grasp_planner_node.
"""

from __future__ import annotations

import json
from pathlib import Path
import time

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from litedet_ros import topics
from litedet_ros.bringup.latency import PIPELINE_TOPICS, StageLatency, header_stamp_ns
from litedet_ros.bringup.report import percentiles_ms
from litedet_ros.bringup.spin import declare_read_only, spin_node
from litedet_ros.errors import LitedetError
from litedet_ros.msg import DetectionArray, GraspArray

PARAMETERS = {
    'warmup': (5.0, 'Wall seconds before measuring (model loading, caches), s.'),
    'duration': (30.0, 'Wall seconds of measurement, s.'),
    'output_file': ('latency.json', 'Where the figures go (JSON).'),
}
DETECTOR_REPORT = 'detector_node/latency'


class LatencyProbeNode(Node):
    """Measure the pipeline's stage latencies for a while; write them; then be done."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('latency_probe_node', **kwargs)
        value = declare_read_only(self, PARAMETERS)
        self.warmup, self.duration = float(value['warmup']), float(value['duration'])
        self.output_file = Path(value['output_file'])
        if self.warmup < 0 or self.duration <= 0:
            raise LitedetError('need warmup >= 0 and duration > 0')
        self.latency = StageLatency()
        self.counts = dict.fromkeys(PIPELINE_TOPICS, 0)
        self.detector_report: dict | None = None
        self.done = False
        start = time.monotonic()
        self._measure_from = start + self.warmup
        self._measure_until = self._measure_from + self.duration
        for topic, msg_type, qos in ((topics.COLOR_IMAGE, Image, qos_profile_sensor_data),
                                     (topics.DETECTIONS, DetectionArray, 10),
                                     (topics.GRASPS, GraspArray, 10)):
            self.create_subscription(msg_type, topic,
                                     lambda data, info, topic=topic: self._on_message(
                                         topic, data, info['received_timestamp']),
                                     qos, raw=True)
        self.create_subscription(String, DETECTOR_REPORT, self._on_detector_report, 10)
        self.create_timer(0.2, self._check_end)

    def _measuring(self) -> bool:
        return self._measure_from <= time.monotonic() < self._measure_until

    def _on_message(self, topic: str, data: bytes, received_ns: int) -> None:
        measuring = self._measuring()
        self.latency.add(topic, header_stamp_ns(data), received_ns, measure=measuring)
        if measuring:
            self.counts[topic] += 1

    def _on_detector_report(self, msg: String) -> None:
        try:
            self.detector_report = json.loads(msg.data)
        except json.JSONDecodeError as error:
            self.get_logger().warning(f'unreadable detector report: {error}')

    def _check_end(self) -> None:
        if self.done or time.monotonic() < self._measure_until:
            return
        report = {
            'duration_s': self.duration,
            'latency': {stage: percentiles_ms(samples)
                        for stage, samples in self.latency.samples.items()},
            'rate_hz': {topic: count / self.duration for topic, count in self.counts.items()},
            'detector_report': self.detector_report,
        }
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        self.output_file.write_text(json.dumps(report, indent=2) + '\n')
        self.get_logger().info(f'wrote {self.output_file}')
        self.done = True


def main(args: list[str] | None = None) -> None:
    """Measure, write the figures, exit."""
    spin_node(LatencyProbeNode, args, until=lambda node: node.done)


if __name__ == '__main__':
    main()
