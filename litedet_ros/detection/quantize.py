"""INT8 post-training quantization into Q/DQ ONNX with ONNX Runtime's static quantizer.

Two variants, both per-channel weights, QDQ format, calibrated on held-in images (MinMax by
default):

* ``sym`` (S8S8): int8 activations and weights, all zero points 0. TensorRT (10 and 11, which
  only supports explicit Q/DQ INT8) builds an INT8 engine from it; it is the shipped INT8 artifact.
* ``asym`` (U8S8): uint8 activations with zero points, int8 weights: usually faster with ONNX
  Runtime on x86 CPUs (VNNI/AVX2 u8s8 kernels), not for TensorRT.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
import tempfile

import numpy as np

VARIANTS = ('sym', 'asym')
CALIBRATION_METHODS = ('minmax', 'percentile', 'entropy')


class _CalibrationReader:
    """Feeds preprocessed ``float32[3, S, S]`` images to the quantizer one by one."""

    def __init__(self, images: Iterable[np.ndarray]) -> None:
        self._images: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        return None if image is None else {'images': image[None].astype(np.float32)}


def quantize_int8(fp32_path: str | Path, out_path: str | Path,
                  calibration_images: Iterable[np.ndarray], variant: str = 'sym',
                  method: str = 'minmax') -> Path:
    """Quantize an FP32 detector ONNX model to INT8 Q/DQ.

    Args:
        fp32_path: FP32 ONNX from :func:`litedet_ros.detection.export.export_onnx`.
        out_path: output ONNX file.
        calibration_images: preprocessed ``float32[3, S, S]`` inputs (>= 200 recommended), from
            the training split, never the test split.
        variant: ``sym`` (S8S8, TensorRT-compatible; activation ranges = moving average of the
            per-image extrema) or ``asym`` (U8S8; ranges = extrema over all images).
        method: activation range calibration: ``minmax``, ``percentile`` (99.999 %) or
            ``entropy``.

    Returns:
        ``out_path``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if variant not in VARIANTS:
        raise ValueError(f'unknown INT8 variant {variant!r}, expected one of {VARIANTS}')
    if method not in CALIBRATION_METHODS:
        raise ValueError(f'unknown calibration method {method!r}, expected one of '
                         f'{CALIBRATION_METHODS}')
    symmetric = variant == 'sym'
    calibration = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
                   'entropy': CalibrationMethod.Entropy}[method]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / 'prepared.onnx'
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(out_path), _CalibrationReader(calibration_images),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=calibration,
            # Symmetric int8 spends half its codes on the negative side that ReLU6 outputs never
            # reach, so outlier maxima cost it twice as much: average the per-image extrema.
            extra_options={'ActivationSymmetric': symmetric, 'WeightSymmetric': True,
                           'CalibMovingAverage': symmetric})
    return out_path
