"""Write librealsense recordings from images (synthetic scenes, the simulated workcell).

The frames go through ``rs.software_device`` into ``rs.recorder``, so the file is exactly what
the RealSense Viewer or :class:`~litedet_ros.camera.capture.Camera` play back: the same streams,
intrinsics, depth scale and depth-to-colour extrinsic as a real device would record.
"""

from __future__ import annotations

from collections.abc import Iterable
import time

import numpy as np
import pyrealsense2 as rs

from litedet_ros.camera.capture import intrinsics_from_camera_info
from litedet_ros.camera.errors import CameraError
from litedet_ros.camera.types import COLOR_FORMATS, CameraInfo
from litedet_ros.errors import InvalidImageError


def _video_stream(stream: rs.stream, uid: int, info: CameraInfo, fmt: str, bpp: int,
                  fps: int) -> rs.video_stream:
    video = rs.video_stream()
    video.type, video.index, video.uid = stream, 0, uid
    video.width, video.height, video.fps = info.width, info.height, fps
    video.bpp, video.fmt = bpp, rs.format.__members__[fmt]
    video.intrinsics = intrinsics_from_camera_info(info)
    return video


def _check_image(image: np.ndarray, info: CameraInfo, dtype: type, channels: int,
                 name: str) -> np.ndarray:
    image = np.ascontiguousarray(image)
    shape = (info.height, info.width) + ((channels,) if channels > 1 else ())
    if image.shape != shape or image.dtype != dtype:
        raise InvalidImageError(f'{name} image must be {np.dtype(dtype).name}{list(shape)}, got '
                                f'{image.dtype.name}{list(image.shape)}')
    return image


def write_recording(path: str, frames: Iterable[tuple[np.ndarray | None, np.ndarray | None]], *,
                    color_info: CameraInfo | None, depth_info: CameraInfo | None,
                    depth_to_color: np.ndarray | None = None, depth_scale: float = 0.001,
                    fps: int = 30, color_format: str = 'rgb8', serial: str = '000000000000',
                    name: str = 'litedet_ros synthetic D435', paced: bool = True) -> int:
    """Record colour and depth images to a librealsense ``.db3`` file.

    librealsense stamps recorded messages with their arrival time, so real-time playback follows
    the rate at which frames are written: ``paced=True`` writes one frame every ``1 / fps`` s (a
    slow producer stretches the recording); ``paced=False`` writes as fast as possible, for files
    read with ``playback_realtime=False``. Frame timestamps are epoch milliseconds spaced
    ``1000 / fps`` apart (small bases mis-pair depth and colour on playback).

    Args:
        path: output file; librealsense 2.59 writes ``.db3`` (rosbag2) only.
        frames: ``(color, depth)`` pairs: ``uint8[H, W, 3]`` in ``color_format`` and
            ``uint16[Hd, Wd]`` depth units; an item is ``None`` for a stream that is not recorded.
        color_info: colour calibration, or ``None`` to record depth only.
        depth_info: depth calibration, or ``None`` to record colour only.
        depth_to_color: ``float64[4, 4]`` colour-optical <- depth-optical transform, metres
            (identity if ``None``).
        depth_scale: metres per depth unit.
        fps: nominal frame rate, frames per second.
        color_format: ``rgb8`` or ``bgr8``.
        serial: serial number the recording reports.
        name: device name the recording reports.
        paced: write frames at ``fps`` in real time.

    Returns:
        The number of frames written.

    Raises:
        CameraError: bad path, no stream, bad format, rate or scale.
        InvalidImageError: an image does not match its calibration.
    """
    if not path.endswith('.db3'):
        raise CameraError(f'librealsense writes .db3 recordings only, got {path!r}')
    if color_info is None and depth_info is None:
        raise CameraError('a recording needs a colour or a depth stream')
    if color_format not in COLOR_FORMATS:
        raise CameraError(f'colour format must be one of {COLOR_FORMATS}, got {color_format!r}')
    if fps <= 0 or not depth_scale > 0:
        raise CameraError(f'fps and depth_scale must be positive, got {fps}, {depth_scale}')

    device = rs.software_device()
    device.register_info(rs.camera_info.name, name)
    device.register_info(rs.camera_info.serial_number, serial)
    sensors, profiles = {}, {}
    if depth_info is not None:
        sensors['depth'] = device.add_sensor('Stereo Module')
        profiles['depth'] = sensors['depth'].add_video_stream(
            _video_stream(rs.stream.depth, 0, depth_info, 'z16', 2, fps))
        sensors['depth'].add_read_only_option(rs.option.depth_units, depth_scale)
    if color_info is not None:
        sensors['color'] = device.add_sensor('RGB Camera')
        profiles['color'] = sensors['color'].add_video_stream(
            _video_stream(rs.stream.color, 1, color_info, color_format, 3, fps))
    if len(profiles) == 2:
        transform = np.eye(4) if depth_to_color is None else np.asarray(depth_to_color, float)
        extrinsics = rs.extrinsics()
        extrinsics.rotation = transform[:3, :3].flatten(order='F').tolist()
        extrinsics.translation = transform[:3, 3].tolist()
        profiles['depth'].register_extrinsics_to(profiles['color'], extrinsics)

    recorder = rs.recorder(path, device, True)
    for stream, sensor in sensors.items():
        sensor.open(profiles[stream])
        sensor.start(lambda frame: None)
    written = 0
    start_s = time.time()
    try:
        for index, (color, depth) in enumerate(frames):
            due_s = start_s + index / fps
            if paced:
                time.sleep(max(0.0, due_s - time.time()))
            images = {'color': color, 'depth': depth}
            for stream, info, dtype, channels in (('depth', depth_info, np.uint16, 1),
                                                  ('color', color_info, np.uint8, 3)):
                if info is None:
                    continue
                image = _check_image(images[stream], info, dtype, channels, stream)
                frame = rs.software_video_frame()
                frame.pixels = image
                frame.bpp = image.itemsize * channels
                frame.stride = info.width * frame.bpp
                frame.timestamp = due_s * 1000.0
                frame.domain = rs.timestamp_domain.hardware_clock
                frame.frame_number = index
                frame.profile = profiles[stream].as_video_stream_profile()
                if stream == 'depth':
                    frame.depth_units = depth_scale
                sensors[stream].on_video_frame(frame)
            written += 1
    finally:
        for sensor in sensors.values():
            sensor.stop()
            sensor.close()
        del recorder  # the file is complete only once the recorder is released
    return written
