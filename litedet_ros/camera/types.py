"""Camera data types: profiles, configuration, calibration, the pinhole model, frames.

Frames: the camera *optical* frame (REP-103): +x right, +y down, +z forward along the optical axis,
origin at the optical centre. Pixel ``(u, v)`` is the column and row index; pixel centres sit at
integer coordinates, as in ``sensor_msgs/CameraInfo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import re

import numpy as np

from litedet_ros.camera.errors import CameraError, UnsupportedProfileError
from litedet_ros.errors import InvalidCameraInfoError

#: Colour formats the capture core delivers, as named by ``sensor_msgs/Image`` and librealsense.
COLOR_FORMATS = ('rgb8', 'bgr8')
#: Depth formats the capture core delivers (16-bit depth units).
DEPTH_FORMATS = ('z16',)

_PROFILE_RE = re.compile(r'^\s*(\d+)\s*[x,]\s*(\d+)\s*[x,]\s*(\d+)\s*$')


@dataclass(frozen=True)
class StreamProfile:
    """One requested video stream.

    A zero width, height or fps means "whatever the device or recording offers", as in
    realsense-ros (``0x0x0``).

    Attributes:
        width: image width, pixels.
        height: image height, pixels.
        fps: frame rate, frames per second.
        format: pixel format, lower case librealsense name (``rgb8``, ``bgr8``, ``z16``).
    """

    width: int = 640
    height: int = 480
    fps: int = 30
    format: str = 'rgb8'

    def __post_init__(self) -> None:
        for name in ('width', 'height', 'fps'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UnsupportedProfileError(
                    f'stream {name} must be a non-negative integer, got {value!r}')
        if self.format not in COLOR_FORMATS + DEPTH_FORMATS:
            raise UnsupportedProfileError(
                f'unsupported stream format {self.format!r}; expected one of '
                f'{COLOR_FORMATS + DEPTH_FORMATS}')

    @classmethod
    def parse(cls, text: str, fmt: str) -> StreamProfile:
        """Parse a realsense-ros profile string such as ``'640x480x30'`` or ``'640,480,30'``.

        Args:
            text: ``WIDTHxHEIGHTxFPS`` (``x`` or ``,`` separated).
            fmt: pixel format of the stream (``rgb8``, ``bgr8``, ``z16``).

        Raises:
            UnsupportedProfileError: the text is not ``WIDTHxHEIGHTxFPS`` or the format is unknown.
        """
        match = _PROFILE_RE.match(text)
        if match is None:
            raise UnsupportedProfileError(
                f'stream profile must look like 640x480x30, got {text!r}')
        width, height, fps = (int(g) for g in match.groups())
        return cls(width, height, fps, fmt)

    def __str__(self) -> str:
        return f'{self.width}x{self.height}@{self.fps} {self.format}'


@dataclass(frozen=True)
class CaptureConfig:
    """What to open and how to stream it.

    Attributes:
        serial: serial number of the device to open; empty opens the first device found.
        playback_file: recording (``.bag`` or ``.db3``) to play instead of a device.
        color: colour stream request; its format must be one of :data:`COLOR_FORMATS`.
        depth: depth stream request (format ``z16``), or ``None`` for colour only.
        align_depth: deliver depth re-projected into the colour image (``rs.align``).
        playback_realtime: pace a recording at its recorded rate; ``False`` reads it as fast as
            the consumer takes frames, without dropping any.
        camera_name: prefix of the frame ids (``<name>_color_optical_frame``), as realsense-ros.
        timeout_s: longest wait for one frame set, seconds.
        record_file: while streaming from a device, also record it to this ``.db3`` file.
    """

    serial: str = ''
    playback_file: str = ''
    color: StreamProfile = field(default_factory=StreamProfile)
    depth: StreamProfile | None = field(
        default_factory=lambda: StreamProfile(640, 480, 30, 'z16'))
    align_depth: bool = True
    playback_realtime: bool = True
    camera_name: str = 'camera'
    timeout_s: float = 1.0
    record_file: str = ''

    def __post_init__(self) -> None:
        if self.serial and self.playback_file:
            raise CameraError('give a device serial or a playback file, not both')
        if self.record_file and (self.playback_file or not self.record_file.endswith('.db3')):
            raise CameraError('record_file needs a device (not a playback file) and a .db3 '
                              f'name (librealsense 2.59 writes rosbag2), got {self.record_file!r}')
        if self.color.format not in COLOR_FORMATS:
            raise UnsupportedProfileError(
                f'colour format must be one of {COLOR_FORMATS}, got {self.color.format!r}')
        if self.depth is not None and self.depth.format not in DEPTH_FORMATS:
            raise UnsupportedProfileError(
                f'depth format must be one of {DEPTH_FORMATS}, got {self.depth.format!r}')
        if self.align_depth and self.depth is None:
            raise CameraError('align_depth needs the depth stream enabled')
        if not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', self.camera_name):
            raise CameraError(f'camera_name must be a valid frame-id prefix, got '
                              f'{self.camera_name!r}')
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise CameraError(f'timeout_s must be positive, got {self.timeout_s}')

    @property
    def color_frame_id(self) -> str:
        """Optical frame of the colour camera (REP-103), realsense-ros 4.x name."""
        return f'{self.camera_name}_color_optical_frame'

    @property
    def depth_frame_id(self) -> str:
        """Frame of the delivered depth image: the colour optical frame when aligned."""
        if self.align_depth:
            return self.color_frame_id
        return f'{self.camera_name}_depth_optical_frame'


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

    @property
    def matrix(self) -> np.ndarray:
        """``float64[3, 3]`` intrinsic matrix ``[fx 0 cx; 0 fy cy; 0 0 1]``, pixels."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

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


@dataclass(frozen=True)
class CameraInfo:
    """Calibration of one image stream, laid out as ``sensor_msgs/CameraInfo``.

    Attributes:
        width: image width, pixels.
        height: image height, pixels.
        k: ``float64[3, 3]`` intrinsic matrix ``[fx 0 cx; 0 fy cy; 0 0 1]``, pixels.
        d: ``float64[N]`` distortion coefficients in the order of ``distortion_model``.
        distortion_model: ROS model name (``plumb_bob`` or ``equidistant``).
        frame_id: optical frame of the stream.
        source_model: librealsense model name the coefficients came from (e.g.
            ``inverse_brown_conrady``); ROS has no name for some of them.
    """

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray
    distortion_model: str = 'plumb_bob'
    frame_id: str = ''
    source_model: str = 'none'

    def __post_init__(self) -> None:
        k = PinholeCamera.from_k(self.k, self.width, self.height).matrix  # validates K and size
        d = np.asarray(self.d, dtype=np.float64).reshape(-1)
        if not np.isfinite(d).all():
            raise InvalidCameraInfoError('distortion coefficients hold NaN or inf')
        object.__setattr__(self, 'k', k)
        object.__setattr__(self, 'd', d)

    @classmethod
    def from_pinhole(cls, camera: PinholeCamera, frame_id: str) -> CameraInfo:
        """Return the calibration of an undistorted pinhole camera (``plumb_bob``, D = 0)."""
        return cls(width=camera.width, height=camera.height, k=camera.matrix, d=np.zeros(5),
                   frame_id=frame_id)

    @property
    def pinhole(self) -> PinholeCamera:
        """The pinhole part of this calibration (distortion ignored)."""
        return PinholeCamera.from_k(self.k, self.width, self.height)

    @property
    def p(self) -> np.ndarray:
        """``float64[3, 4]`` projection matrix ``[K | 0]`` of a monocular camera."""
        return np.hstack([self.k, np.zeros((3, 1))])

    @property
    def r(self) -> np.ndarray:
        """``float64[3, 3]`` rectification rotation (identity for a monocular camera)."""
        return np.eye(3)


@dataclass(frozen=True)
class RGBDFrame:
    """One colour image and, if enabled, the depth image taken with it.

    Attributes:
        color: ``uint8[H, W, 3]`` colour image in ``encoding`` channel order.
        encoding: ``rgb8`` or ``bgr8``.
        depth: ``uint16[Hd, Wd]`` depth in device units (see ``depth_scale``), 0 where invalid;
            ``H x W`` and in the colour frame when ``depth_aligned``; ``None`` without depth.
        depth_scale: metres per depth unit (0.001 on a D435).
        depth_aligned: ``depth`` is re-projected into the colour camera.
        stamp_ns: acquisition time in the consumer's clock (the ROS clock), nanoseconds.
        hw_timestamp_ms: timestamp librealsense reports for the colour frame, milliseconds.
        timestamp_domain: domain of ``hw_timestamp_ms`` (``hardware_clock``, ``system_time``,
            ``global_time``).
        frame_number: colour frame counter of the device or recording.
    """

    color: np.ndarray
    encoding: str
    depth: np.ndarray | None
    depth_scale: float
    depth_aligned: bool
    stamp_ns: int
    hw_timestamp_ms: float
    timestamp_domain: str
    frame_number: int

    def depth_m(self) -> np.ndarray:
        """Depth along the optical axis, ``float32[Hd, Wd]``, metres, NaN where invalid (REP-118).

        Raises:
            CameraError: the frame has no depth.
        """
        if self.depth is None:
            raise CameraError('this frame has no depth: the depth stream is disabled')
        depth = self.depth.astype(np.float32) * np.float32(self.depth_scale)
        depth[self.depth == 0] = np.nan
        return depth


@dataclass
class CaptureStats:
    """Counters of one capture session (mutated by the camera as frames arrive).

    Attributes:
        frames: frame sets delivered.
        dropped: colour frames lost, from gaps in the frame counter.
        timeouts: waits that ended without a frame set.
        incomplete: frame sets skipped because a requested stream was missing from them.
        latency_count: frames with a measurable capture latency (host-clock timestamps only).
        latency_sum_s: sum of capture latencies, seconds.
        latency_max_s: largest capture latency, seconds.
        processing_sum_s: sum of per-frame processing times (alignment, copies), seconds.
        processing_max_s: largest per-frame processing time, seconds.
        first_ns: host time of the first frame set, nanoseconds (0 before any).
        last_ns: host time of the latest frame set, nanoseconds.
    """

    frames: int = 0
    dropped: int = 0
    timeouts: int = 0
    incomplete: int = 0
    latency_count: int = 0
    latency_sum_s: float = 0.0
    latency_max_s: float = 0.0
    processing_sum_s: float = 0.0
    processing_max_s: float = 0.0
    first_ns: int = 0
    last_ns: int = 0

    @property
    def latency_mean_s(self) -> float:
        """Mean capture latency, seconds; NaN when the timestamps are not in the host clock."""
        return self.latency_sum_s / self.latency_count if self.latency_count else math.nan

    @property
    def processing_mean_s(self) -> float:
        """Mean per-frame processing time, seconds; NaN before any frame."""
        return self.processing_sum_s / self.frames if self.frames else math.nan

    @property
    def fps(self) -> float:
        """Delivered frame rate between the first and the latest frame set, frames per second."""
        if self.frames < 2 or self.last_ns <= self.first_ns:
            return math.nan
        return (self.frames - 1) * 1e9 / (self.last_ns - self.first_ns)
