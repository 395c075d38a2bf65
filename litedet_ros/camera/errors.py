"""Typed errors of the RealSense capture core."""

from litedet_ros.errors import LitedetError


class CameraError(LitedetError):
    """Base class of every error the capture core raises."""


class NoDeviceError(CameraError):
    """No RealSense device is connected, or none with the requested serial number."""


class NotARecordingError(CameraError):
    """A playback file is missing or is not a librealsense recording (``.bag`` / ``.db3``)."""


class UnsupportedProfileError(CameraError):
    """The device or recording does not offer the requested stream, size, rate or format."""


class FrameTimeoutError(CameraError):
    """No frame arrived within the timeout while the device is still connected."""


class DeviceLostError(CameraError):
    """The device was disconnected while streaming."""


class EndOfRecordingError(CameraError):
    """A recording played to its end; no further frames will arrive."""
