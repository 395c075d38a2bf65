"""ONNX export parity (torch vs ONNX Runtime), INT8 Q/DQ quantization, backends and Detector."""

from pathlib import Path

from detection_synthetic import LABELS, draw_scene, varied_model
import numpy as np
import onnx
from onnx import numpy_helper
import pytest
import torch

from litedet_ros.detection.backends import (
    ModelLoadError,
    OnnxRuntimeBackend,
    TorchBackend,
    create_backend,
)
from litedet_ros.detection.detector import Detector, load_anchors, load_labels
from litedet_ros.detection.export import export_onnx
from litedet_ros.detection.model import RawSSD, model_anchors
from litedet_ros.detection.postprocess import PostprocessConfig
from litedet_ros.detection.preprocess import preprocess
from litedet_ros.detection.quantize import quantize_int8
from litedet_ros.detection.train import load_checkpoint, save_checkpoint
from litedet_ros.detection.unfold import model_from_onnx
from litedet_ros.errors import InvalidImageError


@pytest.fixture(scope='module')
def images():
    rng = np.random.default_rng(3)
    return [draw_scene(rng)[0] for _ in range(24)]


@pytest.fixture(scope='module')
def model():
    return varied_model()


@pytest.fixture(scope='module')
def exported(model, images, tmp_path_factory):
    out = tmp_path_factory.mktemp('model')
    fp32 = export_onnx(model, out / 'fp32.onnx', LABELS)
    calibration = [preprocess(image) for image in images[:16]]
    return {'fp32': fp32,
            'sym': quantize_int8(fp32, out / 'int8_sym.onnx', calibration, 'sym'),
            'asym': quantize_int8(fp32, out / 'int8_asym.onnx', calibration, 'asym')}


def test_onnx_matches_torch(model, exported, images):
    batch = np.stack([preprocess(image) for image in images[:3]])  # dynamic batch of 3
    regressions, logits = OnnxRuntimeBackend(exported['fp32']).infer(batch)
    with torch.no_grad():
        expected_reg, expected_logits = RawSSD(model)(torch.from_numpy(batch))
    scale = float(expected_logits.abs().max())
    assert scale > 1.0
    assert np.abs(logits - expected_logits.numpy()).max() < 1e-4 * scale
    np.testing.assert_allclose(regressions, expected_reg.numpy(),
                               atol=1e-4 * float(expected_reg.abs().max()))


def test_export_writes_anchors_and_labels(model, exported):
    directory = Path(exported['fp32']).parent
    np.testing.assert_array_equal(load_anchors(directory / 'anchors.npy'),
                                  model_anchors(model).numpy())
    assert load_labels(directory / 'labels.txt') == LABELS


def test_int8_models_are_qdq_with_the_right_zero_points(exported):
    for variant, dtype in (('sym', np.int8), ('asym', np.uint8)):
        graph = onnx.load(str(exported[variant])).graph
        ops = {node.op_type for node in graph.node}
        assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
        inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        activation_zero_points = [
            inits[node.input[2]] for node in graph.node
            if node.op_type == 'QuantizeLinear' and len(node.input) > 2]
        assert activation_zero_points
        assert all(zp.dtype == dtype for zp in activation_zero_points)
        if variant == 'sym':  # what TensorRT requires
            assert all((zp == 0).all() for zp in activation_zero_points)
    assert Path(exported['asym']).stat().st_size < 0.4 * Path(exported['fp32']).stat().st_size


def test_int8_outputs_follow_fp32(exported, images):
    batch = np.stack([preprocess(image) for image in images[16:20]])  # not calibration images
    _, fp32 = OnnxRuntimeBackend(exported['fp32']).infer(batch)
    for variant in ('sym', 'asym'):
        _, int8 = OnnxRuntimeBackend(exported[variant]).infer(batch)
        correlation = np.corrcoef(fp32.ravel(), int8.ravel())[0, 1]
        assert correlation > 0.8, variant  # an untrained net; the shipped one: see models test


def test_checkpoint_rebuilt_from_onnx_reproduces_it(exported, images, tmp_path):
    """ONNX -> .pt (batch norms unfolded) -> ONNX is lossless; other files are refused."""
    trained = varied_model()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # batch norms as training leaves them, so the export folds real ones
        for norm in (m for m in trained.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            for tensor, low, high in ((norm.running_mean, -0.5, 0.5),
                                      (norm.running_var, 0.5, 2.0), (norm.weight, 0.5, 1.5),
                                      (norm.bias, -0.2, 0.2)):
                tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))
    fp32 = export_onnx(trained, tmp_path / 'fp32.onnx', LABELS)
    batch = np.stack([preprocess(image) for image in images])
    model, labels = model_from_onnx(fp32, batch[:16])
    assert labels == LABELS
    folded = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert folded and all(float(m.running_var.std()) > 0 for m in folded)  # measured, not unit
    save_checkpoint(tmp_path / 'rebuilt.pt', model, labels, 1.0)
    reloaded, _, _ = load_checkpoint(tmp_path / 'rebuilt.pt')
    again = export_onnx(reloaded, tmp_path / 'again.onnx', labels)
    held_out = batch[16:20]
    for path in (fp32, again):
        regressions, logits = OnnxRuntimeBackend(path).infer(held_out)
        with torch.no_grad():
            expected_reg, expected_logits = RawSSD(model.eval())(torch.from_numpy(held_out))
        assert np.abs(logits - expected_logits.numpy()).max() < 1e-4 * float(
            expected_logits.abs().max())
        assert np.abs(regressions - expected_reg.numpy()).max() < 1e-4 * float(
            expected_reg.abs().max())
    with pytest.raises(ModelLoadError, match='missing in the ONNX file'):
        model_from_onnx(exported['asym'], batch[:4])  # INT8: weights are quantized tensors
    with pytest.raises(ModelLoadError, match='expected shape'):
        model_from_onnx(fp32, batch[:4], width_mult=0.5)
    with pytest.raises(ModelLoadError, match='>= 2 images'):
        model_from_onnx(fp32, batch[:1])


def test_backends_share_preprocessing_and_decoding(model, exported, images):
    anchors = load_anchors(Path(exported['fp32']).parent / 'anchors.npy')
    config = PostprocessConfig(score_threshold=0.2)
    by_backend = [Detector(backend, anchors, LABELS, config).detect(images[0], 'rgb8')[0]
                  for backend in (TorchBackend(model), OnnxRuntimeBackend(exported['fp32']))]
    assert len(by_backend[0]) > 0
    assert len(by_backend[0]) == len(by_backend[1])
    np.testing.assert_allclose(by_backend[0].boxes, by_backend[1].boxes, atol=0.05)
    bgr = images[0][:, :, ::-1].copy()
    detector = Detector(OnnxRuntimeBackend(exported['fp32']), anchors, LABELS, config)
    from_bgr, times = detector.detect(bgr, 'bgr8', stamp_ns=5, frame_id='cam')
    np.testing.assert_allclose(from_bgr.boxes, by_backend[1].boxes, atol=1e-4)
    assert from_bgr.stamp_ns == 5 and times.total > 0
    mono, _ = detector.detect(images[0][:, :, 0], 'mono8')
    assert mono.image_size == (640, 480)


def test_detector_refuses_bad_images(exported):
    detector = Detector.from_files(exported['fp32'])
    with pytest.raises(InvalidImageError):
        detector.detect(np.zeros((480, 640, 3), np.uint8), 'rgba8')
    with pytest.raises(InvalidImageError):
        detector.detect(np.zeros((0, 640, 3), np.uint8), 'rgb8')
    with pytest.raises(InvalidImageError):
        detector.detect(np.zeros((480, 640), np.uint8), 'bgr8')
    with pytest.raises(InvalidImageError):
        detector.detect(np.zeros((480, 640, 3), np.float32), 'rgb8')


def test_missing_corrupt_or_inconsistent_model_files(exported, tmp_path):
    with pytest.raises(ModelLoadError, match='not found'):
        create_backend('onnxruntime', tmp_path / 'missing.onnx')
    corrupt = tmp_path / 'corrupt.onnx'
    corrupt.write_bytes(b'not an onnx model')
    with pytest.raises(ModelLoadError, match='cannot load'):
        create_backend('onnxruntime', corrupt)
    wrong_labels = tmp_path / 'labels.txt'
    wrong_labels.write_text('a\nb\n')
    with pytest.raises(ModelLoadError, match='labels'):
        Detector.from_files(exported['fp32'], labels_path=wrong_labels)
    with pytest.raises(ModelLoadError, match='anchors'):
        Detector.from_files(exported['fp32'], anchors_path=tmp_path / 'none.npy')
    with pytest.raises(ValueError, match='unknown backend'):
        create_backend('openvino', exported['fp32'])
