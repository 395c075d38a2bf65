"""Results of a bin-clearing episode: figures, the results table, JSON and a plot.

Rates are fractions in [0, 1]; times are sim seconds unless named ``*_ms`` (wall milliseconds,
for the pipeline latencies measured through the running graph). A figure without samples is
``None`` (JSON ``null``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from litedet_ros.motion.status import PUSHED

#: Where an object can end (litedet_ros/ObjectState LOCATION_* order).
LOCATIONS = ('in_bin', 'in_hand', 'placed', 'dropped')
#: Outcome of a controller result in which nothing moved for lack of a feasible grasp.
NO_GRASP = 'NO_GRASP'


@dataclass(frozen=True)
class PickRecord:
    """One finished pick attempt.

    Attributes:
        index: 1-based attempt number in the episode.
        outcome: ``SUCCESS``, ``PARTIAL_SUCCESS``, ``FAILED``, or ``NO_GRASP`` (objects were seen,
            none had a feasible grasp, nothing moved: not counted as an attempt).
        reason: the controller's reason (empty on plain success).
        cycle_time: attempt duration, sim s.
        end_time: sim time at its end, s.
        objects: object count per location (:data:`LOCATIONS`) right after it.
        image: annotated image file, relative to the output folder (empty if none).
        round: 1-based round (bin) of the attempt.
    """

    index: int
    outcome: str
    reason: str
    cycle_time: float
    end_time: float
    objects: Mapping[str, int]
    image: str = ''
    round: int = 1


class CollisionStates:
    """Robot collisions by the task state they began in, from the simulator's running count.

    Attributes:
        count: the simulator's count at the last update; None before the first.
        states: collisions per task state name.
        events: one dict per update that found new collisions: the state, how many, and what
            the caller added to say where (round, pick, time...).
    """

    def __init__(self, count: int | None = None) -> None:
        """Start from the simulator's current ``count``, or from its first update's."""
        self.count = count
        self.states: Counter = Counter()
        self.events: list[dict] = []

    def update(self, count: int, state: str, **where: object) -> None:
        """Attribute the collisions counted since the last update to ``state``."""
        if self.count is not None and count > self.count:
            self.states[state] += count - self.count
            self.events.append({'state': state, 'collisions': count - self.count, **where})
        self.count = count


def round_objects(seed: int) -> int:
    """Objects in a benchmark bin drawn from its seed: 5-25, as VGN's protocol."""
    return int(np.random.default_rng(seed).integers(5, 26))


def attempts_without_success(outcomes: Sequence[str]) -> int:
    """Attempts at the end of ``outcomes`` without a success (looks without a grasp skipped)."""
    count = 0
    for outcome in reversed([o for o in outcomes if o != NO_GRASP]):
        if outcome == 'SUCCESS':
            break
        count += 1
    return count


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float | None]:
    """``{'n', 'p50_ms', 'p99_ms', 'mean_ms'}`` of latencies given in seconds (None if none)."""
    values = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if values.size == 0:
        return {'n': 0, 'p50_ms': None, 'p99_ms': None, 'mean_ms': None}
    return {'n': int(values.size), 'p50_ms': float(np.percentile(values, 50)),
            'p99_ms': float(np.percentile(values, 99)), 'mean_ms': float(values.mean())}


def summarize(objects: int, picks: Sequence[PickRecord], final_objects: Mapping[str, int],
              duration_s: float, latencies_s: Mapping[str, Sequence[float]],
              stop_reason: str, collisions: int | None = None, **extra: object) -> dict:
    """The episode's figures as one JSON-ready dict.

    Args:
        objects: objects in the bin at the start.
        picks: finished controller results, in order (``NO_GRASP`` ones are not attempts).
        final_objects: object count per location at the end (:data:`LOCATIONS`).
        duration_s: sim time from the start of picking to the end, s.
        latencies_s: per pipeline stage, wall-clock latencies in s.
        stop_reason: why the episode ended.
        collisions: times the robot touched the fixed cell (the simulator's count); None when
            unknown.
        **extra: more keys to store (seed, wall time, files...).
    """
    moved = [p for p in picks if p.outcome != NO_GRASP]
    attempts = len(moved)
    successes = sum(p.outcome == 'SUCCESS' for p in moved)
    placed = int(final_objects.get('placed', 0))
    cycles = [p.cycle_time for p in moved]
    return {
        'objects': objects,
        'attempts': attempts,
        'no_grasp_rounds': len(picks) - attempts,
        'pushes': sum(PUSHED in p.reason for p in picks if p.outcome == NO_GRASP),
        'successes': successes,
        'partial_successes': sum(p.outcome == 'PARTIAL_SUCCESS' for p in picks),
        'failures': sum(p.outcome == 'FAILED' for p in picks),
        'success_rate': successes / attempts if attempts else 0.0,
        'cleared_rate': placed / objects if objects else 0.0,
        'mean_cycle_s': float(np.mean(cycles)) if cycles else None,
        'picks_per_hour': 3600.0 * successes / duration_s if duration_s > 0 else 0.0,
        'duration_s': duration_s,
        'final_objects': {name: int(final_objects.get(name, 0)) for name in LOCATIONS},
        'lost': objects - sum(int(final_objects.get(name, 0)) for name in LOCATIONS),
        'collisions': collisions,
        'latency': {stage: percentiles_ms(values) for stage, values in latencies_s.items()},
        'stop_reason': stop_reason,
        'picks': [asdict(p) | {'objects': dict(p.objects)} for p in picks],
        **extra,
    }


def _figure(value: float | None, form: str, unit: str) -> str:
    return 'n/a' if value is None else f'{value:{form}}{unit}'


def format_table(report: Mapping) -> str:
    """The results table printed at the end of the demo."""
    collisions = _figure(report['collisions'], 'd', '')
    if report.get('collision_states'):  # by the controller's state when they began
        collisions += ' (' + ', '.join(
            f'{state} {n}' for state, n in report['collision_states'].items()) + ')'
    rows = [
        ('objects in the bin', f'{report["objects"]}'),
        ('attempts', f'{report["attempts"]}'),
        ('successes', f'{report["successes"]}'),
        ('looks without a grasp', f'{report["no_grasp_rounds"]} ({report["pushes"]} with a push)'),
        ('success', f'{100 * report["success_rate"]:.1f} %'),
        ('cleared', f'{100 * report["cleared_rate"]:.1f} %'),
        ('mean cycle time', _figure(report['mean_cycle_s'], '.2f', ' s (sim)')),
        ('picks per hour', f'{report["picks_per_hour"]:.0f} (sim time)'),
        ('objects at the end', ', '.join(f'{k.replace("_", " ")} {v}'
                                         for k, v in report['final_objects'].items())),
        ('unaccounted objects', f'{report["lost"]}'),
        ('robot collisions', collisions),
        ('stopped because', report['stop_reason']),
    ]
    rows += [(f'latency {stage}', f'p50 {_figure(s["p50_ms"], ".1f", " ms")}, p99 '
                                  f'{_figure(s["p99_ms"], ".1f", " ms")} ({s["n"]} samples)')
             for stage, s in report['latency'].items()]
    width = max(len(name) for name, _ in rows)
    rule = '-' * (width + 3 + max(len(value) for _, value in rows))
    return '\n'.join([rule, *(f'{name:<{width}} | {value}' for name, value in rows), rule])


def plot_report(report: Mapping, latencies_s: Mapping[str, Sequence[float]],
                path: str | Path) -> None:
    """Save cycle times per attempt and latency distributions per stage as a PNG."""
    import matplotlib  # noqa: PLC0415 - only when a plot is asked for

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415

    colors = {'SUCCESS': 'tab:green', 'PARTIAL_SUCCESS': 'tab:orange', 'FAILED': 'tab:red'}
    figure, (cycles, latency) = plt.subplots(1, 2, figsize=(11, 4))
    picks = report['picks']
    cycles.bar([p['index'] for p in picks], [p['cycle_time'] for p in picks],
               color=[colors.get(p['outcome'], 'gray') for p in picks])
    cycles.set(xlabel='attempt', ylabel='cycle time (sim s)',
               title=f'cycle times (mean {_figure(report["mean_cycle_s"], ".2f", " s")}; '
                     'green = success)')
    stages = [stage for stage, values in latencies_s.items() if len(values)]
    if stages:
        latency.boxplot([np.asarray(latencies_s[s]) * 1000.0 for s in stages], whis=(1, 99),
                        showfliers=False)
        latency.set_xticks(range(1, len(stages) + 1), stages, rotation=15)
    latency.set(ylabel='latency (wall ms)', title='pipeline latency (whiskers p1-p99)')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
