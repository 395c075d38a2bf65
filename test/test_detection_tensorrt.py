"""TensorRT backend: needs NVIDIA's TensorRT, cuda-python and a GPU (none on the CI machines)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from litedet_ros.detection.backends import OnnxRuntimeBackend, create_backend
from litedet_ros.detection.cli import FP32_NAME, INT8_NAMES
from litedet_ros.detection.node_config import models_dir

HAVE_TENSORRT = importlib.util.find_spec('tensorrt') is not None


@pytest.mark.skipif(HAVE_TENSORRT, reason='TensorRT is installed: the GPU tests below apply')
def test_without_tensorrt_the_backend_fails_clearly():
    with pytest.raises(ImportError):
        create_backend('tensorrt', models_dir() / INT8_NAMES['sym'])


@pytest.mark.skipif(not HAVE_TENSORRT, reason='TensorRT cannot be installed here: its PyPI '
                    "wheels fetch from NVIDIA's index (unreachable) and there is no GPU")
@pytest.mark.parametrize('name', [INT8_NAMES['sym'], FP32_NAME])
def test_engine_matches_onnxruntime_and_is_cached(name, tmp_path):
    engine_path = tmp_path / 'detector.engine'
    backend = create_backend('tensorrt', models_dir() / name, engine_file_path=engine_path)
    built = engine_path.stat().st_mtime_ns
    batch = np.random.default_rng(0).uniform(-1, 1, (2, 3, 320, 320)).astype(np.float32)
    regressions, logits = backend.infer(batch)
    expected_reg, expected_logits = OnnxRuntimeBackend(models_dir() / name).infer(batch)
    np.testing.assert_allclose(logits, expected_logits, atol=0.1)
    np.testing.assert_allclose(regressions, expected_reg, atol=0.1)
    create_backend('tensorrt', models_dir() / name, engine_file_path=engine_path)
    assert engine_path.stat().st_mtime_ns == built  # cache hit
    create_backend('tensorrt', models_dir() / name, engine_file_path=engine_path,
                   force_engine_update=True)
    assert engine_path.stat().st_mtime_ns != built
