"""Core detection results, shared by every detector backend, the grasp planner and the nodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from litedet_ros.errors import InvalidMessageError


@dataclass(frozen=True)
class Detections:
    """Detections in one colour image, sorted by score, best first.

    Boxes follow torchvision's ``(x1, y1, x2, y2)`` convention in pixels of the original
    (not resized) image: x to the right, y down, origin at the top-left corner of the top-left
    pixel, ``0 <= x1 < x2 <= width`` and ``0 <= y1 < y2 <= height``.

    Attributes:
        boxes: ``float32[N, 4]`` boxes, pixels.
        scores: ``float32[N]`` confidences in ``[0, 1]``.
        class_ids: ``int64[N]`` 0-based indices into ``labels`` of the model (background excluded).
        labels: the N class names, one per detection.
        image_size: ``(width, height)`` of the source image, pixels.
        stamp_ns: acquisition time of the source image, nanoseconds (ROS clock).
        frame_id: optical frame of the camera that took the image.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str, ...]
    image_size: tuple[int, int]
    stamp_ns: int = 0
    frame_id: str = ''

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        n = len(boxes)
        if len(scores) != n or len(class_ids) != n or len(self.labels) != n:
            raise InvalidMessageError(
                f'detections disagree in length: {n} boxes, {len(scores)} scores, '
                f'{len(class_ids)} class ids, {len(self.labels)} labels')
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise InvalidMessageError('detections hold NaN or inf')
        width, height = self.image_size
        if width <= 0 or height <= 0:
            raise InvalidMessageError(f'image size must be positive, got {self.image_size}')
        object.__setattr__(self, 'boxes', boxes)
        object.__setattr__(self, 'scores', scores)
        object.__setattr__(self, 'class_ids', class_ids)
        object.__setattr__(self, 'labels', tuple(self.labels))
        object.__setattr__(self, 'image_size', (int(width), int(height)))

    def __len__(self) -> int:
        """Return the number of detections."""
        return len(self.boxes)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(x_min, y_min, x_max, y_max)`` boxes; 0 for empty ones."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
