"""Image preprocessing shared by training and every inference backend.

The network input is a plain (aspect-distorting) resize of the whole image to S x S with
bilinear interpolation, as torchvision trains SSDLite: no letterbox, so no input pixels are
spent on padding and a 640x480 image keeps its full vertical resolution. Boxes are mapped back
to original-image pixels by scaling x by W / S and y by H / S
(:func:`litedet_ros.detection.postprocess.decode_detections`).
"""

from __future__ import annotations

import cv2
import numpy as np

from litedet_ros.errors import InvalidImageError

ENCODINGS = ('rgb8', 'bgr8', 'mono8')


def to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an 8-bit image to RGB.

    Args:
        image: ``uint8[H, W, 3]`` for ``rgb8``/``bgr8``, ``uint8[H, W]`` or ``uint8[H, W, 1]``
            for ``mono8``.
        encoding: one of :data:`ENCODINGS` (ROS ``sensor_msgs/Image`` names).

    Returns:
        ``uint8[H, W, 3]`` RGB image (the input itself for ``rgb8``).

    Raises:
        InvalidImageError: unsupported encoding, wrong dtype/shape, or zero size.
    """
    if encoding not in ENCODINGS:
        raise InvalidImageError(f'unsupported encoding {encoding!r}, expected one of {ENCODINGS}')
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InvalidImageError(f'expected uint8 pixels, got {image.dtype}')
    channels = 1 if encoding == 'mono8' else 3
    if image.ndim == 3 and image.shape[2] == channels == 1:
        image = image[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if image.ndim != expected_ndim or (channels == 3 and image.shape[2] != 3):
        raise InvalidImageError(f'{encoding} image has shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidImageError(f'zero-size image {image.shape}')
    if encoding == 'rgb8':
        return image
    code = cv2.COLOR_BGR2RGB if encoding == 'bgr8' else cv2.COLOR_GRAY2RGB
    return cv2.cvtColor(image, code)


def resize_rgb(rgb: np.ndarray, size: int, clahe: bool = False) -> np.ndarray:
    """Resize an RGB image to the square network input, optionally with CLAHE.

    Args:
        rgb: ``uint8[H, W, 3]`` RGB image.
        size: network input side S, pixels.
        clahe: equalise the lightness channel (CIE Lab L) with CLAHE, clip 2.0, 8x8 tiles, which
            helps with the dark corners and specular highlights of bins.

    Returns:
        ``uint8[S, S, 3]`` RGB image.
    """
    if clahe:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        lab[:, :, 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[:, :, 0])
        rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)


def normalize(resized: np.ndarray) -> np.ndarray:
    """Turn ``uint8[S, S, 3]`` RGB into the network's ``float32[3, S, S]`` input in ``[-1, 1]``."""
    return (resized.transpose(2, 0, 1).astype(np.float32) - 127.5) / 127.5


def preprocess(image: np.ndarray, encoding: str = 'rgb8', size: int = 320,
               clahe: bool = False) -> np.ndarray:
    """Turn one camera image into the network input used by every backend.

    Args:
        image: ``uint8[H, W, C]`` image in ``encoding`` (see :func:`to_rgb`).
        encoding: ``rgb8``, ``bgr8`` or ``mono8``.
        size: network input side S, pixels.
        clahe: apply CLAHE before resizing (see :func:`resize_rgb`).

    Returns:
        ``float32[3, S, S]`` normalised RGB input.

    Raises:
        InvalidImageError: unsupported encoding, shape or dtype, or zero size.
    """
    return normalize(resize_rgb(to_rgb(image, encoding), size, clahe))
