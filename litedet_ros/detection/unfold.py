"""Rebuild a trainable model from an exported FP32 ONNX file (the batch norms unfolded again).

The shipped detector is its ONNX files; pruning, distillation and further training need a torch
checkpoint. The export (:func:`litedet_ros.detection.export.export_onnx`) keeps torch's parameter
names as initialiser names but folds each batch norm into the convolution before it: the weight
``<conv>.weight`` is ``W * gamma / sqrt(var + eps)`` and the fused bias is ``<conv>.weight_bias``.
The folded pair computes ``W'x + b``. :func:`model_from_onnx` loads ``W'`` into the convolution and
gives its batch norm running statistics (mean ``mu``, variance ``v``) of the convolution's output
measured on real images, with ``gamma = sqrt(v + eps)`` and ``beta = mu + b``: in eval mode the
norm is then exactly ``x -> x + b`` (the ONNX function), and in training mode, where batch
statistics replace the running ones, the norm stays close to that function on images like the
calibration ones, so fine-tuning starts from the shipped accuracy rather than from a collapse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.detection.ssd import SSD

from litedet_ros.detection.backends import ModelLoadError
from litedet_ros.detection.detector import LABELS_FILE, load_labels
from litedet_ros.detection.model import RawSSD, ssdlite320_mobilenet_v2

FUSED_BIAS_SUFFIX = '.weight_bias'


def _onnx_weights(onnx_path: Path) -> dict[str, torch.Tensor]:
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as exc:  # onnx raises protobuf decode and OS errors alike
        raise ModelLoadError(f'cannot read ONNX model {onnx_path}: {exc}') from exc
    return {init.name: torch.from_numpy(numpy_helper.to_array(init).copy())
            for init in graph.initializer}


def _copy(target: torch.Tensor, source: torch.Tensor | None, name: str) -> None:
    if source is None or source.shape != target.shape:
        found = 'missing' if source is None else f'shape {tuple(source.shape)}'
        raise ModelLoadError(f'{name}: expected shape {tuple(target.shape)}, {found} in the ONNX '
                             f'file (not an unpruned export of this architecture and width)')
    target.copy_(source)


def model_from_onnx(onnx_path: str | Path, images: np.ndarray, width_mult: float = 1.0,
                    batch_size: int = 16) -> tuple[SSD, tuple[str, ...]]:
    """Rebuild the torch model of an FP32 ONNX export, with its batch norms restored.

    Args:
        onnx_path: FP32 ONNX file written by ``litedet-ros detector export`` (not INT8, not
            pruned), with ``labels.txt`` beside it.
        images: ``float32[N, 3, 320, 320]`` preprocessed images for the batch-norm statistics
            (training images; a few hundred are plenty), N >= 2.
        width_mult: MobileNetV2 width of the exported model.
        batch_size: images per forward pass.

    Returns:
        The model in eval mode (its eval outputs equal the ONNX outputs up to float rounding) and
        its class names.

    Raises:
        ModelLoadError: the file is unreadable, or its weights do not fit this architecture.
    """
    onnx_path = Path(onnx_path)
    if len(images) < 2:
        raise ModelLoadError(f'batch-norm statistics need >= 2 images, got {len(images)}')
    labels = load_labels(onnx_path.parent / LABELS_FILE)
    weights = _onnx_weights(onnx_path)
    model = ssdlite320_mobilenet_v2(len(labels) + 1, width_mult).eval()
    modules = dict(model.named_modules())
    folded: list[tuple[nn.Conv2d, nn.BatchNorm2d, torch.Tensor]] = []
    with torch.no_grad():
        for name, conv in modules.items():
            if not isinstance(conv, nn.Conv2d):
                continue
            _copy(conv.weight, weights.get(f'{name}.weight'), f'{name}.weight')
            if conv.bias is not None:  # the head's output layers
                _copy(conv.bias, weights.get(f'{name}.bias', torch.zeros_like(conv.bias)),
                      f'{name}.bias')
                continue
            parent, index = name.rsplit('.', 1)
            norm = modules.get(f'{parent}.{int(index) + 1}')
            if not isinstance(norm, nn.BatchNorm2d):
                raise ModelLoadError(f'{name} has no bias and no batch norm after it')
            # The exporter drops all-zero initialisers (a norm that was still the identity).
            bias = weights.get(name + FUSED_BIAS_SUFFIX, torch.zeros_like(norm.bias))
            _copy(norm.bias, bias, name + FUSED_BIAS_SUFFIX)
            # Identity norm plus the fused bias while the statistics are measured.
            norm.weight.fill_(1.0)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            folded.append((conv, norm, bias))

    # First moments of each folded convolution's output over the images.
    moments = {id(conv): [0.0, 0.0, 0] for conv, _, _ in folded}

    def accumulate(conv: nn.Module, _inputs, output: torch.Tensor) -> None:
        sums = moments[id(conv)]
        values = output.double()
        sums[0] += values.sum((0, 2, 3))
        sums[1] += (values ** 2).sum((0, 2, 3))
        sums[2] += output.shape[0] * output.shape[2] * output.shape[3]

    handles = [conv.register_forward_hook(accumulate) for conv, _, _ in folded]
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                RawSSD(model)(torch.from_numpy(np.ascontiguousarray(
                    images[start:start + batch_size], dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for conv, norm, bias in folded:
            total, squares, count = moments[id(conv)]
            mean = total / count
            var = (squares / count - mean ** 2).clamp_min(1e-8)
            norm.running_mean.copy_(mean.float())
            norm.running_var.copy_(var.float())
            norm.weight.copy_(torch.sqrt(var + norm.eps).float())
            norm.bias.copy_(mean.float() + bias)
    return model.eval(), labels
