"""Tiny synthetic COCO detection datasets for the detection tests (shapes on a noisy floor)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from litedet_ros.detection.model import ssdlite320_mobilenet_v2

LABELS = ('box', 'can', 'wedge')
_COLOURS = ((200, 40, 40), (40, 180, 60), (50, 70, 210))


def draw_scene(rng: np.random.Generator, width: int = 640, height: int = 480,
               max_objects: int = 4) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """Return a ``uint8[H, W, 3]`` RGB image and ``(category_id, [x, y, w, h])`` per object."""
    image = rng.integers(90, 130, (height, width, 3), dtype=np.uint8)
    objects = []
    for _ in range(rng.integers(1, max_objects + 1)):
        cls = int(rng.integers(len(LABELS)))
        size = int(rng.integers(50, 130))
        x, y = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        colour = tuple(int(c) for c in _COLOURS[cls])
        if cls == 0:
            cv2.rectangle(image, (x, y), (x + size - 1, y + size - 1), colour, -1)
        elif cls == 1:
            cv2.circle(image, (x + size // 2, y + size // 2), size // 2, colour, -1)
        else:
            pts = np.array([[x, y + size - 1], [x + size - 1, y + size - 1], [x + size // 2, y]])
            cv2.fillPoly(image, [pts], colour)
        objects.append((cls + 1, [float(x), float(y), float(size), float(size)]))
    return image, objects


def write_dataset(root: Path, num_images: int, seed: int) -> Path:
    """Write ``root/annotations.json`` and ``root/images/*.png``; return ``root``."""
    rng = np.random.default_rng(seed)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        rgb, objects = draw_scene(rng)
        name = f'{image_id:06d}.png'
        cv2.imwrite(str(root / 'images' / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images.append({'id': image_id, 'file_name': name, 'width': 640, 'height': 480})
        for cls, bbox in objects:
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                'category_id': cls, 'bbox': bbox, 'area': bbox[2] * bbox[3],
                                'iscrowd': 0})
    categories = [{'id': i + 1, 'name': name} for i, name in enumerate(LABELS)]
    (root / 'annotations.json').write_text(json.dumps(
        {'images': images, 'annotations': annotations, 'categories': categories}))
    return root


def varied_model(num_classes: int = len(LABELS) + 1) -> torch.nn.Module:
    """Return an untrained SSD in eval mode whose outputs vary like a trained one's.

    He-initialised convolutions instead of SSDLite's std-0.03 init, which gives near-zero outputs.
    """
    torch.manual_seed(0)
    ssd = ssdlite320_mobilenet_v2(num_classes)
    for module in ssd.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    return ssd.eval()
