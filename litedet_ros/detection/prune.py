"""Structured channel pruning of the MobileNetV2-SSDLite with torch-pruning.

:func:`prune_model` removes whole channels (convolution filters with their batch-norm entries
and the matching input channels downstream) across the backbone, the SSDLite extra layers and
the head's depthwise blocks, ranked by the L2 norm of each coupled channel group
(``torch_pruning``'s dependency graph keeps residual additions, depthwise convolutions and the
feature maps shared by the extra layers and both head branches consistent). The head's final
1x1 class and box convolutions keep their output channels, so the output contract does not
change: ``regressions`` ``float32[B, 3234, 4]``, ``logits`` ``float32[B, 3234, K + 1]`` on the
same anchors. The result is a smaller dense network: it exports and quantizes like the base
model. Removing channels leaves the batch-norm statistics of the next layers stale (on the
shipped model, 30 % sparsity drops validation mAP@.5 from 0.83 to 0.00);
:func:`recalibrate_batch_norm` re-estimates them from a few hundred training images (0.33 then)
before fine-tuning restores the accuracy.

A pruned checkpoint is an ordinary state dict whose tensor shapes are the per-layer channel
spec: :func:`resize_to_state_dict` shrinks a freshly built model to those shapes before the
weights are loaded, so no pickled module is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models.detection.ssd import SSD

from litedet_ros.detection.model import INPUT_SIZE, RawSSD, model_anchors
from litedet_ros.errors import LitedetError

#: Channel counts are rounded to multiples of this: ONNX Runtime's INT8 convolutions run faster
#: on multiples of 16 (40 % sparsity, INT8, 2 threads: 2.38x FP32 at 16 vs 2.09x at 8).
ROUND_TO = 16


class CompressionError(LitedetError):
    """A compression request is invalid (sparsity, teacher/student mismatch, broken contract)."""


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` if it lies in the open interval (0, 1), else raise CompressionError."""
    if not 0.0 < sparsity < 1.0:
        raise CompressionError(f'sparsity must be in (0, 1) (fraction of channels removed), '
                               f'got {sparsity}')
    return float(sparsity)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (weights and biases; batch-norm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def output_layers(ssd: SSD) -> list[nn.Module]:
    """The head's final 1x1 convolutions (class and box outputs of each of the six maps)."""
    head = ssd.head
    return [block[-1] for branch in (head.classification_head, head.regression_head)
            for block in branch.module_list]


def output_shapes(ssd: SSD) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of ``RawSSD(ssd)``'s ``(regressions, logits)`` for one input image.

    The model's train/eval mode is left as it was.
    """
    training = ssd.training
    with torch.no_grad():
        regressions, logits = RawSSD(ssd.eval())(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
    ssd.train(training)
    return tuple(regressions.shape), tuple(logits.shape)


def prune_model(ssd: SSD, sparsity: float, global_ranking: bool = False) -> SSD:
    """Remove a fraction ``sparsity`` of the prunable channels of ``ssd`` in place.

    Args:
        ssd: model from :func:`litedet_ros.detection.model.ssdlite320_mobilenet_v2` (trained or
            not; importance is the L2 norm of the weights of each coupled channel group).
        sparsity: fraction of channels removed, in (0, 1). With ``global_ranking=False`` every
            coupled group loses this fraction (rounded to :data:`ROUND_TO` channels), so it is
            also the global channel sparsity; parameters and multiply-adds of the pointwise
            convolutions fall roughly as ``(1 - sparsity) ** 2``.
        global_ranking: rank channels across all layers instead of within each group (per-layer
            sparsity then varies, capped at 0.9).

    Returns:
        ``ssd`` (same object), pruned, in eval mode.

    Raises:
        CompressionError: ``sparsity`` outside (0, 1).
    """
    import torch_pruning as tp

    check_sparsity(sparsity)
    contract = output_shapes(ssd)
    anchors = model_anchors(ssd)
    pruner = tp.pruner.MetaPruner(
        RawSSD(ssd.eval()), torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),
        importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=sparsity,
        global_pruning=global_ranking, max_pruning_ratio=0.9, ignored_layers=output_layers(ssd),
        round_to=ROUND_TO)
    pruner.step()
    if output_shapes(ssd) != contract or not torch.equal(model_anchors(ssd), anchors):
        raise CompressionError('pruning changed the output contract or the anchors')
    return ssd


def recalibrate_batch_norm(ssd: SSD, images: np.ndarray, batch_size: int = 16) -> SSD:
    """Re-estimate every batch norm's running mean and variance on ``images``.

    Args:
        ssd: the (pruned) model; its weights are not changed.
        images: ``float32[N, 3, S, S]`` preprocessed training images
            (:func:`litedet_ros.detection.preprocess.normalize`), N >= 2.
        batch_size: images per forward pass, at least (>= 2: the 1x1 map of the last extra
            layer has one value per channel and image); the remainder is spread over the
            batches.

    Returns:
        ``ssd`` (same object) in eval mode, statistics = average over the batches.
    """
    if len(images) < 2 or batch_size < 2:
        raise CompressionError(f'batch-norm recalibration needs >= 2 images per batch, got '
                               f'{len(images)} images in batches of {batch_size}')
    norms = [m for m in ssd.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average instead of an exponential one
    raw = RawSSD(ssd.train())
    with torch.no_grad():
        for batch in np.array_split(images, max(1, len(images) // batch_size)):
            raw(torch.from_numpy(np.ascontiguousarray(batch)))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return ssd.eval()


def resize_to_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """Shrink convolutions and batch norms of ``model`` to the shapes stored in ``state_dict``.

    This rebuilds a pruned network from its weights alone (the tensor shapes are the channel
    spec): each layer keeps its first channels, then ``load_state_dict`` overwrites them.
    Layers whose shapes already match are left alone, so unpruned state dicts are a no-op.

    Args:
        model: freshly built model of the same architecture and width as the pruned one.
        state_dict: weights of the pruned model.

    Returns:
        ``model`` (same object).

    Raises:
        KeyError: a layer's weight is missing from ``state_dict``.
    """
    import torch_pruning as tp

    def shrink(prune_fn, module: nn.Module, current: int, wanted: int) -> None:
        if wanted < current:
            prune_fn(module, list(range(wanted, current)))

    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        if isinstance(module, nn.Conv2d):
            out_channels, in_per_group = state_dict[f'{prefix}weight'].shape[:2]
            if module.groups > 1 and module.groups == module.in_channels:  # depthwise
                shrink(tp.prune_depthwise_conv_out_channels, module, module.out_channels,
                       out_channels)
            else:
                shrink(tp.prune_conv_out_channels, module, module.out_channels, out_channels)
                shrink(tp.prune_conv_in_channels, module, module.in_channels, in_per_group)
        elif isinstance(module, nn.BatchNorm2d):
            shrink(tp.prune_batchnorm_out_channels, module, module.num_features,
                   state_dict[f'{prefix}weight'].shape[0])
    return model
