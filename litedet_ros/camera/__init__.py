"""RealSense capture with pyrealsense2 from a device or a recording (ROS-free)."""

from litedet_ros.camera.capture import Camera
from litedet_ros.camera.types import (
    CameraInfo,
    CaptureConfig,
    CaptureStats,
    RGBDFrame,
    StreamProfile,
)

__all__ = ['Camera', 'CameraInfo', 'CaptureConfig', 'CaptureStats', 'RGBDFrame', 'StreamProfile']
