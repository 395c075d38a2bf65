"""Export the backbone + head of a trained SSD to ONNX, with its anchors beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection.ssd import SSD

from litedet_ros.detection.detector import ANCHORS_FILE, LABELS_FILE
from litedet_ros.detection.model import INPUT_SIZE, RawSSD, model_anchors

OPSET = 18


def export_onnx(ssd: SSD, onnx_path: str | Path, labels: tuple[str, ...]) -> Path:
    """Write ``RawSSD(ssd)`` as a single-file ONNX model plus ``anchors.npy`` and ``labels.txt``.

    The graph has input ``images`` ``float32[batch, 3, 320, 320]`` (dynamic batch) and outputs
    ``regressions`` ``float32[batch, A, 4]`` and ``logits`` ``float32[batch, A, K + 1]``; it is
    exported with the dynamo exporter at opset 18, weights inside the file.

    Args:
        ssd: trained model (any mode; exported in eval mode).
        onnx_path: output file; its directory receives the anchors and labels files.
        labels: the K class names.

    Returns:
        The ONNX path.
    """
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    ssd = ssd.eval()
    raw = RawSSD(ssd).eval()
    example = torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE)
    batch = torch.export.Dim('batch', min=1, max=64)
    program = torch.onnx.export(
        raw, (example,), dynamo=True, opset_version=OPSET, external_data=False,
        input_names=['images'], output_names=['regressions', 'logits'],
        dynamic_shapes={'images': {0: batch}}, optimize=True, verbose=False)
    program.save(str(onnx_path), external_data=False)
    np.save(onnx_path.parent / ANCHORS_FILE, model_anchors(ssd).numpy())
    (onnx_path.parent / LABELS_FILE).write_text(''.join(f'{name}\n' for name in labels))
    return onnx_path
