r"""``litedet-ros compress prune|distill``: smaller detectors from a trained checkpoint.

Every run directory gets the checkpoints and curves of :func:`litedet_ros.detection.train.train`,
the FP32 ONNX, both INT8 Q/DQ variants (calibrated on training images, as
``litedet-ros detector quantize`` does), ``labels.txt``, ``anchors.npy``, ``summary.json`` and a
``MODEL_CARD.md`` with the exact command and the validation figures. Bad requests (sparsity
outside (0, 1), a teacher whose classes differ from the data, a checkpoint of another
architecture) are refused before any training starts.

Examples::

    litedet-ros compress prune --checkpoint run/best.pt --sparsity 0.3 0.5 \
        --data data/train --val data/val --out compress/pruned --max-minutes 20
    litedet-ros compress distill --teacher run/best.pt --width-mult 0.5 \
        --data data/train --val data/val --out compress/distilled --max-steps 2000
    litedet-ros compress distill ... --alpha 0 --beta 0 --out compress/alone  # the baseline
"""

from __future__ import annotations

import argparse
import copy
from datetime import date
import json
from pathlib import Path
import sys

from litedet_ros.errors import LitedetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``prune`` and ``distill`` verbs."""
    verbs = parser.add_subparsers(dest='verb', metavar='VERB', required=True)
    prune = verbs.add_parser('prune', help='structured channel pruning + fine-tuning')
    prune.add_argument('--checkpoint', required=True, help='trained .pt (litedet-ros train)')
    prune.add_argument('--sparsity', type=float, nargs='+', required=True, metavar='S',
                       help='fraction of channels removed, in (0, 1); one run per value')
    prune.add_argument('--global-ranking', action='store_true',
                       help='rank channels across layers (default: the same fraction per layer)')
    _training_arguments(prune, lr=1e-3, warmup_steps=50,
                        out_help='output directory: one sparsity_<S> sub-directory per value')

    distill = verbs.add_parser('distill', help="train a student with a teacher's outputs")
    distill.add_argument('--teacher', required=True, help='trained teacher .pt')
    distill.add_argument('--width-mult', type=float, default=0.5,
                         help='student MobileNetV2 width multiplier')
    distill.add_argument('--alpha', type=float, default=1.0,
                         help='weight of KL(teacher || student) on softened class scores')
    distill.add_argument('--beta', type=float, default=1.0,
                         help="weight of smooth-L1 to the teacher's boxes on its foreground "
                              'anchors (--alpha 0 --beta 0: the student alone, the baseline)')
    distill.add_argument('--temperature', type=float, default=2.0,
                         help='softmax temperature of the class term')
    _training_arguments(distill, lr=2e-3, warmup_steps=100, out_help='output directory')


def _training_arguments(parser: argparse.ArgumentParser, lr: float, warmup_steps: int,
                        out_help: str) -> None:
    from litedet_ros.detection.train import TrainConfig
    from litedet_ros.detection.train_cli import add_training_arguments

    add_training_arguments(parser, TrainConfig(epochs=10, batch_size=8, lr=lr,
                                               warmup_steps=warmup_steps, val_images=300),
                           val_required=True, out_help=out_help)
    parser.add_argument('--calib-images', type=int, default=300,
                        help='INT8 calibration images from the first --data directory')


def run(args: argparse.Namespace) -> int:
    """Run one verb; return the exit code (2 on refused input)."""
    try:
        return (_prune if args.verb == 'prune' else _distill)(args)
    except LitedetError as error:
        print(f'litedet-ros compress {args.verb}: {error}', file=sys.stderr)
        return 2


def command_line(args: argparse.Namespace) -> str:
    """The full command with every option spelled out (defaults included)."""
    parts = ['litedet-ros', 'compress', args.verb]
    for key, value in vars(args).items():
        flag = '--' + key.replace('_', '-')
        if key == 'verb' or value is None or value is False:
            continue
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return ' '.join(parts)


def _calibration_images(args: argparse.Namespace, labels: tuple[str, ...]):
    """Check the options and every split's classes, then load the calibration images.

    Returns:
        ``float32[N, 3, S, S]`` preprocessed images of the first training split (batch-norm and
        INT8 calibration).

    Raises:
        DatasetError: a split whose classes differ from the model's (checked before any image
            is read).
    """
    import numpy as np

    from litedet_ros.detection.data import load_dataset
    from litedet_ros.detection.preprocess import normalize

    if args.calib_images < 2 or args.val_images < 1:
        raise LitedetError(f'--calib-images must be >= 2 and --val-images >= 1, got '
                           f'{args.calib_images} and {args.val_images}')
    for directory in (*args.data, args.val):
        load_dataset(directory, limit=0, labels=labels)  # reads no image
    data = load_dataset(args.data[0], limit=args.calib_images, labels=labels)
    return np.stack([normalize(image) for image in data.images])


def _prune(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from litedet_ros.detection.prune import (
        ROUND_TO,
        check_sparsity,
        count_parameters,
        prune_model,
        recalibrate_batch_norm,
    )
    from litedet_ros.detection.train import load_checkpoint, save_checkpoint, train
    from litedet_ros.detection.train_cli import train_config

    sparsities = [check_sparsity(s) for s in args.sparsity]
    base, labels, ckpt = load_checkpoint(args.checkpoint)
    calibration = _calibration_images(args, labels)
    config = train_config(args, ckpt['width_mult'])
    base_params = count_parameters(base)
    out = Path(args.out)
    torch.set_num_threads(args.threads)
    for sparsity in tqdm(sparsities, desc='sparsity', disable=args.no_progress):
        run_dir = out / f'sparsity_{sparsity:.2f}'
        run_dir.mkdir(parents=True, exist_ok=True)
        model = recalibrate_batch_norm(
            prune_model(copy.deepcopy(base), sparsity, args.global_ranking), calibration)
        meta = {'sparsity': sparsity, 'global_ranking': args.global_ranking, 'round_to': ROUND_TO,
                'source': str(args.checkpoint), 'base_parameters': base_params,
                'parameters': count_parameters(model)}
        save_checkpoint(run_dir / 'pruned.pt', model, labels, ckpt['width_mult'], pruning=meta)
        meta['val_before_finetuning'] = _torch_val(model, args, labels)
        history = train(args.data, run_dir, config, val_dir=args.val, limit=args.limit,
                        progress=not args.no_progress, init=run_dir / 'pruned.pt',
                        checkpoint_extra={'pruning': meta})
        _deploy(args, run_dir, history, f'Pruned MobileNetV2-SSDLite, sparsity {sparsity:.2f}',
                _pruning_notes(meta), {'pruning': meta}, calibration)
    return 0


def _distill(args: argparse.Namespace) -> int:
    from litedet_ros.detection.distill import DistillationLoss, check_compatible
    from litedet_ros.detection.model import ssdlite320_mobilenet_v2
    from litedet_ros.detection.train import load_checkpoint, train
    from litedet_ros.detection.train_cli import train_config

    if args.width_mult <= 0:
        raise LitedetError(f'--width-mult must be > 0, got {args.width_mult}')
    teacher, labels, teacher_ckpt = load_checkpoint(args.teacher)
    loss_fn = DistillationLoss(teacher, args.alpha, args.beta, args.temperature)
    calibration = _calibration_images(args, labels)
    check_compatible(teacher, ssdlite320_mobilenet_v2(len(labels) + 1, args.width_mult))
    meta = {'teacher': str(args.teacher), 'teacher_width_mult': teacher_ckpt['width_mult'],
            'alpha': args.alpha, 'beta': args.beta, 'temperature': args.temperature}
    history = train(args.data, args.out, train_config(args, args.width_mult), val_dir=args.val,
                    limit=args.limit, progress=not args.no_progress, loss_fn=loss_fn,
                    checkpoint_extra={'distillation': meta})
    alone = args.alpha == 0 and args.beta == 0
    title = (f'MobileNetV2-SSDLite width {args.width_mult} '
             f'{"trained alone (distillation baseline)" if alone else "distilled"}')
    _deploy(args, Path(args.out), history, title, _distillation_notes(meta, alone),
            {'distillation': meta}, calibration)
    return 0


def _torch_val(model, args: argparse.Namespace, labels: tuple[str, ...]) -> dict:
    """Validation mAP of a torch model on ``--val-images`` images."""
    from litedet_ros.detection.backends import TorchBackend
    from litedet_ros.detection.data import load_dataset
    from litedet_ros.detection.evaluate import coco_evaluate, predict
    from litedet_ros.detection.model import model_anchors

    val = load_dataset(args.val, limit=args.val_images, labels=labels)
    result = coco_evaluate(val, predict(TorchBackend(model), val, model_anchors(model).numpy()))
    return {'map50': result.map50, 'map': result.map, 'images': len(val)}


def _deploy(args: argparse.Namespace, run_dir: Path, history: list[dict], title: str,
            notes: str, meta: dict, calibration) -> None:
    """Export ``best.pt`` to FP32 + INT8 ONNX, score them on the validation split, write the card.

    ``calibration``: ``float32[N, 3, S, S]`` preprocessed training images for INT8. The summary
    (``summary.json``) and ``MODEL_CARD.md`` go into ``run_dir``.
    """
    from litedet_ros.detection.backends import OnnxRuntimeBackend
    from litedet_ros.detection.cli import FP32_NAME, INT8_NAMES
    from litedet_ros.detection.data import load_dataset
    from litedet_ros.detection.detector import ANCHORS_FILE, load_anchors
    from litedet_ros.detection.evaluate import coco_evaluate, predict
    from litedet_ros.detection.export import export_onnx
    from litedet_ros.detection.postprocess import single_threaded_decoding
    from litedet_ros.detection.prune import count_parameters
    from litedet_ros.detection.quantize import quantize_int8
    from litedet_ros.detection.train import load_checkpoint

    model, labels, ckpt = load_checkpoint(run_dir / 'best.pt')
    files = {'fp32': export_onnx(model, run_dir / FP32_NAME, labels)}
    for variant in ('sym', 'asym'):
        files[f'int8_{variant}'] = quantize_int8(
            files['fp32'], run_dir / INT8_NAMES[variant], calibration, variant)
    val = load_dataset(args.val, limit=args.val_images, labels=labels)
    anchors = load_anchors(run_dir / ANCHORS_FILE)
    single_threaded_decoding()
    rows = []
    for name, path in files.items():
        result = coco_evaluate(val, predict(OnnxRuntimeBackend(path, args.threads), val, anchors))
        rows.append({'variant': name, 'file': path.name, 'size_mb': path.stat().st_size / 1e6,
                     'map50': result.map50, 'map': result.map})
    summary = {'title': title, 'command': command_line(args), 'date': date.today().isoformat(),
               'parameters': count_parameters(model), 'best_epoch': ckpt['epoch'],
               'best_step': ckpt['step'], 'steps': history[-1]['step'],
               'minutes': history[-1]['seconds'] / 60.0, 'train_images': _train_images(run_dir),
               'calibration_images': len(calibration), 'val_images': len(val),
               'variants': rows, **meta}
    (run_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    (run_dir / 'MODEL_CARD.md').write_text(model_card(summary, notes))
    print(f'{title}: ' + ', '.join(f'{r["variant"]} mAP@.5 {r["map50"]:.3f} mAP {r["map"]:.3f} '
                                   f'{r["size_mb"]:.2f} MB' for r in rows) + f' -> {run_dir}')


def _train_images(run_dir: Path) -> int:
    return json.loads((run_dir / 'config.json').read_text())['train_images']


def _pruning_notes(meta: dict) -> str:
    before = meta['val_before_finetuning']
    ranking = 'global ranking across layers' if meta['global_ranking'] else \
        'the same fraction in every coupled channel group'
    return (f'Structured channel pruning of `{meta["source"]}` with torch-pruning '
            f'(`MetaPruner`, group L2-magnitude importance, {ranking}, channel counts rounded '
            f'to multiples of {meta["round_to"]}): {meta["sparsity"]:.0%} of the channels of '
            f"the backbone, extra layers and head depthwise blocks removed; the head's final "
            f'class and box convolutions keep their outputs, so the output contract and the '
            f'anchors are unchanged. Parameters {meta["base_parameters"] / 1e6:.2f} M -> '
            f'{meta["parameters"] / 1e6:.2f} M. Batch-norm statistics re-estimated on the '
            f'calibration images, then validation before '
            f'fine-tuning ({before["images"]} images): mAP@.5 {before["map50"]:.3f}, mAP '
            f'{before["map"]:.3f}. The pruned network (weights shapes = channel spec) was then '
            f'fine-tuned with the training loop (`pruned.pt` = before fine-tuning).')


def _distillation_notes(meta: dict, alone: bool) -> str:
    if alone:
        return ('The student trained alone on the ground truth (torchvision SSD losses only, '
                '`--alpha 0 --beta 0`): the baseline of the distillation comparison, same data, '
                'seed and steps.')
    return (f'Knowledge distillation from `{meta["teacher"]}` (width '
            f'{meta["teacher_width_mult"]}; same anchors and classes, checked). Loss: '
            f'torchvision SSD losses on the ground truth + {meta["alpha"]} * T^2 * KL(teacher || '
            f'student) of the class distributions softened by T = {meta["temperature"]}, '
            f'averaged over the anchors the teacher finds foreground (background probability '
            f'< 0.5) plus averaged over the other anchors, + {meta["beta"]} * smooth-L1 between '
            f"student and teacher box regressions summed over the teacher's foreground anchors "
            f'and divided by their number (`litedet_ros.detection.distill`).')


def model_card(summary: dict, notes: str) -> str:
    """Markdown model card of one compression run."""
    rows = '\n'.join(f'| `{r["file"]}` | {r["variant"]} | {r["size_mb"]:.2f} | '
                     f'{r["map50"]:.3f} | {r["map"]:.3f} |' for r in summary['variants'])
    return f"""# Model card: {summary['title']}

{notes}

## Command ({summary['date']})
```
{summary['command']}
```

## Training
{summary['steps']} optimiser steps in {summary['minutes']:.1f} min on {summary['train_images']}
training images; shipped weights `best.pt` = epoch {summary['best_epoch']} (step
{summary['best_step']}, best validation mAP@.5). {summary['parameters'] / 1e6:.2f} M parameters.
Curves: `curves.png`, per-epoch records: `history.jsonl`.

## Files and validation ({summary['val_images']} images, pycocotools, ONNX Runtime)
INT8: ONNX Runtime static Q/DQ, per-channel symmetric int8 weights, MinMax activation ranges from
{summary['calibration_images']} training images (`sym`: S8S8, zero points 0, for TensorRT;
`asym`: U8S8, fastest on ONNX Runtime CPU). `labels.txt` and `anchors.npy` are beside them.

| file | variant | size MB | mAP@.5 | mAP@[.5:.95] |
|---|---|---|---|---|
{rows}

Held-out test figures and latency: `litedet-ros bench detector --variant NAME=ONNX ...`.
"""
