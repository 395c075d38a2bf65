"""Inference backends behind one interface: raw SSD outputs from preprocessed batches.

Every backend takes the same ``float32[B, 3, S, S]`` batch made by
:func:`litedet_ros.detection.preprocess.preprocess` and returns the raw ``(regressions, logits)``
of :class:`litedet_ros.detection.model.RawSSD`; decoding and NMS are shared
(:mod:`litedet_ros.detection.postprocess`). ``onnxruntime`` is the CPU default, ``torch`` the
reference, ``tensorrt`` (NVIDIA) lives in :mod:`litedet_ros.detection.tensorrt_backend`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from litedet_ros.errors import LitedetError

BACKENDS = ('onnxruntime', 'tensorrt', 'torch')
#: Shipped model precisions a node or launch file may ask for.
PRECISIONS = ('int8', 'fp32')


class ModelLoadError(LitedetError):
    """A model, checkpoint, labels or anchors file is missing, corrupt or inconsistent."""


class Backend(Protocol):
    """What the detector needs from an inference engine."""

    name: str
    num_classes: int  # K + 1, background included

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``float32[B, A, 4]`` regressions and ``float32[B, A, K + 1]`` logits."""


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f'model file not found: {path}')
    return path


class OnnxRuntimeBackend:
    """ONNX Runtime on CPU (FP32 or Q/DQ INT8 ONNX files).

    Args:
        model_path: ONNX file with input ``images`` and outputs ``regressions``, ``logits``.
        num_threads: intra-op threads (the project measures on 2).
        spinning: let the intra-op threads spin-wait for work after a call (ONNX Runtime's
            default: lowest latency for one model; off when several sessions take turns, whose
            idle spinning threads would otherwise steal the cores from the running one).
    """

    name = 'onnxruntime'

    def __init__(self, model_path: str | Path, num_threads: int = 2, spinning: bool = True
                 ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '1' if spinning else '0')
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(_existing(model_path)), options, providers=['CPUExecutionProvider'])
        except ModelLoadError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(f'cannot load ONNX model {model_path}: {exc}') from exc
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if set(outputs) != {'regressions', 'logits'}:
            raise ModelLoadError(f'{model_path} has outputs {sorted(outputs)}, '
                                 "expected ['logits', 'regressions']")
        self.num_classes = int(outputs['logits'][-1])
        self.input_size = int(self.session.get_inputs()[0].shape[-1])

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Backend`."""
        regressions, logits = self.session.run(
            ['regressions', 'logits'], {'images': np.ascontiguousarray(batch, np.float32)})
        return regressions, logits


class TorchBackend:
    """Reference backend: the PyTorch model itself (e.g. during training or from a checkpoint).

    Args:
        model: torchvision SSD from :func:`litedet_ros.detection.model.ssdlite320_mobilenet_v2`;
            it is switched to eval mode.
    """

    name = 'torch'

    def __init__(self, model) -> None:
        import torch

        from litedet_ros.detection.model import INPUT_SIZE, RawSSD

        self._torch = torch
        self.model = RawSSD(model.eval())
        self.num_classes = model.head.classification_head.num_columns
        self.input_size = INPUT_SIZE

    @classmethod
    def from_checkpoint(cls, checkpoint_path: str | Path, num_threads: int = 2) -> TorchBackend:
        """Load a ``.pt`` checkpoint written by :mod:`litedet_ros.detection.train`."""
        import torch

        from litedet_ros.detection.train import load_checkpoint

        torch.set_num_threads(num_threads)
        return cls(load_checkpoint(_existing(checkpoint_path))[0])

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Backend`."""
        with self._torch.inference_mode():
            regressions, logits = self.model(self._torch.from_numpy(
                np.ascontiguousarray(batch, np.float32)))
        return regressions.numpy(), logits.numpy()


def create_backend(name: str, model_path: str | Path, num_threads: int = 2,
                   engine_file_path: str | Path | None = None,
                   force_engine_update: bool = False) -> Backend:
    """Create a backend by name.

    Args:
        name: one of :data:`BACKENDS`.
        model_path: ONNX file (``onnxruntime``, ``tensorrt``) or checkpoint (``torch``).
        num_threads: CPU threads for ``onnxruntime`` and ``torch``.
        engine_file_path: TensorRT engine cache file; default beside the ONNX file.
        force_engine_update: rebuild the TensorRT engine even if a matching cache exists.

    Raises:
        ValueError: unknown backend name.
        ModelLoadError: the model cannot be loaded.
    """
    if name == 'onnxruntime':
        return OnnxRuntimeBackend(model_path, num_threads)
    if name == 'torch':
        return TorchBackend.from_checkpoint(model_path, num_threads)
    if name == 'tensorrt':
        from litedet_ros.detection.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model_path, engine_file_path, force_engine_update)
    raise ValueError(f'unknown backend {name!r}, expected one of {BACKENDS}')
