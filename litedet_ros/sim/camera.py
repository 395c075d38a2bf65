"""Simulated RealSense D435 colour + aligned depth: intrinsics, depth artefacts, visible boxes.

Pixel convention (OpenCV, ROS CameraInfo): pixel (u, v) has its centre at (u, v); a point in the
optical frame (x right, y down, z forward) projects to ``u = fx x / z + cx``. Boxes are given by
pixel edges: ``(x_min, y_min, x_max, y_max)`` with the box covering columns x_min..x_max-1, as in
``Detection.msg``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from litedet_ros.camera.types import PinholeCamera

#: Colour stream of a D435 at 640x480 (depth is aligned to it): fx = fy ~ 615 px.
D435_COLOR = PinholeCamera(fx=615.0, fy=615.0, cx=319.5, cy=239.5, width=640, height=480)


@dataclass(frozen=True)
class DepthModel:
    """D435-like depth artefacts.

    Attributes:
        min_depth: closer than this the stereo match fails (0 = invalid), m.
        max_depth: farther than this is reported invalid, m.
        baseline: stereo baseline, m (D435: 50 mm).
        subpixel: RMS disparity error, px; noise std = subpixel * z^2 / (fx * baseline).
        edge_jump: depth step between neighbouring pixels that marks an edge, m.
        edge_dropout: probability that an edge pixel is invalid.
        grazing_angle: surfaces seen more obliquely than this (normal vs. ray) are invalid, rad.
        depth_unit: output quantisation, m (1 mm as the 16UC1 stream).
    """

    min_depth: float = 0.2
    max_depth: float = 10.0
    baseline: float = 0.05
    subpixel: float = 0.08
    edge_jump: float = 0.01
    edge_dropout: float = 0.8
    grazing_angle: float = np.deg2rad(78.0)
    depth_unit: float = 0.001


def encode_depth(depth: np.ndarray, encoding: str) -> np.ndarray:
    """Depth in metres as a D435 driver publishes it: ``16UC1`` whole millimetres, or ``32FC1``."""
    if encoding == '16UC1':
        return (depth * 1000.0).round().astype(np.uint16)
    return depth


def apply_depth_model(depth: np.ndarray, intrinsics: PinholeCamera, model: DepthModel,
                      rng: np.random.Generator) -> np.ndarray:
    """Turn ideal depth into D435-like depth.

    Args:
        depth: ``float32[H, W]`` ideal depth along the optical axis, m.
        intrinsics: camera the depth was rendered with.
        model: artefact parameters.
        rng: noise source.

    Returns:
        ``float32[H, W]`` depth in m, quantised to ``model.depth_unit``; 0 where invalid
        (out of range, at depth edges, at grazing angles).
    """
    z = depth.astype(np.float32)
    sigma = np.float32(model.subpixel / (intrinsics.fx * model.baseline)) * z * z
    noisy = z + rng.standard_normal(size=z.shape, dtype=np.float32) * sigma
    invalid = (z < model.min_depth) | (z > model.max_depth)
    # Pixels on either side of a depth step larger than edge_jump (4-neighbourhood).
    edge = np.zeros(z.shape, dtype=bool)
    step_x = np.abs(np.diff(z, axis=1)) > model.edge_jump
    step_y = np.abs(np.diff(z, axis=0)) > model.edge_jump
    edge[:, 1:] |= step_x
    edge[:, :-1] |= step_x
    edge[1:] |= step_y
    edge[:-1] |= step_y
    invalid |= edge & (rng.random(z.shape, dtype=np.float32) < model.edge_dropout)
    invalid |= _grazing(z, intrinsics) > model.grazing_angle
    noisy = np.round(noisy / model.depth_unit) * np.float32(model.depth_unit)
    return np.where(invalid, np.float32(0.0), noisy).astype(np.float32)


def _grazing(z: np.ndarray, intrinsics: PinholeCamera) -> np.ndarray:
    # Angle between the surface normal and the view ray r = (x', y', 1). With P = z r, the
    # normal dP/du x dP/dv is proportional to n = (-fx z_u, -fy z_v, fx z_u x' + fy z_v y' + z)
    # and n . r = z, so cos(angle) = z / (|n| |r|).
    z_v, z_u = np.gradient(z)
    x = (np.arange(z.shape[1]) - intrinsics.cx) / intrinsics.fx
    y = ((np.arange(z.shape[0]) - intrinsics.cy) / intrinsics.fy)[:, None]
    a = intrinsics.fx * z_u
    b = intrinsics.fy * z_v
    norm = np.sqrt(a * a + b * b + (a * x + b * y + z) ** 2) * np.sqrt(x * x + y * y + 1.0)
    return np.arccos(np.clip(np.abs(z) / np.maximum(norm, 1e-12), 0.0, 1.0))


def visible_boxes(labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes and pixel counts of the visible part of each labelled object.

    Args:
        labels: ``int[H, W]`` per-pixel object label, 0 = background, k = object k-1.
        count: number of objects K.

    Returns:
        boxes: ``float64[K, 4]`` (x_min, y_min, x_max, y_max) pixel edges; zeros where the
            object is not visible.
        pixels: ``int64[K]`` number of visible pixels per object.
    """
    boxes = np.zeros((count, 4))
    for k, found in enumerate(ndimage.find_objects(labels, max_label=count)):
        if found is not None:
            rows, cols = found
            boxes[k] = (cols.start, rows.start, cols.stop, rows.stop)
    pixels = np.bincount(labels.ravel(), minlength=count + 1)[1:count + 1]
    return boxes, pixels
