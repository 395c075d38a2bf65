"""``litedet-ros sim``: synthetic datasets, benchmarks and pictures of the simulated workcell.

Examples::

    litedet-ros sim dataset --out data/train --images 3000 --seed 0
    litedet-ros sim dataset --out data/val --images 300 --split val
    litedet-ros sim bench
    litedet-ros sim render --out bin.png --seed 3 --objects 15
"""

from __future__ import annotations

import argparse
import sys

from litedet_ros.errors import LitedetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``dataset``, ``bench`` and ``render`` verbs."""
    verbs = parser.add_subparsers(dest='verb', metavar='VERB', required=True)
    dataset = verbs.add_parser('dataset', help='write a randomized COCO dataset')
    dataset.add_argument('--out', required=True, help='output directory')
    dataset.add_argument('--images', type=int, required=True, help='number of images')
    seeds = dataset.add_mutually_exclusive_group()
    seeds.add_argument('--seed', type=int, help='first scene seed')
    seeds.add_argument('--split', choices=('train', 'val', 'test'), default='train',
                       help="use the split's seed range (train 0, val 100000, test 200000)")
    dataset.add_argument('--views-per-scene', type=int, default=8,
                         help='randomized views per settled scene (default 8)')
    dataset.add_argument('--depth', action='store_true', help='also write depth (uint16 mm)')
    dataset.add_argument('--no-progress', action='store_true', help='no progress bar')

    bench = verbs.add_parser('bench', help='render fps (RGB, depth) and physics real-time factor')
    bench.add_argument('--objects', type=int, default=15, help='objects in the bin')
    bench.add_argument('--frames', type=int, default=100, help='frames per render measurement')
    bench.add_argument('--seconds', type=float, default=5.0, help='sim seconds of physics')
    bench.add_argument('--json', help='also write the results to this JSON file')

    render = verbs.add_parser('render', help='save a picture of a bin scene with its boxes')
    render.add_argument('--out', required=True, help='PNG file to write')
    render.add_argument('--seed', type=int, default=0, help='scene seed')
    render.add_argument('--objects', type=int, default=12, help='objects in the bin')


def run(args: argparse.Namespace) -> int:
    """Run one verb; return the exit code (2 on refused input)."""
    try:
        if args.verb == 'dataset':
            return _dataset(args)
        if args.verb == 'bench':
            return _bench(args)
        return _render(args)
    except LitedetError as error:
        print(f'litedet-ros sim {args.verb}: {error}', file=sys.stderr)
        return 2


def _dataset(args: argparse.Namespace) -> int:
    from litedet_ros.sim.dataset import SPLIT_SEEDS, generate_dataset  # noqa: PLC0415

    seed = SPLIT_SEEDS[args.split] if args.seed is None else args.seed
    stats = generate_dataset(args.out, args.images, seed, views_per_scene=args.views_per_scene,
                             save_depth=args.depth, progress=not args.no_progress)
    print(f'{stats.images} images, {stats.annotations} annotations ({stats.ignored} below the '
          f'occlusion cut-off, iscrowd=1) in {stats.seconds:.1f} s: '
          f'{stats.images_per_second:.2f} images/s -> {args.out}')
    if stats.diverged_scenes:
        print(f'skipped {len(stats.diverged_scenes)} scenes whose physics diverged: seeds '
              f'{list(stats.diverged_scenes)}')
    return 0


def _bench(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from litedet_ros.sim.bench import run_bench  # noqa: PLC0415

    results = run_bench(args.objects, args.frames, args.seconds)
    for key, value in results.items():
        print(f'{key}: {value:.2f}' if isinstance(value, float) else f'{key}: {value}')
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump(results, stream, indent=2)
    return 0


def _render(args: argparse.Namespace) -> int:
    from litedet_ros.sim.bench import render_picture  # noqa: PLC0415

    count = render_picture(args.out, args.seed, args.objects)
    print(f'{args.out}: seed {args.seed}, {count} visible objects boxed')
    return 0
