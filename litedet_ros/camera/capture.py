"""RealSense RGB-D capture with pyrealsense2 from a device or a recording, depth aligned to colour.

Timestamps: librealsense stamps every frame in one of three domains. ``global_time`` and
``system_time`` are already host-clock times and are used as they are (a real camera runs with the
ROS clock = system time). ``hardware_clock`` stamps, and every stamp of a recording, are mapped
into the consumer's clock: a recording played in real time keeps its recorded frame spacing from
an anchor taken at the first frame; a recording read as fast as possible is stamped at read time,
so stamps never run ahead of the consumer's clock. The librealsense timestamp is always kept
beside the mapped stamp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import os
import time

import numpy as np
import pyrealsense2 as rs

from litedet_ros.camera.errors import (
    CameraError,
    DeviceLostError,
    EndOfRecordingError,
    FrameTimeoutError,
    NoDeviceError,
    NotARecordingError,
    UnsupportedProfileError,
)
from litedet_ros.camera.types import (
    CameraInfo,
    CaptureConfig,
    CaptureStats,
    RGBDFrame,
    StreamProfile,
)

#: librealsense distortion model -> ``sensor_msgs/CameraInfo`` model (as realsense-ros maps them).
_ROS_DISTORTION = {'kannala_brandt4': 'equidistant'}
_HOST_DOMAINS = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)


def camera_info_from_intrinsics(intrinsics: rs.intrinsics, frame_id: str) -> CameraInfo:
    """Convert librealsense intrinsics to a :class:`CameraInfo`.

    Brown-Conrady variants (and ``none``) become ``plumb_bob`` with the five coefficients in
    librealsense order ``(k1, k2, p1, p2, k3)``, which is ROS order; Kannala-Brandt becomes
    ``equidistant`` with four. The librealsense model name is kept in ``source_model``.

    Args:
        intrinsics: intrinsics of a video stream profile.
        frame_id: optical frame of the stream.
    """
    source = intrinsics.model.name
    model = _ROS_DISTORTION.get(source, 'plumb_bob')
    coeffs = list(intrinsics.coeffs)[:4 if model == 'equidistant' else 5]
    k = [[intrinsics.fx, 0.0, intrinsics.ppx], [0.0, intrinsics.fy, intrinsics.ppy],
         [0.0, 0.0, 1.0]]
    return CameraInfo(width=intrinsics.width, height=intrinsics.height, k=np.array(k), d=coeffs,
                      distortion_model=model, frame_id=frame_id, source_model=source)


def intrinsics_from_camera_info(info: CameraInfo) -> rs.intrinsics:
    """Convert a :class:`CameraInfo` to librealsense intrinsics (model from ``source_model``)."""
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = info.width, info.height
    intrinsics.fx, intrinsics.fy = info.k[0, 0], info.k[1, 1]
    intrinsics.ppx, intrinsics.ppy = info.k[0, 2], info.k[1, 2]
    intrinsics.model = rs.distortion.__members__[info.source_model]
    intrinsics.coeffs = [float(c) for c in info.d] + [0.0] * (5 - len(info.d))
    return intrinsics


def extrinsic_matrix(extrinsics: rs.extrinsics) -> np.ndarray:
    """Return the ``float64[4, 4]`` ``to <- from`` transform of librealsense extrinsics."""
    transform = np.eye(4)
    transform[:3, :3] = np.reshape(extrinsics.rotation, (3, 3), order='F')
    transform[:3, 3] = extrinsics.translation
    return transform


def connected_serials() -> list[str]:
    """Serial numbers of the RealSense devices connected now."""
    return [device.get_info(rs.camera_info.serial_number)
            for device in rs.context().query_devices()]


def find_device(serial: str = '') -> rs.device:
    """Return the connected device with this serial number, or the first one if it is empty.

    Raises:
        NoDeviceError: no device is connected, or none has the serial number.
    """
    devices = list(rs.context().query_devices())
    if not devices:
        raise NoDeviceError('no RealSense device connected (check the USB 3 cable and the udev '
                            'rules)')
    serials = [device.get_info(rs.camera_info.serial_number) for device in devices]
    if not serial:
        return devices[0]
    if serial not in serials:
        raise NoDeviceError(f'no RealSense device with serial {serial!r}; connected: '
                            f'{", ".join(serials)}')
    return devices[serials.index(serial)]


def open_recording(path: str, rs_config: rs.config, pipeline: rs.pipeline) -> rs.device:
    """Point ``rs_config`` at a recording (played once) and return its playback device.

    Raises:
        NotARecordingError: the file is missing or not a librealsense recording.
    """
    if not os.path.isfile(path):
        raise NotARecordingError(f'recording {path!r}: no such file')
    rs_config.enable_device_from_file(path, repeat_playback=False)
    try:
        return rs_config.resolve(pipeline).get_device()
    except RuntimeError as error:
        raise NotARecordingError(f'recording {path!r} is not a librealsense recording: '
                                 f'{error}') from error


def offered_profiles(device: rs.device) -> dict[str, list[StreamProfile]]:
    """Video stream profiles a device or recording offers, by stream name (``color``, ``depth``).

    Only formats the capture core can deliver are listed as profiles; other formats of those
    streams appear with their librealsense name so an error can name them.
    """
    offered: dict[str, list[StreamProfile]] = {}
    for sensor in device.query_sensors():
        for profile in sensor.get_stream_profiles():
            if not profile.is_video_stream_profile():
                continue
            video = profile.as_video_stream_profile()
            try:
                entry = StreamProfile(video.width(), video.height(), profile.fps(),
                                      profile.format().name)
            except UnsupportedProfileError:
                entry = f'{video.width()}x{video.height()}@{profile.fps()} {profile.format().name}'
            offered.setdefault(profile.stream_type().name, []).append(entry)
    return offered


def _matches(request: StreamProfile, offer: StreamProfile | str) -> bool:
    if isinstance(offer, str) or offer.format != request.format:
        return False
    return all(getattr(request, name) in (0, getattr(offer, name))
               for name in ('width', 'height', 'fps'))


def check_profiles(offered: dict[str, list[StreamProfile]], config: CaptureConfig,
                   source: str) -> None:
    """Refuse a request the source cannot satisfy, naming what it offers.

    Args:
        offered: output of :func:`offered_profiles`.
        config: the capture request.
        source: human-readable name of the device or recording, for the message.

    Raises:
        UnsupportedProfileError: a requested stream is missing or none of its profiles matches.
    """
    def describe(stream: str) -> str:
        return ', '.join(sorted({str(p) for p in offered[stream]}))

    if 'color' not in offered:
        streams = '; '.join(f'{s}: {describe(s)}' for s in offered) or 'no video streams'
        raise UnsupportedProfileError(
            f'{source} has no colour stream ({streams}); the colour stream is required')
    requests = [('color', config.color)] + ([('depth', config.depth)] if config.depth else [])
    for stream, request in requests:
        if stream not in offered:
            raise UnsupportedProfileError(
                f'{source} has no {stream} stream; disable depth or use another source')
        if not any(_matches(request, offer) for offer in offered[stream]):
            raise UnsupportedProfileError(
                f'{source} does not offer {stream} {request}; it offers {describe(stream)}')


class Camera:
    """An open, streaming RealSense device or recording.

    Example::

        with Camera(CaptureConfig(playback_file='bin.db3', playback_realtime=False)) as camera:
            for frame in camera:
                depth = frame.depth_m()

    Attributes:
        config: the capture request.
        stats: counters, updated by :meth:`read`.
        name: device name (``Intel RealSense D435``, or the recorded one).
        serial: device serial number.
        color_info: calibration of the colour image.
        depth_info: calibration of the delivered depth image (the colour one when aligned), or
            ``None`` without depth.
        depth_scale: metres per depth unit.
        depth_to_color: ``float64[4, 4]`` colour-optical <- depth-optical transform, metres, or
            ``None`` without depth.
    """

    def __init__(self, config: CaptureConfig | None = None,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        """Open and start the source.

        Args:
            config: what to open; defaults to the first device at 640x480@30 rgb8 + z16.
            clock_ns: the consumer's clock (the ROS clock in a node), nanoseconds.

        Raises:
            NoDeviceError: no device, or none with the requested serial.
            NotARecordingError: the playback file is missing or not a recording.
            UnsupportedProfileError: a requested stream or profile is not offered.
            CameraError: the source cannot start streaming (e.g. busy in another process).
        """
        self.config = config = config or CaptureConfig()
        self.stats = CaptureStats()
        self._clock_ns = clock_ns
        self._anchor: tuple[int, float] | None = None
        self._last_stamp_ns = -1
        self._last_frame_number: int | None = None
        self._pipeline = rs.pipeline()
        rs_config = rs.config()
        if config.playback_file:
            source = f'recording {config.playback_file!r}'
            device = open_recording(config.playback_file, rs_config, self._pipeline)
        else:
            device = find_device(config.serial)
            serial = device.get_info(rs.camera_info.serial_number)
            source = f'device {serial}'
            rs_config.enable_device(serial)
        check_profiles(offered_profiles(device), config, source)

        if config.record_file:
            rs_config.enable_record_to_file(config.record_file)
        requests = [(rs.stream.color, config.color)]
        if config.depth is not None:
            requests.append((rs.stream.depth, config.depth))
        for stream, request in requests:
            rs_config.enable_stream(stream, request.width, request.height,
                                    rs.format.__members__[request.format], request.fps)
        try:
            device = rs_config.resolve(self._pipeline).get_device()
        except RuntimeError as error:
            raise UnsupportedProfileError(f'{source} cannot stream this combination of '
                                          f'profiles: {error}') from error
        self._playback = device.as_playback() if device.is_playback() else None
        if self._playback is not None:
            self._playback.set_real_time(config.playback_realtime)
            # The pipeline keeps only the latest frame set: a recording that plays before the
            # first read() loses its first frames. It stays paused until then.
            self._playback.pause()
        self._paused = self._playback is not None
        try:
            profile = self._pipeline.start(rs_config)
        except RuntimeError as error:  # e.g. the device is busy in another process
            raise CameraError(f'{source} cannot start streaming: {error}') from error
        self._running = True
        try:
            self._describe(device, profile)
        except Exception:
            self.close()
            raise

    def _describe(self, device: rs.device, profile: rs.pipeline_profile) -> None:
        config = self.config
        self.name = device.get_info(rs.camera_info.name)
        self.serial = device.get_info(rs.camera_info.serial_number)
        color_profile = profile.get_stream(rs.stream.color).as_video_stream_profile()
        self.color_info = camera_info_from_intrinsics(color_profile.get_intrinsics(),
                                                      config.color_frame_id)
        self.depth_info: CameraInfo | None = None
        self.depth_to_color: np.ndarray | None = None
        self.depth_scale = 0.0
        self._align = rs.align(rs.stream.color) if config.align_depth else None
        if config.depth is not None:
            depth_profile = profile.get_stream(rs.stream.depth).as_video_stream_profile()
            self.depth_scale = device.first_depth_sensor().get_depth_scale()
            self.depth_to_color = extrinsic_matrix(depth_profile.get_extrinsics_to(color_profile))
            self.depth_info = camera_info_from_intrinsics(
                (color_profile if config.align_depth else depth_profile).get_intrinsics(),
                config.depth_frame_id)

    @property
    def is_playback(self) -> bool:
        """Whether the source is a recording."""
        return self._playback is not None

    def read(self) -> RGBDFrame:
        """Wait for the next complete frame set and return it.

        Frame sets missing a requested stream (the syncer emits those at start-up and on drops)
        are skipped within the timeout.

        Raises:
            EndOfRecordingError: a recording has played to its end.
            DeviceLostError: the device was disconnected.
            FrameTimeoutError: no complete frame set within ``config.timeout_s``.
            CameraError: librealsense failed while streaming.
        """
        if self._paused:
            self._paused = False
            self._playback.resume()
        deadline = time.monotonic() + self.config.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                ok, frames = self._pipeline.try_wait_for_frames(max(1, int(remaining * 1000)))
                if not ok:
                    break
                frame = self._convert(frames)
            except RuntimeError as error:
                raise CameraError(f'librealsense failed while streaming: {error}') from error
            if frame is not None:
                return frame
        self.stats.timeouts += 1
        if self._playback is not None and \
                self._playback.current_status() == rs.playback_status.stopped:
            raise EndOfRecordingError(f'recording {self.config.playback_file!r} ended after '
                                      f'{self.stats.frames} frame sets')
        if self._playback is None and self.serial not in connected_serials():
            raise DeviceLostError(f'RealSense device {self.serial} was disconnected')
        raise FrameTimeoutError(f'no complete frame set within {self.config.timeout_s} s')

    def _convert(self, frames: rs.composite_frame) -> RGBDFrame | None:
        start_ns = time.perf_counter_ns()
        receipt_ns = time.time_ns()
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        depth = frames.get_depth_frame() if self.config.depth is not None else None
        if not color or (self.config.depth is not None and not depth):
            self.stats.incomplete += 1
            return None
        number = color.get_frame_number()
        if self._last_frame_number is not None and number > self._last_frame_number:
            self.stats.dropped += number - self._last_frame_number - 1
        self._last_frame_number = number
        hw_ms = color.get_timestamp()
        domain = color.get_frame_timestamp_domain()
        if self._playback is None and domain in _HOST_DOMAINS:
            stamp_ns = round(hw_ms * 1e6)
            latency = (receipt_ns - stamp_ns) * 1e-9
            self.stats.latency_count += 1
            self.stats.latency_sum_s += latency
            self.stats.latency_max_s = max(self.stats.latency_max_s, latency)
        elif self._playback is not None and not self.config.playback_realtime:
            stamp_ns = self._clock_ns()
        else:
            if self._anchor is None:
                self._anchor = (self._clock_ns(), hw_ms)
            stamp_ns = self._anchor[0] + round((hw_ms - self._anchor[1]) * 1e6)
        stamp_ns = max(stamp_ns, self._last_stamp_ns + 1)
        self._last_stamp_ns = stamp_ns
        frame = RGBDFrame(
            color=np.array(color.get_data(), copy=True),
            encoding=self.config.color.format,
            depth=None if depth is None else np.array(depth.get_data(), copy=True),
            depth_scale=self.depth_scale, depth_aligned=self._align is not None,
            stamp_ns=stamp_ns, hw_timestamp_ms=hw_ms, timestamp_domain=domain.name,
            frame_number=number)
        stats = self.stats
        elapsed = (time.perf_counter_ns() - start_ns) * 1e-9
        stats.frames += 1
        stats.processing_sum_s += elapsed
        stats.processing_max_s = max(stats.processing_max_s, elapsed)
        stats.first_ns = stats.first_ns or receipt_ns
        stats.last_ns = receipt_ns
        return frame

    def __iter__(self) -> Iterator[RGBDFrame]:
        """Yield frame sets until a recording ends (a device streams until an error)."""
        while True:
            try:
                yield self.read()
            except EndOfRecordingError:
                return

    def close(self) -> None:
        """Stop streaming and release the device or file; safe to call twice."""
        if self._running:
            self._running = False
            self._pipeline.stop()

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
