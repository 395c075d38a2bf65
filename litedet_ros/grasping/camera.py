"""Pinhole camera model and depth decoding for the grasp planner.

Frames: the camera *optical* frame (REP-103): +x right, +y down, +z forward along the optical axis,
origin at the optical centre. Pixel ``(u, v)`` is the column and row index; pixel centres sit at
integer coordinates, as in ``sensor_msgs/CameraInfo``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from litedet_ros.errors import InvalidCameraInfoError, InvalidImageError

#: Depth encodings accepted, as named by ``sensor_msgs/Image``.
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')


class DepthUnitsError(InvalidImageError):
    """Valid depths are implausible for the declared units (e.g. millimetres sent as 32FC1)."""


@dataclass(frozen=True)
class PinholeCamera:
    """Undistorted pinhole intrinsics of one image stream.

    Attributes:
        fx: focal length along x, pixels.
        fy: focal length along y, pixels.
        cx: principal point x, pixels.
        cy: principal point y, pixels.
        width: image width, pixels.
        height: image height, pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        if not np.isfinite(values).all():
            raise InvalidCameraInfoError('camera intrinsics hold NaN or inf')
        if self.fx <= 0 or self.fy <= 0:
            raise InvalidCameraInfoError(
                f'focal lengths must be positive (zero K?), got fx={self.fx}, fy={self.fy}')
        if self.width <= 0 or self.height <= 0:
            raise InvalidCameraInfoError(
                f'image size must be positive, got {self.width}x{self.height}')

    @classmethod
    def from_k(cls, k: np.ndarray | list[float], width: int, height: int) -> PinholeCamera:
        """Build the model from a row-major 3x3 intrinsic matrix (``CameraInfo.k``).

        Args:
            k: ``float[9]`` or ``float[3, 3]`` intrinsic matrix ``[fx 0 cx; 0 fy cy; 0 0 1]``.
            width: image width, pixels.
            height: image height, pixels.

        Raises:
            InvalidCameraInfoError: K has the wrong size, is all zero (an uncalibrated camera
                publishes zeros), or has non-positive focal lengths.
        """
        k = np.asarray(k, dtype=np.float64)
        if k.size != 9:
            raise InvalidCameraInfoError(f'K must have 9 elements, got {k.size}')
        k = k.reshape(3, 3)
        if not k.any():
            raise InvalidCameraInfoError('K is all zero: the camera is not calibrated')
        return cls(fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]),
                   width=int(width), height=int(height))

    def check_image(self, image: np.ndarray) -> None:
        """Raise :class:`InvalidCameraInfoError` unless ``image`` is ``height x width``."""
        if image.shape[:2] != (self.height, self.width):
            raise InvalidCameraInfoError(
                f'image is {image.shape[1]}x{image.shape[0]} but the camera model is '
                f'{self.width}x{self.height}')

    def deproject(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Back-project pixels with depth to 3D points in the camera optical frame.

        Args:
            u: ``float[N]`` pixel columns.
            v: ``float[N]`` pixel rows.
            depth: ``float[N]`` depth along the optical axis (z), metres.

        Returns:
            ``float64[N, 3]`` points, metres, camera optical frame.
        """
        z = np.asarray(depth, dtype=np.float64)
        x = (np.asarray(u, dtype=np.float64) - self.cx) * z / self.fx
        y = (np.asarray(v, dtype=np.float64) - self.cy) * z / self.fy
        return np.stack([x, y, z], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project 3D points of the camera optical frame to pixels.

        Args:
            points: ``float[N, 3]`` points with z > 0, metres.

        Returns:
            ``float64[N, 2]`` pixel coordinates ``(u, v)``.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        z = points[:, 2]
        return np.stack([self.fx * points[:, 0] / z + self.cx,
                         self.fy * points[:, 1] / z + self.cy], axis=-1)


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
