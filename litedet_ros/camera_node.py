"""RealSense camera node: colour, aligned depth and camera info with realsense-ros 4.x names.

Publishes (relative names, see :mod:`litedet_ros.topics`), all with sensor-data QoS (best effort,
keep last 5):

- ``camera/camera/color/image_raw`` (rgb8 or bgr8) and ``camera/camera/color/camera_info``
- ``camera/camera/aligned_depth_to_color/image_raw`` and ``.../camera_info``
  (``align_depth.enable``, the default)
- ``camera/camera/depth/image_rect_raw`` and ``.../camera_info`` (depth not aligned)

Depth is ``16UC1`` millimetres when the device's depth unit is 1 mm (D400 series), else ``32FC1``
metres. Frame ids: ``<camera_name>_color_optical_frame`` (aligned depth too) and
``<camera_name>_depth_optical_frame``.

Service ``~/enable`` (``std_srvs/SetBool``) starts and stops streaming. A capture thread owns the
device: with no device (or no readable file) it logs the reason and retries with exponential
backoff; on device loss it stops publishing, closes the pipeline and reconnects the same way. A
recording played to its end stops the stream; ``~/enable`` false then true replays it.
"""

from __future__ import annotations

import threading

from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool

from litedet_ros import conversions, topics
from litedet_ros.bringup.spin import spin_node
from litedet_ros.camera.capture import Camera
from litedet_ros.camera.errors import CameraError, EndOfRecordingError, FrameTimeoutError
from litedet_ros.camera.types import CaptureConfig, CaptureStats, RGBDFrame, StreamProfile
from litedet_ros.errors import LitedetError

#: Consecutive frame timeouts after which the pipeline is reopened.
_TIMEOUTS_BEFORE_RECONNECT = 3


def _descriptor(description: str, low: float | None = None,
                high: float | None = None) -> ParameterDescriptor:
    ranges = [] if low is None else [FloatingPointRange(from_value=low, to_value=high)]
    return ParameterDescriptor(description=description, read_only=True,
                               floating_point_range=ranges)


PARAMETERS = {
    'serial_no': ('', _descriptor('Serial number of the device; empty opens the first found.')),
    'playback_file': ('', _descriptor('librealsense recording (.bag, .db3) to play instead of a '
                                      'device.')),
    'playback_realtime': (True, _descriptor('Play the recording at its recorded rate; false '
                                            'reads it as fast as frames are published.')),
    'playback_loop': (False, _descriptor('Start a recording over when it ends (stamps keep '
                                         'increasing); false stops streaming at its end.')),
    'rgb_camera.color_profile': ('640x480x30', _descriptor('Colour WIDTHxHEIGHTxFPS (0x0x0: '
                                                           'any).')),
    'rgb_camera.color_format': ('rgb8', _descriptor('Colour encoding: rgb8 or bgr8.')),
    'enable_depth': (True, _descriptor('Stream depth.')),
    'depth_module.depth_profile': ('640x480x30', _descriptor('Depth WIDTHxHEIGHTxFPS (0x0x0: '
                                                             'any).')),
    'align_depth.enable': (True, _descriptor('Publish depth re-projected into the colour '
                                             'camera.')),
    'camera_name': ('camera', _descriptor('Frame-id prefix (<camera_name>_color_optical_frame).')),
    'frame_timeout': (1.0, _descriptor('Longest wait for one frame set, s.', 0.05, 60.0)),
    'reconnect_backoff_min': (0.5, _descriptor('First retry delay after a failed open, s.',
                                               0.01, 60.0)),
    'reconnect_backoff_max': (8.0, _descriptor('Longest retry delay, s.', 0.01, 600.0)),
}


class CameraNode(Node):
    """Publish RealSense colour and depth from a device or a recording."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('camera_node', **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        param = self._param
        depth = None
        if param('enable_depth'):
            depth = StreamProfile.parse(param('depth_module.depth_profile'), 'z16')
        self.config = CaptureConfig(
            serial=param('serial_no'), playback_file=param('playback_file'),
            color=StreamProfile.parse(param('rgb_camera.color_profile'),
                                      param('rgb_camera.color_format').lower()),
            depth=depth, align_depth=param('align_depth.enable') and depth is not None,
            playback_realtime=param('playback_realtime'), camera_name=param('camera_name'),
            timeout_s=param('frame_timeout'))
        self._loop = bool(param('playback_loop'))
        self._backoff = (param('reconnect_backoff_min'), param('reconnect_backoff_max'))
        if self._backoff[0] > self._backoff[1]:
            raise CameraError(f'reconnect_backoff_min {self._backoff[0]} s exceeds '
                              f'reconnect_backoff_max {self._backoff[1]} s')

        qos = qos_profile_sensor_data
        self._color_pub = self.create_publisher(Image, topics.COLOR_IMAGE, qos)
        self._color_info_pub = self.create_publisher(CameraInfoMsg, topics.COLOR_INFO, qos)
        self._depth_pub = self._depth_info_pub = None
        if self.config.depth is not None:
            aligned = self.config.align_depth
            self._depth_pub = self.create_publisher(
                Image, topics.DEPTH_IMAGE if aligned else topics.DEPTH_RAW_IMAGE, qos)
            self._depth_info_pub = self.create_publisher(
                CameraInfoMsg, topics.DEPTH_INFO if aligned else topics.DEPTH_RAW_INFO, qos)
        self.create_service(SetBool, '~/enable', self._on_enable)

        #: Counters of the current (or last) capture session; replaced on every (re)open.
        self.stats = CaptureStats()
        #: Failed open attempts since the last successful one, and sessions opened so far.
        self.failed_opens = 0
        self.sessions = 0
        self.publish_errors = 0
        #: The reason of the latest failure to open or read, empty while streaming.
        self.last_error = ''
        self._enabled = threading.Event()
        self._enabled.set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture_loop, name='camera_capture',
                                        daemon=True)
        self._thread.start()

    @property
    def enabled(self) -> bool:
        """Whether streaming is on (off after ``~/enable`` false or the end of a recording)."""
        return self._enabled.is_set()

    def _param(self, name: str) -> object:
        return self.get_parameter(name).value

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            self._enabled.set()
        else:
            self._enabled.clear()
        self._wake.set()
        response.success = True
        response.message = 'streaming enabled' if request.data else 'streaming disabled'
        return response

    def _capture_loop(self) -> None:
        camera: Camera | None = None
        delay = self._backoff[0]
        timeouts = 0
        try:
            while not self._stop.is_set() and self.context.ok():
                if not self._enabled.is_set():
                    camera = self._close(camera)
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                if camera is None:
                    try:
                        camera = Camera(self.config, self._now_ns)
                    except CameraError as error:
                        self.failed_opens += 1
                        self.last_error = str(error)
                        self.get_logger().error(f'{error}; retrying in {delay:.2f} s')
                        self._wake.wait(delay)
                        self._wake.clear()
                        delay = min(2 * delay, self._backoff[1])
                        continue
                    self._log_opened(camera)
                    self.stats, self.failed_opens, timeouts = camera.stats, 0, 0
                    self.sessions += 1
                    self.last_error = ''
                    delay = self._backoff[0]
                try:
                    frame = camera.read()
                    timeouts = 0
                except EndOfRecordingError as error:
                    camera = self._close(camera)
                    if self._loop:
                        self.get_logger().info(f'{error}; playing it again')
                        continue
                    self.get_logger().info(f'{error}; streaming stopped (call ~/enable to replay)')
                    self._enabled.clear()
                    continue
                except FrameTimeoutError as error:
                    timeouts += 1
                    self.last_error = str(error)
                    self.get_logger().warning(str(error), throttle_duration_sec=5.0)
                    if timeouts < _TIMEOUTS_BEFORE_RECONNECT:
                        continue
                    camera = self._close(camera)
                    continue
                except CameraError as error:
                    self.last_error = str(error)
                    self.get_logger().error(f'{error}; reconnecting')
                    camera = self._close(camera)
                    continue
                self._publish(camera, frame)
        except Exception:
            if self.context.ok():
                raise
            # Ctrl-C shut the context down between the check above and a publish: a normal end.
        finally:
            self._close(camera)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _log_opened(self, camera: Camera) -> None:
        depth = f', depth {self.config.depth}' if self.config.depth else ''
        self.get_logger().info(
            f'{"playing" if camera.is_playback else "streaming"} {camera.name} '
            f'(S/N {camera.serial}): colour {self.config.color}{depth}, '
            f'align_depth={self.config.align_depth}')

    def _close(self, camera: Camera | None) -> None:
        if camera is not None:
            camera.close()
            stats = camera.stats
            self.get_logger().info(
                f'closed: {stats.frames} frame sets, {stats.dropped} dropped, '
                f'{stats.fps:.1f} fps, processing {stats.processing_mean_s * 1e3:.1f} ms/frame')
        return None

    def _publish(self, camera: Camera, frame: RGBDFrame) -> None:
        try:
            color = conversions.numpy_to_image(frame.color, frame.encoding, frame.stamp_ns,
                                               camera.color_info.frame_id)
            color_info = conversions.camera_info_to_msg(camera.color_info, frame.stamp_ns)
            if self._depth_pub is not None:
                if abs(frame.depth_scale - 0.001) < 1e-7:
                    depth = conversions.numpy_to_image(frame.depth, '16UC1', frame.stamp_ns,
                                                       camera.depth_info.frame_id)
                else:
                    depth = conversions.numpy_to_image(frame.depth_m(), '32FC1', frame.stamp_ns,
                                                       camera.depth_info.frame_id)
                depth_info = conversions.camera_info_to_msg(camera.depth_info, frame.stamp_ns)
        except LitedetError as error:
            self.publish_errors += 1
            self.get_logger().error(f'frame {frame.frame_number} not published: {error}',
                                    throttle_duration_sec=5.0)
            return
        self._color_pub.publish(color)
        self._color_info_pub.publish(color_info)
        if self._depth_pub is not None:
            self._depth_pub.publish(depth)
            self._depth_info_pub.publish(depth_info)

    def destroy_node(self) -> None:
        """Stop the capture thread (it closes the device) and destroy the node."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run the camera node until shutdown."""
    spin_node(CameraNode, args)


if __name__ == '__main__':
    main()
