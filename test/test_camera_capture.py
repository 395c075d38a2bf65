"""Capture core: a synthetic recording played back through pyrealsense2's real pipeline."""

from __future__ import annotations

import math

import camera_synthetic as syn
import numpy as np
import pyrealsense2 as rs
import pytest

from litedet_ros.camera.capture import (
    Camera,
    camera_info_from_intrinsics,
    connected_serials,
    intrinsics_from_camera_info,
)
from litedet_ros.camera.errors import (
    CameraError,
    EndOfRecordingError,
    NoDeviceError,
    NotARecordingError,
    UnsupportedProfileError,
)
from litedet_ros.camera.recording import write_recording
from litedet_ros.camera.types import CameraInfo, CaptureConfig, StreamProfile
from litedet_ros.errors import InvalidCameraInfoError, InvalidImageError, LitedetError


@pytest.fixture(scope='session')
def recordings(tmp_path_factory):
    return syn.write_synthetic(tmp_path_factory.getbasetemp() / 'camera')


def playback(path, **kwargs) -> CaptureConfig:
    return CaptureConfig(playback_file=str(path), playback_realtime=False, timeout_s=0.5,
                         **kwargs)


@pytest.fixture(scope='module')
def aligned_frames(recordings):
    with Camera(playback(recordings['scene'])) as camera:
        frames = list(camera)
        return camera, frames


def test_every_frame_is_delivered_once_in_order_with_increasing_stamps(aligned_frames):
    camera, frames = aligned_frames
    assert len(frames) == syn.FRAMES
    assert [f.frame_number for f in frames] == list(range(syn.FRAMES))
    assert [int(f.color[0, 0, 2]) for f in frames] == list(range(syn.FRAMES))
    assert np.all(np.diff([f.stamp_ns for f in frames]) > 0)
    assert camera.stats.frames == syn.FRAMES and camera.stats.dropped == 0
    assert all(f.timestamp_domain == 'hardware_clock' for f in frames)


def test_colour_is_the_recorded_gradient(aligned_frames):
    _, frames = aligned_frames
    frame = frames[7]
    assert frame.encoding == 'rgb8' and frame.color.shape == (syn.HEIGHT, syn.WIDTH, 3)
    np.testing.assert_array_equal(frame.color, syn.color_image(7))


def test_aligned_depth_is_in_metres_at_the_known_depths(aligned_frames):
    _, frames = aligned_frames
    box_uv = syn.depth_to_color_pixels(np.array([[0.0, 0.0, syn.BOX_M]]))[0]
    for frame in frames:
        assert frame.depth_aligned and frame.depth.shape == (syn.HEIGHT, syn.WIDTH)
        depth = frame.depth_m()
        plane = syn.PLANE_M + frame.frame_number * syn.PLANE_STEP_M
        # depth and colour of one frame belong together: the plane moved 1 mm per frame
        assert depth[440, 600] == pytest.approx(plane, abs=1e-6)
        assert depth[round(box_uv[1]), round(box_uv[0])] == pytest.approx(syn.BOX_M, abs=1e-6)


def test_alignment_moves_the_box_and_the_hole_to_their_colour_pixels(aligned_frames):
    _, frames = aligned_frames
    depth = frames[0].depth_m()
    half_x, half_y = syn.BOX_HALF_M
    corners = np.array([[-half_x, -half_y, syn.BOX_M], [half_x, half_y, syn.BOX_M]])
    (u0, v0), (u1, v1) = syn.depth_to_color_pixels(corners)
    row = depth[round((v0 + v1) / 2)]
    columns = np.flatnonzero(np.isclose(row, syn.BOX_M, atol=1e-6))
    assert columns.min() == pytest.approx(u0, abs=2) and columns.max() == pytest.approx(u1, abs=2)
    hu0, hu1, hv0, hv1 = syn.HOLE_PX
    k = syn.DEPTH_INFO.k
    hole_centre = np.array([[((hu0 + hu1) / 2 - k[0, 2]) * syn.PLANE_M / k[0, 0],
                             ((hv0 + hv1) / 2 - k[1, 2]) * syn.PLANE_M / k[1, 1], syn.PLANE_M]])
    hole_u, hole_v = syn.depth_to_color_pixels(hole_centre)[0]
    assert math.isnan(depth[round(hole_v), round(hole_u)])
    assert frames[0].depth[round(hole_v), round(hole_u)] == 0


def test_intrinsics_extrinsic_scale_and_frame_ids(aligned_frames):
    camera, _ = aligned_frames
    assert camera.serial == syn.SERIAL and camera.is_playback
    assert camera.depth_scale == pytest.approx(syn.DEPTH_SCALE)
    np.testing.assert_allclose(camera.color_info.k, syn.COLOR_INFO.k, atol=1e-4)
    assert camera.color_info.distortion_model == 'plumb_bob'
    assert camera.color_info.source_model == 'inverse_brown_conrady'
    assert camera.color_info.d.shape == (5,)
    assert camera.color_info.frame_id == 'camera_color_optical_frame'
    # aligned depth is described by the colour calibration, in the colour optical frame
    np.testing.assert_allclose(camera.depth_info.k, syn.COLOR_INFO.k, atol=1e-4)
    assert camera.depth_info.frame_id == 'camera_color_optical_frame'
    np.testing.assert_allclose(camera.depth_to_color, syn.DEPTH_TO_COLOR, atol=1e-6)


def test_unaligned_depth_is_the_recorded_depth_with_its_own_calibration(recordings):
    config = playback(recordings['scene'], align_depth=False, camera_name='wrist')
    with Camera(config) as camera:
        frame = camera.read()
        assert not frame.depth_aligned
        np.testing.assert_array_equal(frame.depth, syn.depth_image(frame.frame_number))
        np.testing.assert_allclose(camera.depth_info.k, syn.DEPTH_INFO.k, atol=1e-4)
        assert camera.depth_info.source_model == 'brown_conrady'
        assert camera.depth_info.frame_id == 'wrist_depth_optical_frame'
        assert camera.color_info.frame_id == 'wrist_color_optical_frame'


def test_colour_only_has_no_depth(recordings):
    with Camera(playback(recordings['scene'], depth=None, align_depth=False)) as camera:
        frame = camera.read()
        assert frame.depth is None and camera.depth_info is None
        with pytest.raises(CameraError, match='no depth'):
            frame.depth_m()


def test_wildcard_profile_takes_what_the_recording_offers(recordings):
    any_size = StreamProfile(0, 0, 0, 'rgb8')
    with Camera(playback(recordings['scene'], color=any_size, depth=None,
                         align_depth=False)) as camera:
        assert camera.read().color.shape == (syn.HEIGHT, syn.WIDTH, 3)


def test_end_of_recording_is_reported_after_the_last_frame(recordings):
    with Camera(playback(recordings['scene'], depth=None, align_depth=False)) as camera:
        for _ in range(syn.FRAMES):
            camera.read()
        with pytest.raises(EndOfRecordingError, match=f'after {syn.FRAMES} frame sets'):
            camera.read()
        assert camera.stats.timeouts == 1


def test_realtime_playback_keeps_the_recorded_rate_and_spacing(recordings):
    config = CaptureConfig(playback_file=str(recordings['scene']), playback_realtime=True,
                           timeout_s=0.5)
    with Camera(config) as camera:
        frames = list(camera)
        stats = camera.stats
    # real time is lossy like a live camera: a loaded machine skips frame sets (the first one
    # too), each skip after the first read is counted as dropped
    numbers = [f.frame_number for f in frames]
    assert numbers[0] <= 1 and numbers[-1] - numbers[0] + 1 == len(frames) + stats.dropped
    assert len(frames) >= syn.FRAMES // 2 and len(frames) + stats.dropped >= syn.FRAMES - 2
    recorded_rate = (numbers[-1] - numbers[0]) * 1e9 / (stats.last_ns - stats.first_ns)
    assert 24 <= recorded_rate <= 36
    spacing_ms = np.diff([f.stamp_ns for f in frames]) / 1e6
    hw_spacing_ms = np.diff([f.hw_timestamp_ms for f in frames])
    np.testing.assert_allclose(spacing_ms, hw_spacing_ms, atol=1e-3)
    assert np.median(spacing_ms) == pytest.approx(1000 / syn.FPS, abs=0.01)
    assert math.isnan(stats.latency_mean_s)  # recorded stamps are not host-clock times
    assert stats.processing_mean_s < 0.1


@pytest.mark.parametrize('request_kwargs, message', [
    ({'color': StreamProfile(640, 480, 30, 'bgr8')},
     'does not offer color .* it offers 640x480@30 rgb8'),
    ({'color': StreamProfile(1280, 720, 30, 'rgb8')}, 'does not offer color 1280x720@30'),
    ({'depth': StreamProfile(640, 480, 90, 'z16')}, 'does not offer depth 640x480@90 z16'),
])
def test_a_profile_the_recording_lacks_is_refused_with_what_it_offers(recordings, request_kwargs,
                                                                      message):
    with pytest.raises(UnsupportedProfileError, match=message):
        Camera(playback(recordings['scene'], **request_kwargs))


def test_depth_without_colour_is_refused(recordings):
    with pytest.raises(UnsupportedProfileError, match='no colour stream .*depth: 640x480@30 z16'):
        Camera(playback(recordings['depth_only']))


def test_a_file_that_is_not_a_recording_is_refused(recordings, tmp_path):
    with pytest.raises(NotARecordingError, match='not a librealsense recording'):
        Camera(playback(recordings['not_a_recording']))
    with pytest.raises(NotARecordingError, match='no such file'):
        Camera(playback(tmp_path / 'missing.db3'))


def test_no_device_is_a_typed_error():
    if connected_serials():
        pytest.skip('a RealSense device is connected; this test needs none')
    with pytest.raises(NoDeviceError, match='no RealSense device connected'):
        Camera(CaptureConfig())
    assert issubclass(NoDeviceError, LitedetError) and issubclass(NoDeviceError, ValueError)


def test_profile_strings_and_bad_configurations():
    assert StreamProfile.parse('1280x720x15', 'bgr8') == StreamProfile(1280, 720, 15, 'bgr8')
    assert StreamProfile.parse(' 848,480,60 ', 'z16') == StreamProfile(848, 480, 60, 'z16')
    with pytest.raises(UnsupportedProfileError, match='640x480x30'):
        StreamProfile.parse('640x480', 'rgb8')
    with pytest.raises(UnsupportedProfileError, match='unsupported stream format'):
        StreamProfile(640, 480, 30, 'yuyv')
    with pytest.raises(UnsupportedProfileError, match='colour format'):
        CaptureConfig(color=StreamProfile(640, 480, 30, 'z16'))
    with pytest.raises(CameraError, match='not both'):
        CaptureConfig(serial='1', playback_file='x.db3')
    with pytest.raises(CameraError, match='align_depth needs'):
        CaptureConfig(depth=None)
    with pytest.raises(CameraError, match='timeout_s'):
        CaptureConfig(timeout_s=0.0)
    with pytest.raises(CameraError, match='record_file needs'):
        CaptureConfig(record_file='bin.bag')
    with pytest.raises(CameraError, match='record_file needs'):
        CaptureConfig(record_file='bin.db3', playback_file='old.db3')


def test_intrinsics_round_trip_and_distortion_models():
    info = syn.COLOR_INFO
    back = camera_info_from_intrinsics(intrinsics_from_camera_info(info), 'f')
    np.testing.assert_allclose(back.k, info.k, atol=1e-4)
    assert back.source_model == info.source_model and back.frame_id == 'f'
    fisheye = rs.intrinsics()
    fisheye.width, fisheye.height, fisheye.fx, fisheye.fy = 848, 800, 286.0, 286.0
    fisheye.model = rs.distortion.kannala_brandt4
    fisheye.coeffs = [0.1, -0.2, 0.03, -0.004, 0.0]
    info = camera_info_from_intrinsics(fisheye, 'fisheye')
    assert info.distortion_model == 'equidistant'
    np.testing.assert_allclose(info.d, [0.1, -0.2, 0.03, -0.004], atol=1e-6)
    np.testing.assert_allclose(info.p[:, :3], info.k)
    with pytest.raises(InvalidCameraInfoError, match='K is all zero'):
        CameraInfo(640, 480, np.zeros((3, 3)), [])
    with pytest.raises(InvalidCameraInfoError, match='focal lengths'):
        CameraInfo(640, 480, [[0, 0, 320], [0, 615, 240], [0, 0, 1]], [])


def test_recording_writer_refuses_bad_input(tmp_path):
    kwargs = {'color_info': syn.COLOR_INFO, 'depth_info': None, 'paced': False}
    with pytest.raises(CameraError, match='.db3'):
        write_recording(str(tmp_path / 'a.bag'), [], **kwargs)
    with pytest.raises(InvalidImageError, match=r'color image must be uint8\[480, 640, 3\]'):
        write_recording(str(tmp_path / 'a.db3'), [(np.zeros((10, 10, 3), np.uint8), None)],
                        **kwargs)
