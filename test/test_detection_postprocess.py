"""Decode + NMS outside the graph agrees with torchvision's own SSD postprocessing."""

from detection_synthetic import varied_model
import numpy as np
import pytest
import torch
from torchvision.ops import boxes as box_ops

from litedet_ros.detection.model import INPUT_SIZE, RawSSD, model_anchors
from litedet_ros.detection.postprocess import PostprocessConfig, decode_detections

LABELS = ('box', 'can', 'ring')


@pytest.fixture(scope='module')
def model():
    return varied_model(len(LABELS) + 1)


def test_decode_matches_torchvision_postprocess(model):
    torch.manual_seed(1)
    image = torch.rand(3, INPUT_SIZE, INPUT_SIZE)
    model.score_thresh, model.nms_thresh = 0.3, 0.45
    model.topk_candidates, model.detections_per_img = 200, 1000
    with torch.no_grad():
        expected = model([image])[0]
        regressions, logits = RawSSD(model)(((image - 0.5) / 0.5)[None])
    # torchvision keeps boxes that clipping to the image left empty; decode_detections drops them
    valid = box_ops.remove_small_boxes(expected['boxes'], 1e-2)
    assert len(valid) < len(expected['boxes'])  # this untrained model does produce some
    expected = {key: value[valid] for key, value in expected.items()}
    config = PostprocessConfig(score_threshold=0.3, nms_threshold=0.45, topk_candidates=200,
                               max_detections=1000)
    detections = decode_detections(
        regressions[0].numpy(), logits[0].numpy(), model_anchors(model).numpy(), LABELS,
        (INPUT_SIZE, INPUT_SIZE), INPUT_SIZE, config, stamp_ns=7, frame_id='cam')
    assert len(expected['boxes']) > 5  # the comparison is not vacuous
    assert len(detections) == len(expected['boxes'])
    np.testing.assert_allclose(detections.boxes, expected['boxes'].numpy(), atol=1e-3)
    np.testing.assert_allclose(detections.scores, expected['scores'].numpy(), atol=1e-6)
    np.testing.assert_array_equal(detections.class_ids, expected['labels'].numpy() - 1)
    assert detections.labels == tuple(LABELS[i] for i in detections.class_ids)
    assert (detections.stamp_ns, detections.frame_id) == (7, 'cam')


def test_boxes_are_scaled_to_the_original_image():
    anchors = np.array([[100.0, 40.0, 140.0, 120.0]], np.float32)
    logits = np.array([[0.0, 5.0]], np.float32)
    detections = decode_detections(np.zeros((1, 4), np.float32), logits, anchors, ('box',),
                                   (640, 480), 320)
    np.testing.assert_allclose(detections.boxes, [[200.0, 60.0, 280.0, 180.0]], atol=1e-4)
    assert detections.image_size == (640, 480)


def test_thresholds_filter_and_cap():
    anchors = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [100, 100, 120, 120]], np.float32)
    logits = np.array([[0, 4, 0], [0, 3, 0], [0, 0, 0.1]], np.float32)
    regressions = np.zeros((3, 4), np.float32)
    detections = decode_detections(regressions, logits, anchors, ('a', 'b'), (320, 320), 320,
                                   PostprocessConfig(score_threshold=0.5, nms_threshold=0.5))
    assert len(detections) == 1  # the overlapping 'a' box is suppressed, the weak 'b' dropped
    capped = decode_detections(regressions, logits, anchors, ('a', 'b'), (320, 320), 320,
                               PostprocessConfig(score_threshold=0.0, nms_threshold=1.0,
                                                 max_detections=2))
    assert len(capped) == 2 and capped.scores[0] >= capped.scores[1]


@pytest.mark.parametrize('kwargs', [
    {'score_threshold': 1.0}, {'score_threshold': -0.1}, {'nms_threshold': 0.0},
    {'topk_candidates': 0}, {'max_detections': 0}])
def test_config_refuses_bad_values(kwargs):
    with pytest.raises(ValueError):
        PostprocessConfig(**kwargs)


def test_labels_must_match_the_model():
    with pytest.raises(ValueError, match='labels'):
        decode_detections(np.zeros((1, 4), np.float32), np.zeros((1, 3), np.float32),
                          np.zeros((1, 4), np.float32), ('only-one',), (10, 10), 320)
