"""``litedet-ros bench motion``: IK and planning figures of the built-in backend.

Prints a table and optionally writes the figures as JSON (rates as fractions 0-1, times in ms,
trajectory durations in s). The exit code is 1 when a re-checked trajectory collides.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``litedet-ros bench motion``."""
    parser.add_argument('--json', type=Path, metavar='FILE', help='write the figures here')
    parser.add_argument('--ik-poses', type=int, default=1000,
                        help='reachable poses in and above the bin (default 1000)')
    parser.add_argument('--queries', type=int, default=200,
                        help='bin -> place planning queries (default 200)')
    parser.add_argument('--seed', type=int, default=0, help='seed of poses and queries')


def run(args: argparse.Namespace) -> int:
    """Run the motion benchmark; return the exit code (1 if a trajectory collides)."""
    from litedet_ros.motion import bench  # noqa: PLC0415 - heavy imports only when run

    if args.ik_poses < 1 or args.queries < 1:
        raise SystemExit('--ik-poses and --queries must be >= 1')
    results = bench.run_benchmark(args.ik_poses, args.queries, args.seed)
    print(bench.format_table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + '\n')
    return 1 if results['collisions'] else 0
