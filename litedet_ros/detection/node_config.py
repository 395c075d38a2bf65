"""Validated parameters of ``detector_node`` (ROS-free)."""

from __future__ import annotations

from dataclasses import dataclass, fields
import os
from pathlib import Path
import sys

from litedet_ros.detection.backends import BACKENDS, PRECISIONS
from litedet_ros.detection.detector import Detector
from litedet_ros.detection.postprocess import PostprocessConfig

SHIPPED_MODELS = {
    ('onnxruntime', 'fp32'): 'ssdlite320_mnv2_fp32.onnx',
    ('onnxruntime', 'int8'): 'ssdlite320_mnv2_int8_asym.onnx',
    ('tensorrt', 'fp32'): 'ssdlite320_mnv2_fp32.onnx',
    ('tensorrt', 'int8'): 'ssdlite320_mnv2_int8_sym.onnx',
}
STAGES = ('preprocess', 'inference', 'postprocess', 'total')


def models_dir() -> Path:
    """Return the directory of the shipped models.

    The source tree (``<repo>/models``) first, then ``<prefix>/share/litedet_ros/models`` for
    ``sys.prefix`` and every ``AMENT_PREFIX_PATH`` entry; the first one holding ``labels.txt``
    (the source tree's if none does).
    """
    prefixes = [sys.prefix, *filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(':'))]
    candidates = [Path(__file__).resolve().parents[2] / 'models',
                  *(Path(p) / 'share' / 'litedet_ros' / 'models' for p in prefixes)]
    return next((c for c in candidates if (c / 'labels.txt').is_file()), candidates[0])

DESCRIPTIONS = {
    'model_file_path': 'ONNX model (onnxruntime, tensorrt) or .pt checkpoint (torch); empty: '
                       'the shipped model for backend and precision',
    'engine_file_path': 'TensorRT engine cache; empty: beside the ONNX model',
    'force_engine_update': 'rebuild the TensorRT engine even if the cache matches',
    'backend': f'inference backend, one of {", ".join(BACKENDS)}',
    'precision': 'shipped model to load when model_file_path is empty: int8 (ONNX Runtime: '
                 'asymmetric U8S8, TensorRT: symmetric S8S8 Q/DQ) or fp32',
    'labels_file': 'class names, one per line; empty: labels.txt beside the model',
    'confidence_threshold': 'minimum detection score, [0, 1)',
    'nms_threshold': 'IoU above which a weaker box of the same class is suppressed, (0, 1]',
    'max_detections': 'detections kept per image, >= 1',
    'clahe': 'equalise lightness with CLAHE before inference',
    'num_threads': 'CPU threads of the onnxruntime and torch backends, >= 1',
    'max_frame_age': 'drop images older than this many seconds on arrival (0: never), s',
    'detect_while_picking': 'also detect images taken while pick_status says a pick is under '
                            'way (the controller takes no grasps of them); without pick_status '
                            'every image is detected',
    'await_grasps': 'one image in flight: after publishing detections, skip images until the '
                    'grasps of that image (or a later one) arrive, at most this many wall '
                    'seconds, while some node publishes grasps (0: detect every image), s',
    'publish_debug_image': 'publish detections/image with the boxes drawn (when subscribed)',
    'stats_period': 'seconds between latency statistics logs and messages, > 0',
}


@dataclass(frozen=True)
class DetectorNodeConfig:
    """Every parameter of ``detector_node``; see :data:`DESCRIPTIONS`."""

    model_file_path: str = ''
    engine_file_path: str = ''
    force_engine_update: bool = False
    backend: str = 'onnxruntime'
    precision: str = 'int8'
    labels_file: str = ''
    # 0.3, not 0.5: in a dense bin the parts half hidden under others score low, and a part never
    # detected is never picked, while the grasp planner gives a false box no grasp (session 17:
    # the parts left undetected at the ends of 50 rounds fell from 111 to 78-81)
    confidence_threshold: float = 0.3
    nms_threshold: float = 0.45
    max_detections: int = 100
    clahe: bool = False
    # 1: beside the graph's other nodes on 2 cores, a second intra-op thread waits for a core
    # (bench perception: detector p50 / p99 14.6 / 33 ms with 1 thread, 35.6 / 89 ms with 2)
    num_threads: int = 1
    max_frame_age: float = 0.5
    detect_while_picking: bool = False
    # the planner works on the newest detections only: those of images detected while it plans
    # are never planned, and their detection takes the cores from the planning (bench
    # perception, README)
    await_grasps: float = 0.3
    publish_debug_image: bool = True
    stats_period: float = 5.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {self.backend!r}')
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}')
        if self.backend == 'torch' and not self.model_file_path:
            raise ValueError('the torch backend needs model_file_path (a .pt checkpoint)')
        if self.num_threads < 1:
            raise ValueError(f'num_threads must be >= 1, got {self.num_threads}')
        if self.max_frame_age < 0 or self.await_grasps < 0 or self.stats_period <= 0:
            raise ValueError('max_frame_age and await_grasps must be >= 0 and stats_period > 0')
        self.postprocess_config()  # validates the thresholds

    @staticmethod
    def field_names() -> tuple[str, ...]:
        """Parameter names, in declaration order."""
        return tuple(f.name for f in fields(DetectorNodeConfig))

    def model_path(self) -> Path:
        """The model to load: ``model_file_path`` or the shipped one."""
        if self.model_file_path:
            return Path(self.model_file_path)
        return models_dir() / SHIPPED_MODELS[(self.backend, self.precision)]

    def postprocess_config(self) -> PostprocessConfig:
        """Decoding thresholds."""
        return PostprocessConfig(score_threshold=self.confidence_threshold,
                                 nms_threshold=self.nms_threshold,
                                 max_detections=self.max_detections)

    def load_detector(self) -> Detector:
        """The detector these parameters describe (model, backend, thresholds, threads).

        Raises:
            LitedetError: the model, labels or anchors cannot be loaded.
            ImportError: the backend's runtime is not installed.
        """
        return Detector.from_files(
            self.model_path(), self.backend, self.labels_file or None,
            config=self.postprocess_config(), clahe=self.clahe, num_threads=self.num_threads,
            engine_file_path=self.engine_file_path or None,
            force_engine_update=self.force_engine_update)

    def reloads_model(self, other: DetectorNodeConfig) -> bool:
        """Whether switching to ``other`` needs the model loaded again."""
        keys = ('model_file_path', 'engine_file_path', 'force_engine_update', 'backend',
                'precision', 'labels_file', 'num_threads')
        return any(getattr(self, k) != getattr(other, k) for k in keys)
