"""COCO-format detection datasets (as written by ``litedet-ros sim dataset``) and augmentation.

A dataset directory holds ``annotations.json`` (COCO: images, annotations with ``bbox`` as
``[x, y, w, h]`` pixels, categories with ids 1..K) and the images, whose ``file_name`` is relative
to the directory or to its ``images/`` sub-directory. Images are decoded once and kept resized to
the network input (plain resize, :mod:`litedet_ros.detection.preprocess`); boxes are kept in the
same resized pixels for training and in original pixels for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from litedet_ros.detection.preprocess import resize_rgb
from litedet_ros.errors import LitedetError

ANNOTATIONS_FILE = 'annotations.json'
AUGMENTATIONS = ('none', 'light', 'full')


class DatasetError(LitedetError):
    """A dataset directory is missing, malformed or disagrees with the model's classes."""


@dataclass(frozen=True)
class DetectionDataset:
    """Images of one split, resized to the network input, with their ground truth.

    Attributes:
        root: dataset directory.
        labels: the K class names, index i = COCO category id i + 1.
        image_ids: COCO image ids, ``int[N]``.
        images: ``uint8[N, S, S, 3]`` RGB images resized to the input side S.
        sizes: ``int[N, 2]`` original ``(width, height)``, pixels.
        boxes: per image ``float32[M_i, 4]`` ``(x1, y1, x2, y2)`` in original pixels.
        classes: per image ``int64[M_i]`` COCO category ids (1..K).
    """

    root: Path
    labels: tuple[str, ...]
    image_ids: np.ndarray
    images: np.ndarray
    sizes: np.ndarray
    boxes: tuple[np.ndarray, ...]
    classes: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.image_ids)

    @property
    def annotations_path(self) -> Path:
        """The COCO annotation file."""
        return self.root / ANNOTATIONS_FILE


def image_path(root: Path, file_name: str) -> Path:
    """Resolve a COCO ``file_name`` relative to ``root`` or ``root/images``."""
    for candidate in (root / file_name, root / 'images' / file_name):
        if candidate.is_file():
            return candidate
    raise DatasetError(f'image {file_name} not found under {root} or {root / "images"}')


def load_dataset(root: str | Path, input_size: int = 320, limit: int | None = None,
                 labels: tuple[str, ...] | None = None) -> DetectionDataset:
    """Read a COCO dataset directory into memory.

    Args:
        root: directory with ``annotations.json``.
        input_size: network input side S the images are resized to.
        limit: read only the first ``limit`` images (sorted by id).
        labels: expected class names; a mismatch raises.

    Raises:
        DatasetError: missing files, category ids not 1..K, or labels that differ.
    """
    root = Path(root)
    path = root / ANNOTATIONS_FILE
    if not path.is_file():
        raise DatasetError(f'no {ANNOTATIONS_FILE} in {root}')
    coco = json.loads(path.read_text())
    categories = sorted(coco['categories'], key=lambda c: c['id'])
    if [c['id'] for c in categories] != list(range(1, len(categories) + 1)):
        raise DatasetError(f'{path}: category ids must be 1..K')
    names = tuple(c['name'] for c in categories)
    if labels is not None and tuple(labels) != names:
        raise DatasetError(f"{path}: classes {names} differ from the model's {tuple(labels)}")
    infos = sorted(coco['images'], key=lambda i: i['id'])[:limit]
    per_image: dict[int, list[dict]] = {info['id']: [] for info in infos}
    for ann in coco['annotations']:
        if ann['image_id'] in per_image and not ann.get('iscrowd', 0):
            per_image[ann['image_id']].append(ann)
    images = np.empty((len(infos), input_size, input_size, 3), np.uint8)
    sizes = np.empty((len(infos), 2), np.int64)
    boxes, classes = [], []
    for i, info in enumerate(infos):
        bgr = cv2.imread(str(image_path(root, info['file_name'])), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f'cannot decode image {info["file_name"]} in {root}')
        images[i] = resize_rgb(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), input_size)
        sizes[i] = (bgr.shape[1], bgr.shape[0])
        xywh = np.array([a['bbox'] for a in per_image[info['id']]], np.float32).reshape(-1, 4)
        boxes.append(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1))
        classes.append(np.array([a['category_id'] for a in per_image[info['id']]], np.int64))
    return DetectionDataset(root, names, np.array([i['id'] for i in infos], np.int64), images,
                            sizes, tuple(boxes), tuple(classes))


def bin_scene_augmentation(input_size: int, level: str = 'full') -> v2.Transform:
    """Augmentation for top-down bin images, in network-input pixels.

    ``light``: a top-down view has no preferred orientation, so both flips apply, and lighting
    and colour vary with the cell (photometric distortion). ``full`` adds scale changes and
    objects cut by the frame (zoom-out, random crops with clipped boxes) and blur, for long runs
    or data from other cameras. Boxes that shrink below 2 px are dropped.
    """
    if level == 'light':
        return v2.Compose([
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
        ])
    return v2.Compose([
        v2.RandomPhotometricDistort(p=0.8),
        v2.RandomApply([v2.RandomZoomOut(fill=114, side_range=(1.0, 1.6))], p=0.3),
        v2.RandomChoice([
            v2.RandomResizedCrop((input_size, input_size), scale=(0.35, 1.0), antialias=True),
            v2.Resize((input_size, input_size), antialias=True),
        ], p=[0.4, 0.6]),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        v2.SanitizeBoundingBoxes(min_size=2.0),
    ])


class TrainingSet(torch.utils.data.Dataset):
    """Torch view of a :class:`DetectionDataset` for training: augmented input-size samples.

    Items are ``(float32[3, S, S] image in [0, 1], {'boxes': float32[M, 4] input pixels,
    'labels': int64[M] category ids})``, the format torchvision's SSD trains on.
    """

    def __init__(self, data: DetectionDataset, augment: str = 'light') -> None:
        if augment not in AUGMENTATIONS:
            raise ValueError(f'augment must be one of {AUGMENTATIONS}, got {augment!r}')
        self.data = data
        size = data.images.shape[1]
        self.size = size
        self.transform = None if augment == 'none' else bin_scene_augmentation(size, augment)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        width, height = self.data.sizes[index]
        scale = np.array([width, height, width, height], np.float32) / self.size
        image = tv_tensors.Image(torch.from_numpy(self.data.images[index]).permute(2, 0, 1))
        target = {
            'boxes': tv_tensors.BoundingBoxes(
                torch.from_numpy(self.data.boxes[index] / scale), format='XYXY',
                canvas_size=(self.size, self.size)),
            'labels': torch.from_numpy(self.data.classes[index]),
        }
        if self.transform is not None:
            image, target = self.transform(image, target)
        return (image.float() / 255.0,
                {'boxes': target['boxes'].as_subclass(torch.Tensor).float(),
                 'labels': target['labels']})


def collate(batch: list) -> tuple[list, list]:
    """Keep images and targets as lists, as torchvision detection models expect."""
    images, targets = zip(*batch)
    return list(images), list(targets)
