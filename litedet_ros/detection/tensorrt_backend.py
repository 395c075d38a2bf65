"""TensorRT backend (NVIDIA GPUs): builds an engine from the (Q/DQ) ONNX model and runs it.

Written against the TensorRT 10/11 Python API and cuda-python's runtime bindings. TensorRT 11
dropped implicit INT8 calibration and the INT8/FP16 builder flags, so precision comes from the
model itself: the network is created strongly typed, the symmetric Q/DQ ONNX gives an INT8
engine, the FP32 ONNX an FP32 one. Engines are cached and rebuilt when the GPU, the TensorRT
version or the ONNX file change (key stored beside the engine), or when asked to.
Nothing here is importable without ``tensorrt`` and ``cuda-python``; on this project's CPU
machines the tests skip.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from litedet_ros.detection.backends import ModelLoadError

MAX_BATCH = 8


def _check(result):
    """Unwrap a cuda-python call: raise on an error code, return the value(s)."""
    err, *values = result
    if int(err) != 0:
        raise RuntimeError(f'CUDA error {err}')
    return values[0] if len(values) == 1 else values


class TensorRTBackend:
    """TensorRT engine built from an ONNX detector (see :class:`~.backends.Backend`).

    Args:
        onnx_path: FP32 or symmetric Q/DQ INT8 ONNX from this package.
        engine_file_path: where to cache the serialized engine; default beside the ONNX,
            ``<stem>.engine``.
        force_engine_update: rebuild even if a cached engine matches.
    """

    name = 'tensorrt'

    def __init__(self, onnx_path: str | Path, engine_file_path: str | Path | None = None,
                 force_engine_update: bool = False) -> None:
        import tensorrt as trt

        try:
            from cuda.bindings import runtime as cudart
        except ImportError:  # cuda-python < 12.6
            from cuda import cudart

        self._trt, self._cudart = trt, cudart
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelLoadError(f'model file not found: {onnx_path}')
        engine_path = Path(engine_file_path or onnx_path.with_suffix('.engine'))
        self._logger = trt.Logger(trt.Logger.WARNING)
        key = self._cache_key(onnx_path)
        key_path = engine_path.with_name(engine_path.name + '.json')
        cached = (engine_path.is_file() and key_path.is_file()
                  and json.loads(key_path.read_text()) == key)
        if force_engine_update or not cached:
            engine_path.parent.mkdir(parents=True, exist_ok=True)
            engine_path.write_bytes(self._build(onnx_path))
            key_path.write_text(json.dumps(key, indent=2))
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise ModelLoadError(f'TensorRT cannot deserialize {engine_path}')
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        self._device: dict[str, tuple[int, int]] = {}  # name -> (pointer, bytes)
        logits_shape = self.engine.get_tensor_shape('logits')
        self.num_classes = int(logits_shape[-1])
        self.input_size = int(self.engine.get_tensor_shape('images')[-1])

    def _cache_key(self, onnx_path: Path) -> dict[str, str]:
        props = _check(self._cudart.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {'gpu': name.strip('\x00'), 'compute_capability': f'{props.major}.{props.minor}',
                'tensorrt': self._trt.__version__,
                'onnx_sha256': hashlib.sha256(onnx_path.read_bytes()).hexdigest()}

    def _build(self, onnx_path: Path) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(
            1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelLoadError(f'TensorRT cannot parse {onnx_path}: {errors}')
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        size = network.get_input(0).shape[-1]
        profile = builder.create_optimization_profile()
        profile.set_shape('images', (1, 3, size, size), (1, 3, size, size),
                          (MAX_BATCH, 3, size, size))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelLoadError(f'TensorRT failed to build an engine from {onnx_path}')
        return bytes(serialized)

    def _buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self._device.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _check(self._cudart.cudaFree(pointer))
            pointer = _check(self._cudart.cudaMalloc(nbytes))
            self._device[name] = (pointer, nbytes)
        return pointer

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`~.backends.Backend`; batches above ``MAX_BATCH`` are refused."""
        cudart = self._cudart
        batch = np.ascontiguousarray(batch, np.float32)
        if not 1 <= len(batch) <= MAX_BATCH:
            raise ValueError(f'batch size must be 1..{MAX_BATCH}, got {len(batch)}')
        self.context.set_input_shape('images', batch.shape)
        host = {'images': batch}
        for name in ('regressions', 'logits'):
            host[name] = np.empty(tuple(self.context.get_tensor_shape(name)), np.float32)
        for name, array in host.items():
            self.context.set_tensor_address(name, self._buffer(name, array.nbytes))
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, \
            cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self._device['images'][0], batch.ctypes.data,
                                      batch.nbytes, h2d, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError('TensorRT execution failed')
        for name in ('regressions', 'logits'):
            _check(cudart.cudaMemcpyAsync(host[name].ctypes.data, self._device[name][0],
                                          host[name].nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return host['regressions'], host['logits']
