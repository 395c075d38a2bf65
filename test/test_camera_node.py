"""Camera node: the synthetic recording played through pyrealsense2 and published over DDS."""

from __future__ import annotations

import shutil

import camera_synthetic as syn
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 Jazzy wheels) is not installed')

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from litedet_ros import conversions, topics  # noqa: E402
from litedet_ros.camera.capture import connected_serials  # noqa: E402
from litedet_ros.camera.errors import UnsupportedProfileError  # noqa: E402
from litedet_ros.camera_node import CameraNode  # noqa: E402

PREFIX = '/camera/camera'
TOPICS = {'color': ('color/image_raw', Image), 'color_info': ('color/camera_info', CameraInfo),
          'depth': ('aligned_depth_to_color/image_raw', Image),
          'depth_info': ('aligned_depth_to_color/camera_info', CameraInfo)}


@pytest.fixture(scope='session')
def recordings(tmp_path_factory):
    return syn.write_synthetic(tmp_path_factory.getbasetemp() / 'camera')


@pytest.fixture
def received(ros_context, ros_executor):
    """Subscribe to the camera topics with sensor-data QoS; return the messages by topic."""
    listener = rclpy.create_node('camera_listener', context=ros_context)
    messages = {name: [] for name in TOPICS}
    for name, (topic, kind) in TOPICS.items():
        listener.create_subscription(kind, f'{PREFIX}/{topic}', messages[name].append,
                                     qos_profile_sensor_data)
    ros_executor.add_node(listener)
    return messages


def start_node(ros_context, ros_executor, **parameters) -> CameraNode:
    parameters = {'playback_realtime': True, 'frame_timeout': 0.3,
                  'reconnect_backoff_min': 0.05, 'reconnect_backoff_max': 0.2, **parameters}
    node = CameraNode(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in parameters.items()])
    ros_executor.add_node(node)
    return node


def test_node_publishes_the_recording_with_realsense_names_frames_and_values(
        ros_context, ros_executor, spin_until, received, recordings):
    node = start_node(ros_context, ros_executor, playback_file=str(recordings['scene']))
    assert spin_until(lambda: node.sessions == 1 and not node.enabled, timeout=10)
    spin_until(lambda: False, timeout=0.3)  # let the last messages arrive
    # Real-time playback skips the frames the reader is late for (6 of 30 on a loaded CI
    # machine); each one it skips is counted as dropped.
    stats = node.stats
    assert stats.frames >= syn.FRAMES // 2 and stats.frames + stats.dropped >= syn.FRAMES - 2
    colors, depths = received['color'], received['depth']
    assert len(colors) >= node.stats.frames - 3 and len(depths) >= node.stats.frames - 3

    color_stamps = [conversions.stamp_to_ns(m.header.stamp) for m in colors]
    assert np.all(np.diff(color_stamps) > 0)
    by_stamp = {conversions.stamp_to_ns(m.header.stamp): m for m in depths}
    paired = [(c, by_stamp[s]) for c, s in zip(colors, color_stamps) if s in by_stamp]
    assert len(paired) >= len(colors) - 3
    box_u, box_v = np.round(syn.depth_to_color_pixels(np.array([[0, 0, syn.BOX_M]]))[0])
    for color_msg, depth_msg in paired:
        assert color_msg.header.frame_id == 'camera_color_optical_frame'
        assert depth_msg.header.frame_id == 'camera_color_optical_frame'
        assert (color_msg.encoding, depth_msg.encoding) == ('rgb8', '16UC1')
        index = int(conversions.image_to_numpy(color_msg)[0, 0, 2])
        depth_m = conversions.image_to_numpy(depth_msg).astype(float) / 1000.0
        assert depth_m[440, 600] == pytest.approx(syn.PLANE_M + index * syn.PLANE_STEP_M)
        assert depth_m[int(box_v), int(box_u)] == pytest.approx(syn.BOX_M)

    for info in (received['color_info'][-1], received['depth_info'][-1]):
        assert (info.width, info.height, info.distortion_model) == (640, 480, 'plumb_bob')
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), syn.COLOR_INFO.k, atol=1e-4)
        assert info.header.frame_id == 'camera_color_optical_frame'


def test_unaligned_depth_goes_to_the_depth_topic_in_the_depth_frame(
        ros_context, ros_executor, spin_until, recordings):
    listener = rclpy.create_node('depth_listener', context=ros_context)
    depths = []
    listener.create_subscription(Image, topics.DEPTH_RAW_IMAGE, depths.append,
                                 qos_profile_sensor_data)
    ros_executor.add_node(listener)
    start_node(ros_context, ros_executor, playback_file=str(recordings['scene']),
               **{'align_depth.enable': False, 'camera_name': 'bin_cam'})
    assert spin_until(lambda: len(depths) >= 3)
    assert depths[0].header.frame_id == 'bin_cam_depth_optical_frame'
    depth = conversions.image_to_numpy(depths[0])
    index = round((depth[440, 600] / 1000.0 - syn.PLANE_M) / syn.PLANE_STEP_M)
    np.testing.assert_array_equal(depth, syn.depth_image(index))


def test_enable_service_stops_and_replays(ros_context, ros_executor, spin_until, received,
                                          recordings):
    node = start_node(ros_context, ros_executor, playback_file=str(recordings['scene']))
    client = node.create_client(SetBool, '~/enable')
    assert spin_until(lambda: len(received['color']) >= 3)
    future = client.call_async(SetBool.Request(data=False))
    assert spin_until(future.done) and future.result().success
    spin_until(lambda: False, timeout=0.5)
    count = len(received['color'])
    spin_until(lambda: False, timeout=0.3)
    assert len(received['color']) == count, 'published while disabled'
    future = client.call_async(SetBool.Request(data=True))
    assert spin_until(future.done)
    assert spin_until(lambda: node.sessions == 2 and len(received['color']) > count + 3)


def test_looped_playback_starts_over_with_increasing_stamps(ros_context, ros_executor,
                                                            spin_until, received, recordings):
    node = start_node(ros_context, ros_executor, playback_file=str(recordings['scene']),
                      playback_loop=True)
    assert spin_until(lambda: node.sessions >= 3, timeout=20)
    assert node.enabled
    stamps = [conversions.stamp_to_ns(m.header.stamp) for m in received['color']]
    assert len(stamps) > syn.FRAMES + 3
    assert np.all(np.diff(stamps) > 0)


def test_missing_file_is_retried_until_it_appears(ros_context, ros_executor, spin_until,
                                                  received, recordings, tmp_path):
    path = tmp_path / 'later.db3'
    node = start_node(ros_context, ros_executor, playback_file=str(path))
    assert spin_until(lambda: node.failed_opens >= 3)
    assert 'no such file' in node.last_error and node.sessions == 0
    assert received['color'] == []
    shutil.copy(recordings['scene'], path)
    assert spin_until(lambda: len(received['color']) >= 5)
    assert node.sessions == 1 and node.failed_opens == 0 and node.last_error == ''


def test_format_mismatch_is_refused_with_its_reason(ros_context, ros_executor, spin_until,
                                                    received, recordings):
    node = start_node(ros_context, ros_executor, playback_file=str(recordings['scene']),
                      **{'rgb_camera.color_format': 'BGR8'})
    assert spin_until(lambda: node.failed_opens >= 2)
    assert 'does not offer color 640x480@30 bgr8; it offers 640x480@30 rgb8' in node.last_error
    assert received['color'] == [] and node.sessions == 0


def test_no_device_and_no_file_retries_with_a_clear_error(ros_context, ros_executor,
                                                          spin_until):
    if connected_serials():
        pytest.skip('a RealSense device is connected; this test needs none')
    node = start_node(ros_context, ros_executor)
    assert spin_until(lambda: node.failed_opens >= 3)
    assert 'no RealSense device connected' in node.last_error


def test_bad_parameters_are_refused_at_start(ros_context):
    with pytest.raises(UnsupportedProfileError, match='640x480x30'):
        CameraNode(context=ros_context, parameter_overrides=[
            Parameter('rgb_camera.color_profile', value='640-480')])
