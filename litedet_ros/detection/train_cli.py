"""``litedet-ros train``: train the MobileNetV2-SSDLite detector on a COCO-format dataset."""

from __future__ import annotations

import argparse

from litedet_ros.detection.data import AUGMENTATIONS
from litedet_ros.detection.train import TrainConfig, train


def add_training_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig,
                           val_required: bool = False, out_help: str = 'output directory: '
                           'best.pt, last.pt, history.jsonl, curves.png') -> None:
    """Add the data and schedule options every training command shares (``train``, ``compress``).

    Args:
        parser: the command's parser.
        defaults: the command's default hyper-parameters.
        val_required: whether ``--val`` must be given.
        out_help: help text of ``--out``.
    """
    parser.add_argument('--data', required=True, nargs='+', metavar='DIR',
                        help='training split: directories with annotations.json and images '
                             '(pooled)')
    parser.add_argument('--val', required=val_required,
                        help='validation split scored after every epoch')
    parser.add_argument('--out', required=True, help=out_help)
    parser.add_argument('--epochs', type=int, default=defaults.epochs)
    parser.add_argument('--batch-size', type=int, default=defaults.batch_size)
    parser.add_argument('--lr', type=float, default=defaults.lr, help='peak AdamW learning rate')
    parser.add_argument('--weight-decay', type=float, default=defaults.weight_decay)
    parser.add_argument('--warmup-steps', type=int, default=defaults.warmup_steps)
    parser.add_argument('--max-steps', type=int, default=defaults.max_steps,
                        help='stop after this many steps (0: run all epochs)')
    parser.add_argument('--max-minutes', type=float, default=defaults.max_minutes,
                        help='wall-clock budget per run; the LR schedule follows it (0: none)')
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--threads', type=int, default=defaults.threads,
                        help='torch CPU threads')
    parser.add_argument('--workers', type=int, default=defaults.workers,
                        help='data-loader worker processes')
    parser.add_argument('--val-images', type=int, default=defaults.val_images,
                        help='validation images scored per epoch')
    parser.add_argument('--limit', type=int,
                        help='use only the first N images of each training directory')
    parser.add_argument('--augment', choices=AUGMENTATIONS, default=defaults.augment,
                        help='augmentation level')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def train_config(args: argparse.Namespace, width_mult: float) -> TrainConfig:
    """The :class:`TrainConfig` of :func:`add_training_arguments`' options.

    Raises:
        ValueError: out-of-range values (see :class:`TrainConfig`).
    """
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, seed=args.seed,
        threads=args.threads, workers=args.workers, width_mult=width_mult,
        max_steps=args.max_steps, val_images=args.val_images, augment=args.augment,
        max_minutes=args.max_minutes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the training options."""
    add_training_arguments(parser, TrainConfig())
    parser.add_argument('--width-mult', type=float, default=TrainConfig().width_mult)
    parser.add_argument('--init', help='start from the weights of this checkpoint')


def run(args: argparse.Namespace) -> int:
    """Train; print the last epoch's record; return 0."""
    history = train(args.data, args.out, train_config(args, args.width_mult), val_dir=args.val,
                    limit=args.limit, progress=not args.no_progress, init=args.init)
    print(f'trained {history[-1]["step"]} steps: {history[-1]}; checkpoints in {args.out}')
    return 0
