"""COCO evaluation of any backend with pycocotools: mAP, precision/recall, PR curves."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import io
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from litedet_ros.detection.backends import Backend
from litedet_ros.detection.data import DetectionDataset
from litedet_ros.detection.postprocess import PostprocessConfig, decode_detections
from litedet_ros.detection.preprocess import normalize
from litedet_ros.detection.types import Detections

# Low threshold and many boxes for mAP, as COCO evaluation expects full score ranges.
EVAL_CONFIG = PostprocessConfig(score_threshold=0.01, nms_threshold=0.45, topk_candidates=200,
                                max_detections=100)


@dataclass(frozen=True)
class EvalResult:
    """COCO metrics of one model on one split.

    Attributes:
        map: mAP@[.5:.95] (COCO AP), fraction 0-1.
        map50: mAP@.5, fraction 0-1.
        precision: micro-averaged precision at IoU 0.5 at ``threshold``.
        recall: micro-averaged recall at IoU 0.5 at ``threshold``.
        threshold: the operating score threshold.
        ap50_per_class: AP@.5 of each class, ``float[K]``.
        pr_curves: interpolated precision at IoU 0.5 per class, ``float[K, 101]`` over
            :attr:`recall_points` (-1 where a class has no ground truth).
        recall_points: ``float[101]`` recall values 0, 0.01, ..., 1.
        num_images: images evaluated.
    """

    map: float
    map50: float
    precision: float
    recall: float
    threshold: float
    ap50_per_class: np.ndarray
    pr_curves: np.ndarray
    recall_points: np.ndarray
    num_images: int


def predict(backend: Backend, data: DetectionDataset, anchors: np.ndarray,
            config: PostprocessConfig = EVAL_CONFIG, batch_size: int = 16) -> list[Detections]:
    """Run a backend over a dataset (images already resized) and decode the detections."""
    detections = []
    for start in range(0, len(data), batch_size):
        resized = data.images[start:start + batch_size]
        batch = np.stack([normalize(image) for image in resized])
        regressions, logits = backend.infer(batch)
        for j in range(len(batch)):
            width, height = data.sizes[start + j]
            detections.append(decode_detections(
                regressions[j], logits[j], anchors, data.labels, (int(width), int(height)),
                resized.shape[1], config))
    return detections


def coco_evaluate(data: DetectionDataset, detections: list[Detections],
                  threshold: float = 0.5) -> EvalResult:
    """Score detections against the dataset's COCO ground truth.

    Args:
        data: the evaluated split (ground truth read from its ``annotations.json``).
        detections: one result per image of ``data``, in order.
        threshold: operating score threshold for precision/recall.
    """
    if len(detections) != len(data):
        raise ValueError(f'{len(detections)} results for {len(data)} images')
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data.annotations_path))
        results = [
            {'image_id': int(image_id), 'category_id': int(c) + 1,
             'bbox': [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], 'score': float(s)}
            for image_id, det in zip(data.image_ids, detections)
            for (x1, y1, x2, y2), s, c in zip(det.boxes, det.scores, det.class_ids)]
        dt = gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(gt, dt, 'bbox')
        evaluator.params.imgIds = [int(i) for i in data.image_ids]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # precision[T, R, K, A, M]: IoU 0.5, all areas, 100 detections.
    curves = evaluator.eval['precision'][0, :, :, 0, -1].T
    ap50 = np.array([c[c > -1].mean() if (c > -1).any() else -1.0 for c in curves])
    precision, recall = _operating_point(evaluator, threshold)
    return EvalResult(
        map=max(float(evaluator.stats[0]), 0.0), map50=max(float(evaluator.stats[1]), 0.0),
        precision=precision, recall=recall, threshold=threshold, ap50_per_class=ap50,
        pr_curves=curves, recall_points=np.asarray(evaluator.params.recThrs),
        num_images=len(data))


def _operating_point(evaluator: COCOeval, threshold: float) -> tuple[float, float]:
    """Micro precision and recall at IoU 0.5 over detections scoring >= ``threshold``."""
    tp = fp = n_gt = 0
    max_det = evaluator.params.maxDets[-1]
    for e in evaluator.evalImgs:
        if e is None or e['aRng'] != evaluator.params.areaRng[0] or e['maxDet'] != max_det:
            continue
        kept = (np.asarray(e['dtScores']) >= threshold) & ~np.asarray(e['dtIgnore'][0], bool)
        matched = np.asarray(e['dtMatches'][0]) > 0
        tp += int((kept & matched).sum())
        fp += int((kept & ~matched).sum())
        n_gt += int((~np.asarray(e['gtIgnore'], bool)).sum())
    return (tp / (tp + fp) if tp + fp else 0.0), (tp / n_gt if n_gt else 0.0)


def plot_pr_curves(result: EvalResult, labels: tuple[str, ...], path: str | Path,
                   title: str = '') -> Path:
    """Save the per-class precision/recall curves at IoU 0.5 as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for label, curve, ap in zip(labels, result.pr_curves, result.ap50_per_class):
        valid = curve > -1
        ax.plot(result.recall_points[valid], curve[valid], label=f'{label} AP50={ap:.3f}')
    ax.plot([result.recall], [result.precision], 'k*', markersize=12,
            label=f'operating point @ {result.threshold:.2f}')
    ax.set(xlabel='recall', ylabel='precision', xlim=(0, 1), ylim=(0, 1.02),
           title=title or f'PR @ IoU 0.5: mAP50={result.map50:.3f} mAP={result.map:.3f}')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower left', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
