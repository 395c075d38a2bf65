"""Training of the MobileNetV2-SSDLite detector from scratch on a COCO-format dataset.

AdamW with a linear warm-up and a cosine decay, torchvision's SSD losses (smooth-L1 boxes,
hard-negative-mined cross-entropy), bin-scene augmentation, one checkpoint per epoch
(``last.pt``) plus the best one by validation mAP@.5 (``best.pt``), a JSON-lines history
(loss, learning rate, mAP per epoch) and a plot of the curves.

The same loop fine-tunes pruned models (``init`` = a pruned checkpoint) and trains distilled
students (``loss_fn`` adds the distillation terms), see :mod:`litedet_ros.detection.prune` and
:mod:`litedet_ros.detection.distill`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path
import random
import time

import numpy as np
import torch
from tqdm import tqdm

from litedet_ros.detection.backends import ModelLoadError, TorchBackend
from litedet_ros.detection.data import AUGMENTATIONS, TrainingSet, collate, load_dataset
from litedet_ros.detection.evaluate import coco_evaluate, predict
from litedet_ros.detection.model import INPUT_SIZE, model_anchors, ssdlite320_mobilenet_v2
from litedet_ros.detection.prune import output_shapes, resize_to_state_dict

ARCHITECTURE = 'ssdlite320_mobilenet_v2'
#: ``loss_fn(model, images, targets) -> {name: scalar loss}``; the loop minimises their sum.
LossFn = Callable[[torch.nn.Module, list, list], dict[str, torch.Tensor]]
# History names of the loss terms (other terms are logged as '<name>_loss').
_LOSS_NAMES = {'bbox_regression': 'bbox_loss', 'classification': 'cls_loss'}


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        epochs: passes over the training split.
        batch_size: images per step.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps from 1 % of ``lr``.
        seed: seed of torch, numpy and Python's ``random`` (weights, augmentation, order).
        threads: torch intra-op threads.
        workers: data-loader worker processes (0 = in the main process).
        width_mult: MobileNetV2 channel multiplier.
        max_steps: stop after this many steps (0 = no limit).
        val_images: validation images scored after each epoch (0 = skip).
        augment: augmentation level, ``none``, ``light`` or ``full`` (see
            :func:`litedet_ros.detection.data.bin_scene_augmentation`).
        max_minutes: wall-clock budget (0 = none). With a budget the learning-rate schedule
            follows the larger of step and time progress, and training ends (with a final
            validation and checkpoint) when the budget is spent: on a shared CPU this fixes
            the cost of a run, at the price of a step count that depends on the load.
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    seed: int = 0
    threads: int = 2
    workers: int = 1
    width_mult: float = 1.0
    max_steps: int = 0
    val_images: int = 300
    augment: str = 'light'
    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1 or self.workers < 0:
            raise ValueError('epochs, batch_size and threads must be >= 1, workers >= 0')
        if self.lr <= 0 or min(self.weight_decay, self.warmup_steps, self.max_steps,
                               self.max_minutes) < 0:
            raise ValueError('lr must be > 0; weight_decay, warmup_steps, max_steps, '
                             'max_minutes >= 0')
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f'augment must be one of {AUGMENTATIONS}, got {self.augment!r}')


def save_checkpoint(path: Path, model: torch.nn.Module, labels: tuple[str, ...],
                    width_mult: float, **extra) -> None:
    """Write the weights with what is needed to rebuild the model."""
    torch.save({'architecture': ARCHITECTURE, 'state_dict': model.state_dict(),
                'labels': list(labels), 'width_mult': width_mult, **extra}, path)


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, tuple[str, ...], dict]:
    """Rebuild a model from :func:`save_checkpoint`'s file, pruned or not.

    A pruned model's channel counts are read from the stored weight shapes
    (:func:`litedet_ros.detection.prune.resize_to_state_dict`); the rebuilt model must produce
    ``float32[1, A, 4]`` regressions and ``float32[1, A, K + 1]`` logits.

    Returns:
        The model (training mode), its class names, and the whole checkpoint dictionary.

    Raises:
        ModelLoadError: not a checkpoint of this architecture, or weights that do not fit it.
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise ModelLoadError(f'cannot read checkpoint {path}: {exc}') from exc
    if not isinstance(ckpt, dict) or ckpt.get('architecture') != ARCHITECTURE:
        raise ModelLoadError(f'{path} is not a {ARCHITECTURE} checkpoint')
    labels = tuple(ckpt['labels'])
    model = ssdlite320_mobilenet_v2(len(labels) + 1, ckpt['width_mult'])
    try:
        resize_to_state_dict(model, ckpt['state_dict'])
        model.load_state_dict(ckpt['state_dict'])
        shapes = output_shapes(model)
    except (KeyError, RuntimeError) as exc:
        raise ModelLoadError(f'{path}: weights do not fit a {ARCHITECTURE} with '
                             f'{len(labels)} classes: {exc}') from exc
    anchors = len(model_anchors(model))
    if shapes != ((1, anchors, 4), (1, anchors, len(labels) + 1)):
        raise ModelLoadError(f'{path}: outputs {shapes} break the detector contract')
    return model, labels, ckpt


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a generator for the data loader's order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _lr_factor(step: int, warmup: int, progress: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 2 % over ``progress`` 0-1."""
    if step < warmup:
        return 0.01 + 0.99 * step / warmup
    return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(train_dirs: Sequence[str | Path], out_dir: str | Path, config: TrainConfig,
          val_dir: str | Path | None = None, limit: int | None = None,
          progress: bool = True, init: str | Path | None = None,
          loss_fn: LossFn | None = None, checkpoint_extra: dict | None = None) -> list[dict]:
    """Train a detector and write checkpoints, history and plot into ``out_dir``.

    Args:
        train_dirs: COCO dataset directories of the training split (their images pooled;
            classes must agree).
        out_dir: output directory (created).
        config: hyper-parameters.
        val_dir: COCO dataset directory scored after each epoch (None: no validation).
        limit: use only the first ``limit`` images of each training directory.
        init: start from this checkpoint's model (same classes and width; pruned or not)
            instead of a random initialisation, e.g. a second, shorter cosine cycle after a
            first run, or fine-tuning after pruning.
        progress: show tqdm progress bars.
        loss_fn: computes the named loss terms of a batch (default: the SSD's own losses,
            ``model(images, targets)``); extra terms are logged as ``<name>_loss``.
        checkpoint_extra: more entries stored in every checkpoint (e.g. pruning settings).

    Returns:
        The per-epoch history: ``epoch``, ``step``, ``loss`` (sum of the terms), ``bbox_loss``,
        ``cls_loss`` (and any extra ``<name>_loss``), ``lr``, ``seconds`` and, with validation,
        ``map``, ``map50``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    # Freshly initialised SSDLite layers (std 0.03) produce denormal activations that make CPU
    # kernels 10x slower for the first hundred steps.
    torch.set_flush_denormal(True)
    generator = seed_everything(config.seed)
    if not train_dirs:
        raise ValueError('at least one training directory is needed')
    first = load_dataset(train_dirs[0], INPUT_SIZE, limit)
    parts = [first, *(load_dataset(d, INPUT_SIZE, limit, labels=first.labels)
                      for d in train_dirs[1:])]
    data = torch.utils.data.ConcatDataset([TrainingSet(part, config.augment) for part in parts])
    labels = first.labels
    val = None
    if val_dir is not None and config.val_images:
        val = load_dataset(val_dir, INPUT_SIZE, config.val_images, labels=labels)
    if init is None:
        model = ssdlite320_mobilenet_v2(len(labels) + 1, config.width_mult)
    else:
        model, start_labels, ckpt = load_checkpoint(init)
        if start_labels != labels or ckpt['width_mult'] != config.width_mult:
            raise ModelLoadError(f'{init} has classes {start_labels} and width '
                                 f'{ckpt["width_mult"]}; the run needs {labels} and '
                                 f'{config.width_mult}')
    if loss_fn is None:
        loss_fn = _ssd_losses
    extra = checkpoint_extra or {}
    anchors = model_anchors(model).numpy()
    loader = torch.utils.data.DataLoader(
        data, batch_size=config.batch_size, shuffle=True,
        drop_last=len(data) > config.batch_size, collate_fn=collate, generator=generator,
        num_workers=config.workers, persistent_workers=config.workers > 0)
    total = config.epochs * len(loader)
    if config.max_steps:
        total = min(total, config.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    start = time.perf_counter()
    budget = config.max_minutes * 60.0

    def schedule_progress(step: int) -> float:
        by_steps = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        by_time = (time.perf_counter() - start) / budget if budget else 0.0
        return max(by_steps, by_time)

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, config.warmup_steps, schedule_progress(s)))
    history: list[dict] = []
    (out / 'history.jsonl').write_text('')
    best = -math.inf
    step = 0
    (out / 'config.json').write_text(json.dumps(
        {**asdict(config), 'train_dirs': [str(d) for d in train_dirs], 'val_dir': str(val_dir),
         'train_images': len(data), 'labels': list(labels),
         'init': str(init) if init else None}, indent=2))
    for epoch in range(1, config.epochs + 1):
        model.train()
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(loader, desc=f'epoch {epoch}/{config.epochs}', disable=not progress,
                   leave=False)
        for images, targets in bar:
            losses = loss_fn(model, images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            step += 1
            count += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.set_postfix(loss=f'{float(loss.detach()):.3f}',
                            lr=f'{scheduler.get_last_lr()[0]:.2e}')
            if step >= total or schedule_progress(step) >= 1.0:
                break
        record = {'epoch': epoch, 'step': step,
                  **{_LOSS_NAMES.get(key, f'{key}_loss'): value / max(count, 1)
                     for key, value in sums.items()},
                  'lr': scheduler.get_last_lr()[0],
                  'seconds': round(time.perf_counter() - start, 1)}
        record['loss'] = sum(sums.values()) / max(count, 1)
        if val is not None:
            result = coco_evaluate(val, predict(TorchBackend(model), val, anchors))
            record.update(map=result.map, map50=result.map50)
        history.append(record)
        with open(out / 'history.jsonl', 'a') as f:
            f.write(json.dumps(record) + '\n')
        if progress:
            tqdm.write(json.dumps(record))
        save_checkpoint(out / 'last.pt', model, labels, config.width_mult,
                        epoch=epoch, step=step, history=history, **extra)
        score = record.get('map50', -record['loss'])
        if score > best:
            best = score
            save_checkpoint(out / 'best.pt', model, labels, config.width_mult,
                            epoch=epoch, step=step, history=history, **extra)
        plot_history(history, out / 'curves.png')
        if step >= total or schedule_progress(step) >= 1.0:
            break
    return history


def _ssd_losses(model: torch.nn.Module, images: list, targets: list) -> dict[str, torch.Tensor]:
    """The SSD's own losses: ``bbox_regression`` (smooth L1), ``classification``."""
    return model(images, targets)


def plot_history(history: list[dict], path: str | Path) -> Path:
    """Plot training loss and validation mAP per epoch into a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    epochs = [h['epoch'] for h in history]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 4))
    for key in [k for k in history[0] if k.endswith('loss')]:
        ax_loss.plot(epochs, [h[key] for h in history], marker='.', label=key)
    ax_loss.set(xlabel='epoch', ylabel='training loss', yscale='log')
    ax_loss.legend()
    for key in ('map50', 'map'):
        if all(key in h for h in history):
            ax_map.plot(epochs, [h[key] for h in history], marker='.', label=key)
    ax_map.set(xlabel='epoch', ylabel='validation', ylim=(0, 1))
    if ax_map.lines:
        ax_map.legend()
    for ax in (ax_loss, ax_map):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
