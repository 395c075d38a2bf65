"""The detector: preprocessing, one backend, and shared decoding, with per-stage timings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import time

import numpy as np

from litedet_ros.detection.backends import Backend, ModelLoadError, create_backend
from litedet_ros.detection.postprocess import (
    PostprocessConfig,
    decode_detections,
    single_threaded_decoding,
)
from litedet_ros.detection.preprocess import preprocess
from litedet_ros.detection.types import Detections

ANCHORS_FILE = 'anchors.npy'
LABELS_FILE = 'labels.txt'
DEFAULT_CONFIG = PostprocessConfig()


@dataclass(frozen=True)
class StageTimes:
    """Wall-clock time of each detection stage, seconds."""

    preprocess: float
    inference: float
    postprocess: float

    @property
    def total(self) -> float:
        """Sum of the stages, seconds."""
        return self.preprocess + self.inference + self.postprocess


def load_labels(path: str | Path) -> tuple[str, ...]:
    """Read class names, one per line (background not listed), blank lines ignored.

    Raises:
        ModelLoadError: the file is missing, empty or repeats a name.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f'labels file not found: {path}')
    labels = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not labels or len(set(labels)) != len(labels):
        raise ModelLoadError(f'labels file {path} is empty or repeats a name')
    return labels


def load_anchors(path: str | Path) -> np.ndarray:
    """Read the ``float32[A, 4]`` default boxes saved beside a model.

    Raises:
        ModelLoadError: the file is missing, unreadable or not ``[A, 4]`` finite values.
    """
    try:
        anchors = np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f'cannot read anchors {path}: {exc}') from exc
    if anchors.ndim != 2 or anchors.shape[1] != 4 or not np.isfinite(anchors).all():
        raise ModelLoadError(f'anchors {path} must be finite float[A, 4], got {anchors.shape}')
    return anchors


class Detector:
    """Detect objects in camera images with any backend.

    Args:
        backend: inference engine (see :func:`litedet_ros.detection.backends.create_backend`).
        anchors: ``float32[A, 4]`` default boxes of the model, input pixels.
        labels: the model's K class names.
        config: decoding thresholds.
        clahe: apply CLAHE in preprocessing.

    Raises:
        ModelLoadError: labels or anchors disagree with the model.
    """

    def __init__(self, backend: Backend, anchors: np.ndarray, labels: tuple[str, ...],
                 config: PostprocessConfig = DEFAULT_CONFIG, clahe: bool = False) -> None:
        if backend.num_classes != len(labels) + 1:
            raise ModelLoadError(f'model predicts {backend.num_classes - 1} classes but '
                                 f'{len(labels)} labels were given')
        if backend.name != 'torch':
            single_threaded_decoding()
        self.backend = backend
        self.anchors = anchors
        self.labels = tuple(labels)
        self.config = config
        self.clahe = clahe
        self.input_size = backend.input_size
        probe = np.zeros((1, 3, self.input_size, self.input_size), np.float32)
        regressions, _ = backend.infer(probe)
        if regressions.shape[1] != len(anchors):
            raise ModelLoadError(f'model predicts {regressions.shape[1]} boxes but '
                                 f'{len(anchors)} anchors were given')

    @classmethod
    def from_files(cls, model_path: str | Path, backend: str = 'onnxruntime',
                   labels_path: str | Path | None = None, anchors_path: str | Path | None = None,
                   config: PostprocessConfig = DEFAULT_CONFIG, clahe: bool = False,
                   num_threads: int = 2, engine_file_path: str | Path | None = None,
                   force_engine_update: bool = False) -> Detector:
        """Load a model with its labels and anchors.

        Labels and anchors default to ``labels.txt`` and ``anchors.npy`` beside the model.
        """
        model_dir = Path(model_path).parent
        labels = load_labels(labels_path or model_dir / LABELS_FILE)
        anchors = load_anchors(anchors_path or model_dir / ANCHORS_FILE)
        engine = create_backend(backend, model_path, num_threads, engine_file_path,
                                force_engine_update)
        return cls(engine, anchors, labels, config, clahe)

    def detect(self, image: np.ndarray, encoding: str = 'rgb8', stamp_ns: int = 0,
               frame_id: str = '') -> tuple[Detections, StageTimes]:
        """Detect objects in one image.

        Args:
            image: ``uint8[H, W, C]`` image in ``encoding`` (rgb8, bgr8 or mono8).
            encoding: pixel encoding, ROS names.
            stamp_ns: source stamp, copied to the detections.
            frame_id: source frame, copied to the detections.

        Returns:
            The detections (boxes in ``image`` pixels) and the time spent in each stage.

        Raises:
            InvalidImageError: the image cannot be used.
        """
        t0 = time.perf_counter()
        batch = preprocess(image, encoding, self.input_size, self.clahe)[None]
        t1 = time.perf_counter()
        regressions, logits = self.backend.infer(batch)
        t2 = time.perf_counter()
        height, width = image.shape[:2]
        detections = decode_detections(
            regressions[0], logits[0], self.anchors, self.labels, (width, height),
            self.input_size, self.config, stamp_ns, frame_id)
        t3 = time.perf_counter()
        return detections, StageTimes(t1 - t0, t2 - t1, t3 - t2)
