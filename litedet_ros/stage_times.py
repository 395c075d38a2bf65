"""Rolling per-stage timings of a node's work on each input, and their log line (ROS-free)."""

from __future__ import annotations

from collections import deque

import numpy as np


class LatencyStats:
    """Rolling per-stage latencies (the last ``window`` inputs), milliseconds."""

    def __init__(self, stages: tuple[str, ...], window: int = 1000) -> None:
        self.stages = stages
        self._samples = {stage: deque(maxlen=window) for stage in stages}

    def add(self, **seconds: float) -> None:
        """Record one input: a duration in seconds for every stage."""
        for stage in self.stages:
            self._samples[stage].append(1e3 * seconds[stage])

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {'count', 'mean', 'p50', 'p99', 'max'}}`` in ms (empty before an input)."""
        out = {}
        for stage, samples in self._samples.items():
            if samples:
                values = np.fromiter(samples, float)
                out[stage] = {'count': len(values), 'mean': float(values.mean()),
                              'p50': float(np.percentile(values, 50)),
                              'p99': float(np.percentile(values, 99)),
                              'max': float(values.max())}
        return out


def summary_line(summary: dict[str, dict[str, float]]) -> str:
    """``latency ms (p50/p99): stage p50/p99, ...`` of a :meth:`LatencyStats.summary`."""
    return 'latency ms (p50/p99): ' + ', '.join(
        f'{stage} {s["p50"]:.1f}/{s["p99"]:.1f}' for stage, s in summary.items())
