"""The shipped models: INT8 agrees with FP32 on a fixed set of rendered workcell images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from litedet_ros.detection.backends import OnnxRuntimeBackend
from litedet_ros.detection.cli import FP32_NAME, INT8_NAMES
from litedet_ros.detection.data import load_dataset
from litedet_ros.detection.detector import load_anchors, load_labels
from litedet_ros.detection.evaluate import coco_evaluate, predict
from litedet_ros.detection.node_config import models_dir
from litedet_ros.detection.postprocess import PostprocessConfig

pytestmark = pytest.mark.skipif(
    not all((models_dir() / name).is_file() for name in (FP32_NAME, *INT8_NAMES.values())),
    reason='the shipped models are not in models/ (see models/MODEL_CARD.md to build them)')

# Scene seeds far from the train/val/test ranges of the shipped model ([0, 3e5)).
SEED = 900_000
#: Share of the FP32 operating-point boxes an INT8 model must find again (IoU > 0.7, same class).
#: The symmetric model is TensorRT's; on ONNX Runtime its S8S8 convolutions run on kernels that
#: depend on the CPU: over 90 % with AVX2 alone, 136 of 153 (88.9 %) on an AVX512-VNNI CPU
#: (its mAP@.5 there 0.897 against FP32's 0.881), so it is held to 85 %.
AGREEMENT = {'sym': 0.85, 'asym': 0.9}


@pytest.fixture(scope='module')
def fixed_set(tmp_path_factory):
    sim = pytest.importorskip('litedet_ros.sim.dataset', reason='MuJoCo is not available')
    root = tmp_path_factory.mktemp('fixed_set')
    sim.generate_dataset(root, images=8, seed=SEED, views_per_scene=4, progress=False)
    return load_dataset(root, labels=load_labels(models_dir() / 'labels.txt'))


def _run(name, data):
    backend = OnnxRuntimeBackend(models_dir() / name)
    anchors = load_anchors(models_dir() / 'anchors.npy')
    return (predict(backend, data, anchors),
            predict(backend, data, anchors, PostprocessConfig(score_threshold=0.5)))


def test_int8_agrees_with_fp32(fixed_set):
    fp32_all, fp32_op = _run(FP32_NAME, fixed_set)
    fp32_map50 = coco_evaluate(fixed_set, fp32_all).map50
    assert fp32_map50 > 0.6  # the shipped model detects the workcell's parts at all
    for variant, name in INT8_NAMES.items():
        int8_all, int8_op = _run(name, fixed_set)
        assert coco_evaluate(fixed_set, int8_all).map50 >= 0.95 * fp32_map50, name
        matched = total = 0
        for a, b in zip(fp32_op, int8_op):  # operating-point detections, image by image
            total += len(a)
            if len(a) and len(b):
                iou = box_iou(torch.from_numpy(a.boxes), torch.from_numpy(b.boxes)).numpy()
                same = a.class_ids[:, None] == b.class_ids[None, :]
                matched += int(((iou > 0.7) & same).any(axis=1).sum())
        assert total > 10 and matched >= AGREEMENT[variant] * total, (name, matched, total)


def test_shipped_files_are_consistent():
    labels = load_labels(models_dir() / 'labels.txt')
    anchors = load_anchors(models_dir() / 'anchors.npy')
    backend = OnnxRuntimeBackend(models_dir() / INT8_NAMES['sym'])
    regressions, logits = backend.infer(np.zeros((2, 3, 320, 320), np.float32))
    assert regressions.shape == (2, len(anchors), 4)
    assert logits.shape == (2, len(anchors), len(labels) + 1)
