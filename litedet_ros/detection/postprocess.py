"""Box decoding and per-class NMS outside the network graph, shared by every backend.

Same steps as torchvision's ``SSD.postprocess_detections``, vectorised over classes: decode with
``BoxCoder(weights=(10, 10, 5, 5))``, clip to the input, softmax scores, per class a score
threshold and the top-k candidates, then class-aware NMS (``torchvision.ops.batched_nms``) and
the best ``max_detections``; boxes left empty by clipping are dropped. Boxes are finally scaled
from network-input pixels to original-image pixels (plain resize, see
:mod:`litedet_ros.detection.preprocess`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import boxes as box_ops

from litedet_ros.detection.types import Detections

_BOX_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds of the decoding step.

    Attributes:
        score_threshold: minimum class probability kept, in ``[0, 1)``.
        nms_threshold: IoU above which a lower-scored box of the same class is dropped, ``(0, 1]``.
        topk_candidates: boxes kept per class before NMS, >= 1.
        max_detections: detections kept after NMS, >= 1.
    """

    score_threshold: float = 0.3
    nms_threshold: float = 0.45
    topk_candidates: int = 200
    max_detections: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f'score_threshold must be in [0, 1), got {self.score_threshold}')
        if not 0.0 < self.nms_threshold <= 1.0:
            raise ValueError(f'nms_threshold must be in (0, 1], got {self.nms_threshold}')
        if self.topk_candidates < 1 or self.max_detections < 1:
            raise ValueError('topk_candidates and max_detections must be >= 1, got '
                             f'{self.topk_candidates} and {self.max_detections}')


def single_threaded_decoding() -> None:
    """Run torch's (decoding) ops on one thread in this process.

    The decoding tensors are small (A x K): on a loaded 2-core CPU, torch's intra-op thread
    hand-off made one call ~47 ms instead of ~3 ms. Call it where torch only decodes (the
    ONNX Runtime and TensorRT paths), not where a torch model also runs.
    """
    torch.set_num_threads(1)


def decode_detections(
    regressions: np.ndarray,
    logits: np.ndarray,
    anchors: np.ndarray,
    labels: tuple[str, ...],
    image_size: tuple[int, int],
    input_size: int,
    config: PostprocessConfig = PostprocessConfig(),
    stamp_ns: int = 0,
    frame_id: str = '',
) -> Detections:
    """Decode one image's raw network outputs into detections in original-image pixels.

    Args:
        regressions: ``float32[A, 4]`` box offsets relative to ``anchors``.
        logits: ``float32[A, K + 1]`` class logits, column 0 is background.
        anchors: ``float32[A, 4]`` default boxes ``(x1, y1, x2, y2)``, network-input pixels.
        labels: the K class names (background excluded).
        image_size: ``(width, height)`` of the original image, pixels.
        input_size: network input side S, pixels.
        config: thresholds.
        stamp_ns: source image stamp, copied to the result.
        frame_id: source image frame, copied to the result.

    Returns:
        Detections sorted by score, ``class_ids`` 0-based into ``labels``.
    """
    if logits.shape[-1] != len(labels) + 1:
        raise ValueError(f'model has {logits.shape[-1] - 1} classes but {len(labels)} labels')
    rel = torch.from_numpy(np.ascontiguousarray(regressions, dtype=np.float32))
    boxes = _BOX_CODER.decode_single(rel, torch.from_numpy(anchors))
    boxes = box_ops.clip_boxes_to_image(boxes, (input_size, input_size))
    scores = torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=-1)[:, 1:]
    k = min(config.topk_candidates, scores.shape[0])
    top_scores, top_idx = scores.T.topk(k, dim=1)  # [K, k] best anchors of each class
    keep = top_scores > config.score_threshold
    cls = torch.nonzero(keep)[:, 0]
    cand_scores = top_scores[keep]
    cand_boxes = boxes[top_idx[keep]]
    valid = box_ops.remove_small_boxes(cand_boxes, 1e-2)  # empty after clipping to the image
    cls, cand_scores, cand_boxes = cls[valid], cand_scores[valid], cand_boxes[valid]
    order = box_ops.batched_nms(cand_boxes, cand_scores, cls, config.nms_threshold)
    order = order[:config.max_detections]
    width, height = image_size
    scale = torch.tensor([width, height, width, height], dtype=torch.float32) / input_size
    out_boxes = (cand_boxes[order] * scale).numpy()
    out_cls = cls[order].numpy()
    return Detections(
        boxes=out_boxes, scores=cand_scores[order].numpy(), class_ids=out_cls,
        labels=tuple(labels[i] for i in out_cls), image_size=(width, height),
        stamp_ns=stamp_ns, frame_id=frame_id)
