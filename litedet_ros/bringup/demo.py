"""``litedet-ros demo``: clear a seeded bin in the simulated workcell through the real nodes.

Starts the sim graph (``bringup --sim``: sim_node, detector_node, grasp_planner_node,
controller_node) plus :mod:`litedet_ros.demo_node`, which refills the bin, starts the
controller's run, prints a line per pick and writes the output folder::

    OUT/report.json      figures (see litedet_ros.bringup.report.summarize)
    OUT/results.txt      the results table (also printed)
    OUT/timing.png       cycle times and per-stage latencies
    OUT/images/          the annotated detector image of every pick
    OUT/recording.mcap   the graph's topics (open in Foxglove or with ros2 bag)
    OUT/logs/            every node's output

Launch arguments (``name:=value``) and ``--params`` apply as for ``bringup``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

from litedet_ros.bringup.cli import add_graph_arguments, graph_from_args
from litedet_ros.bringup.graph import PACKAGE, BringupError, NodeSpec
from litedet_ros.bringup.report import format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the episode options and the graph options of ``bringup``."""
    parser.add_argument('--out', default='output/demo', help='output folder (default '
                        'output/demo)')
    parser.add_argument('--seed', type=int, default=400_000,
                        help='bin scene seed (default 400000: a scene no detector saw)')
    parser.add_argument('--objects', type=int, default=10,
                        help='objects in the bin, 1-25 (default 10)')
    parser.add_argument('--timeout', type=float, default=540.0,
                        help='longest episode, wall s (default 540)')
    parser.add_argument('--no-record', action='store_true', help='no MCAP recording')
    add_graph_arguments(parser)


def run_episodes(args: argparse.Namespace, out: Path, **episode: object) -> tuple[int, dict]:
    """Run the sim graph with a demo_node configured by ``episode`` (its parameters).

    Returns:
        The bringup's exit status (0, or 1 if a required node ended) and the report (empty if
        none was written).

    Raises:
        BringupError: the graph cannot start (nothing was started).
    """
    from litedet_ros.bringup.runner import Bringup, node_commands  # noqa: PLC0415

    args.sim = True
    nodes = graph_from_args(args)
    demo = NodeSpec(PACKAGE, 'demo_node', 'demo_node', nodes[0].namespace, parameters=(
        {**episode, 'output_dir': str(out.resolve()), 'use_sim_time': True},),
        additional_env=nodes[0].additional_env, required=False)
    commands = node_commands((*nodes, demo))
    report_file = out / 'report.json'
    report_file.unlink(missing_ok=True)
    bringup = Bringup(commands, log_dir=out / 'logs')
    status = bringup.run(until=lambda: bringup.processes['demo_node'].poll() is not None)
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    if not report:
        print(f'no report (bringup exit {status}); node logs in {out / "logs"}',
              file=sys.stderr)
    return status, report


def run(args: argparse.Namespace) -> int:
    """Run the episode and print the table; return 0 unless the graph or the report failed."""
    out = Path(args.out)
    started = time.monotonic()
    try:
        if not 1 <= args.objects <= 25:
            raise BringupError(f'--objects must be in [1, 25], got {args.objects}')
        status, report = run_episodes(args, out, seed=args.seed, num_objects=args.objects,
                                      timeout=args.timeout, record=not args.no_record)
    except BringupError as error:
        print(f'litedet-ros demo: {error}', file=sys.stderr)
        return 2
    if not report:
        return 1
    print(format_table(report))
    print(f'wall time {time.monotonic() - started:.0f} s; results in {out}/ (report.json, '
          'results.txt, timing.png, images/, recording.mcap, logs/)')
    return status
