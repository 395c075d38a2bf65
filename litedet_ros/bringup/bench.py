"""``litedet-ros bench e2e``: the whole loop over many bins, VGN-style, through the real graph.

Protocol: ``--rounds`` bins of 5-25 objects (drawn per round from its seed) on held-out scene
seeds (from 300000: disjoint from the detector's train/val/test scene seeds, 0-299999); a round
ends when the bin is empty or after 2 consecutive failed attempts. Figures (sim time for cycle
and throughput, wall time for latencies) are printed and written as JSON with the keys
``attempts``, ``success_rate`` and ``cleared_rate`` (fractions), ``mean_cycle_s``,
``picks_per_hour``, ``collisions``, ``lost`` and ``latency`` (per stage, ms), plus ``rounds``
(per round) and ``picks`` (per attempt). ``collisions`` counts the times the robot came into
contact with the fixed cell (bin, table, place tote, camera), as the simulator reports them;
``collision_states`` counts them by the controller's state when the count rose, and
``collision_events`` says when (round, pick, sim time).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from litedet_ros.bringup.cli import add_graph_arguments
from litedet_ros.bringup.demo import run_episodes
from litedet_ros.bringup.graph import BringupError
from litedet_ros.bringup.report import format_table

HELD_OUT_SEED = 300_000
MAX_CONSECUTIVE_FAILURES = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options and the graph options of ``bringup``."""
    parser.add_argument('--rounds', type=int, default=20, help='bins to clear (default 20)')
    parser.add_argument('--json', help='write the figures to this JSON file')
    parser.add_argument('--seed', type=int, default=HELD_OUT_SEED,
                        help=f'seed of the first bin (default {HELD_OUT_SEED}, held out)')
    parser.add_argument('--out', default='output/bench_e2e',
                        help='folder for logs, images and the report (default '
                        'output/bench_e2e)')
    parser.add_argument('--timeout', type=float, default=600.0,
                        help='longest round, wall s (default 600)')
    parser.add_argument('--record', action='store_true', help='also write recording.mcap')
    add_graph_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the rounds, print the table, write the JSON; return the exit code."""
    try:
        if args.rounds < 1:
            raise BringupError(f'--rounds must be >= 1, got {args.rounds}')
        status, report = run_episodes(
            args, Path(args.out), seed=args.seed, num_objects=0, rounds=args.rounds,
            max_consecutive_failures=MAX_CONSECUTIVE_FAILURES, timeout=args.timeout,
            record=args.record)
    except BringupError as error:
        print(f'litedet-ros bench e2e: {error}', file=sys.stderr)
        return 2
    if not report:
        return 1
    report['protocol'] = {'rounds': args.rounds, 'first_seed': args.seed, 'objects': '5-25',
                          'max_consecutive_failures': MAX_CONSECUTIVE_FAILURES}
    print(format_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, allow_nan=False) + '\n')
    return status
