"""Depth decoding for the grasp planner: units, invalid pixels and plausibility checks.

The pinhole model the planner deprojects with is :class:`litedet_ros.camera.types.PinholeCamera`.
"""

from __future__ import annotations

import numpy as np

from litedet_ros.errors import InvalidImageError

#: Depth encodings accepted, as named by ``sensor_msgs/Image``.
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')


class DepthUnitsError(InvalidImageError):
    """Valid depths are implausible for the declared units (e.g. millimetres sent as 32FC1)."""


#: Pixel stride of the sample whose median checks the depth units.
UNITS_CHECK_STRIDE = 4


def decode_depth(image: np.ndarray, encoding: str, units_divisor: float = 1000.0,
                 valid_range: tuple[float, float] = (0.1, 10.0)) -> np.ndarray:
    """Convert a depth image to metres, marking invalid pixels with NaN.

    ``16UC1``/``mono16`` hold integer depth units (millimetres on a RealSense, so the divisor is
    1000); ``32FC1`` holds metres. Zero, NaN, inf and values outside ``valid_range`` are invalid.
    A median of the valid values (sampled every ``UNITS_CHECK_STRIDE`` pixels, all of them when
    none of the sample is valid) that is outside ``valid_range`` by far means the units are
    wrong (millimetres sent as 32FC1, or a wrong divisor), and is refused rather than guessed.

    Args:
        image: ``uint16[H, W]`` or ``float32[H, W]`` depth image.
        encoding: ``sensor_msgs/Image`` encoding of ``image``.
        units_divisor: depth units per metre for integer encodings.
        valid_range: ``(min, max)`` measurable range of the sensor, metres.

    Returns:
        ``float32[H, W]`` depth along the optical axis, metres, NaN where invalid.

    Raises:
        InvalidImageError: unsupported encoding, wrong dtype or shape, or a non-positive divisor.
        DepthUnitsError: the valid depths are implausible for the declared units.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise InvalidImageError(f'depth must be a non-empty 2D array, got shape {image.shape}')
    if encoding in ('16UC1', 'mono16'):
        if image.dtype != np.uint16:
            raise InvalidImageError(f'{encoding} depth must be uint16, got {image.dtype}')
        if not np.isfinite(units_divisor) or units_divisor <= 0:
            raise InvalidImageError(f'depth units divisor must be positive, got {units_divisor}')
        depth = image.astype(np.float32) / np.float32(units_divisor)
    elif encoding == '32FC1':
        if image.dtype != np.float32:
            raise InvalidImageError(f'32FC1 depth must be float32, got {image.dtype}')
        depth = image.astype(np.float32, copy=True)
    else:
        raise InvalidImageError(
            f'unsupported depth encoding {encoding!r}; expected one of {DEPTH_ENCODINGS}')
    lo, hi = valid_range
    with np.errstate(invalid='ignore'):
        positive = np.isfinite(depth) & (depth > 0)
    sample = depth[::UNITS_CHECK_STRIDE, ::UNITS_CHECK_STRIDE][
        positive[::UNITS_CHECK_STRIDE, ::UNITS_CHECK_STRIDE]]
    if not len(sample):
        sample = depth[positive]
    if len(sample):
        median = float(np.median(sample))
        if median > 4 * hi or median < lo / 4:
            raise DepthUnitsError(
                f'median valid depth is {median:.4g} m for encoding {encoding} (divisor '
                f'{units_divisor}); sensor range is {lo}-{hi} m: wrong depth units?')
    with np.errstate(invalid='ignore'):
        depth[~positive | (depth < lo) | (depth > hi)] = np.nan
    return depth
