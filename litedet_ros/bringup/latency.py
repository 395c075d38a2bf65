"""Per-stage latency of the perception pipeline, measured from outside the nodes.

A colour image, its detections and its grasps carry the image's stamp; the latency of a stage is
the difference between the middleware's receive times (not callback times: an executor may run
the callbacks of messages that arrived together in any order) of the two messages with the same
stamp, in one observer process. Used by ``demo_node`` and ``latency_probe_node``.
"""

from __future__ import annotations

from collections import OrderedDict
import struct

from litedet_ros import topics

NS_PER_S = 1_000_000_000
#: stage -> (earlier topic, later topic), same image stamp
LATENCY_STAGES = {
    'detector': (topics.COLOR_IMAGE, topics.DETECTIONS),
    'grasp_planner': (topics.DETECTIONS, topics.GRASPS),
    'frame_to_grasp': (topics.COLOR_IMAGE, topics.GRASPS),
}
PIPELINE_TOPICS = (topics.COLOR_IMAGE, topics.DETECTIONS, topics.GRASPS)


def header_stamp_ns(data: bytes) -> int:
    """Header stamp of a serialized stamped message (CDR: 4-byte header, int32 s, uint32 ns)."""
    sec, nanosec = struct.unpack_from('<iI' if data[1] == 1 else '>iI', data, 4)
    return sec * NS_PER_S + nanosec


class StageLatency:
    """Latency samples per stage from the receive times of the pipeline's messages.

    Attributes:
        samples: stage -> latencies, s, in the order they completed.
    """

    def __init__(self, keep: int = 200) -> None:
        """Remember the receive times of the last ``keep`` stamps of each topic."""
        self.keep = keep
        self.samples: dict[str, list[float]] = {stage: [] for stage in LATENCY_STAGES}
        self._received: dict[str, OrderedDict[int, float]] = {
            topic: OrderedDict() for topic in PIPELINE_TOPICS}

    def latest_stamp(self, topic: str) -> int | None:
        """Stamp of the last message of ``topic`` noted, None before the first."""
        received = self._received[topic]
        return next(reversed(received)) if received else None

    def add(self, topic: str, stamp_ns: int, received_ns: int, measure: bool = True) -> None:
        """Note a message; with ``measure``, add the samples of the stages it completes."""
        received = self._received[topic]
        received[stamp_ns] = received_ns / NS_PER_S
        while len(received) > self.keep:
            received.popitem(last=False)
        if not measure:
            return
        for stage, (earlier, later) in LATENCY_STAGES.items():
            if topic in (earlier, later) and all(
                    stamp_ns in self._received[t] for t in (earlier, later)):
                self.samples[stage].append(self._received[later][stamp_ns]
                                           - self._received[earlier][stamp_ns])
