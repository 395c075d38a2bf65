"""Approximate-time pairing of several message streams by stamp (message_filters is not here).

ROS-free: the node feeds ``(stream, stamp_ns, message)`` in arrival order and gets back complete
sets; everything dropped is counted by reason.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from litedet_ros.errors import LitedetError


class ApproximateTimeSync:
    """Match one message per stream whose stamps lie within ``slop_ns`` of each other.

    When every stream holds a message, the pivot stamp is the oldest of the streams' newest
    stamps; each stream contributes its message nearest to the pivot. If those lie within the
    slop the set is returned and they and everything older are removed (older ones counted as
    ``unmatched``). Messages whose stamp does not increase on their stream are dropped as
    ``backwards``; messages not newer than the last returned set as ``stale``; messages older
    than the newest accepted stamp (any stream) by more than ``queue_duration_ns`` as
    ``unmatched``.

    The queues are bounded in time, not in count, so a slow stream (detections behind a
    loaded detector) still finds the fast streams' messages of its own image: each stream
    keeps about ``queue_duration_ns`` x its rate messages.

    Args:
        streams: stream names, e.g. ``('detections', 'depth', 'camera_info')``.
        slop_ns: largest stamp spread within a set, nanoseconds.
        queue_duration_ns: how far back in stamps messages are kept while waiting for a
            match, nanoseconds (longer than the latency of the slowest stream).

    Attributes:
        drops: dropped messages counted by reason.
        stream_drops: the same counted by ``(stream, reason)``.
    """

    def __init__(self, streams: tuple[str, ...], slop_ns: int,
                 queue_duration_ns: int = 2_000_000_000) -> None:
        if len(streams) < 2 or len(set(streams)) != len(streams):
            raise LitedetError(f'need two or more distinct streams, got {streams}')
        if slop_ns < 0 or queue_duration_ns <= 0:
            raise LitedetError(f'need slop_ns >= 0 and queue_duration_ns > 0, got {slop_ns}, '
                               f'{queue_duration_ns}')
        self.streams = tuple(streams)
        self.slop_ns = int(slop_ns)
        self.queue_duration_ns = int(queue_duration_ns)
        self._queues: dict[str, deque[tuple[int, Any]]] = {
            name: deque() for name in self.streams}
        self._last_stamp: dict[str, int] = {}
        self._last_set_stamp: int | None = None
        self.drops: Counter = Counter()
        self.stream_drops: Counter = Counter()

    def add(self, stream: str, stamp_ns: int, message: Any) -> dict[str, Any] | None:
        """Queue one message; return ``{stream: message}`` if it completes a set, else None.

        Raises:
            LitedetError: ``stream`` is not one of the configured streams.
        """
        if stream not in self._queues:
            raise LitedetError(f'unknown stream {stream!r}; expected one of {self.streams}')
        last = self._last_stamp.get(stream)
        if last is not None and stamp_ns <= last:
            self._drop(stream, 'backwards')
            return None
        self._last_stamp[stream] = stamp_ns
        if self._last_set_stamp is not None and stamp_ns <= self._last_set_stamp:
            self._drop(stream, 'stale')
            return None
        self._queues[stream].append((stamp_ns, message))
        oldest_kept = max(self._last_stamp.values()) - self.queue_duration_ns
        for name, queue in self._queues.items():
            while queue and queue[0][0] < oldest_kept:
                queue.popleft()
                self._drop(name, 'unmatched')
        return self._match()

    def latest_stamp(self, stream: str) -> int | None:
        """Stamp (ns) of the newest message accepted on ``stream``, None before the first."""
        return self._last_stamp.get(stream)

    def reset(self) -> None:
        """Forget all queued messages and stamps (e.g. after the clock jumped back)."""
        for queue in self._queues.values():
            queue.clear()
        self._last_stamp.clear()
        self._last_set_stamp = None

    def _drop(self, stream: str, reason: str, count: int = 1) -> None:
        self.drops[reason] += count
        self.stream_drops[stream, reason] += count

    def _match(self) -> dict[str, Any] | None:
        if not all(self._queues.values()):
            return None
        pivot = min(queue[-1][0] for queue in self._queues.values())
        chosen = {name: min(range(len(queue)), key=lambda i, q=queue: abs(q[i][0] - pivot))
                  for name, queue in self._queues.items()}
        stamps = [self._queues[name][i][0] for name, i in chosen.items()]
        if max(stamps) - min(stamps) > self.slop_ns:
            return None
        matched = {}
        for name, index in chosen.items():
            queue = self._queues[name]
            if index:
                self._drop(name, 'unmatched', index)
            for _ in range(index):
                queue.popleft()
            matched[name] = queue.popleft()[1]
        self._last_set_stamp = max(stamps)
        return matched
