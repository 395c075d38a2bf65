"""Pinhole model, depth decoding and box cropping of the grasp planner (no ROS needed)."""

import numpy as np
import pytest

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.errors import InvalidCameraInfoError, InvalidImageError
from litedet_ros.grasping.camera import DepthUnitsError, decode_depth
from litedet_ros.grasping.segmentation import GraspDropError, box_pixel_range
from litedet_ros.grasping.synthetic import Cuboid, render_depth

K = [615.0, 0.0, 321.5, 0.0, 612.0, 238.25, 0.0, 0.0, 1.0]


def test_from_k_reads_intrinsics():
    camera = PinholeCamera.from_k(K, 640, 480)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (615.0, 612.0, 321.5, 238.25)


@pytest.mark.parametrize('k, width, height', [
    ([0.0] * 9, 640, 480),              # uncalibrated camera: all-zero K
    (K[:8], 640, 480),                  # truncated K
    ([-615.0] + K[1:], 640, 480),       # negative focal length
    ([float('nan')] + K[1:], 640, 480),
    (K, 0, 480),                        # zero-size image
])
def test_bad_intrinsics_are_refused(k, width, height):
    with pytest.raises(InvalidCameraInfoError):
        PinholeCamera.from_k(k, width, height)


def test_deprojection_matches_a_rendered_tilted_plane():
    camera = PinholeCamera.from_k(K, 64, 48)
    normal = np.array([0.2, -0.3, 1.0]) / np.linalg.norm([0.2, -0.3, 1.0])
    tangent = np.cross([0.0, 1.0, 0.0], normal)
    tangent /= np.linalg.norm(tangent)
    rotation = np.stack([tangent, np.cross(normal, tangent), normal], axis=1)
    slab = Cuboid(np.array([0.0, 0.0, 0.6]) + rotation[:, 2] * 0.005,  # face at the plane
                  np.array([1.0, 1.0, 0.005]), rotation)
    depth, _ = render_depth(camera, np.eye(4), [slab])
    v, u = np.mgrid[0:48, 0:64]
    points = camera.deproject(u.ravel(), v.ravel(), depth.ravel())
    distance = (points - [0.0, 0.0, 0.6]) @ rotation[:, 2]
    assert np.abs(distance).max() < 1e-5
    np.testing.assert_allclose(camera.project(points), np.stack([u.ravel(), v.ravel()], 1),
                               atol=1e-6)


def test_16uc1_millimetres_decode_to_metres_with_zero_invalid():
    raw = np.array([[700, 0], [65535, 1500]], dtype=np.uint16)
    depth = decode_depth(raw, '16UC1', 1000.0)
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth[0, 0], 0.7)
    np.testing.assert_allclose(depth[1, 1], 1.5)
    assert np.isnan(depth[0, 1]) and np.isnan(depth[1, 0])  # 0 and beyond range are invalid


def test_32fc1_nan_and_inf_are_invalid():
    raw = np.array([[0.7, np.nan], [np.inf, -np.inf]], dtype=np.float32)
    depth = decode_depth(raw, '32FC1')
    assert depth[0, 0] == pytest.approx(0.7)
    assert np.isnan(depth).sum() == 3


def test_all_invalid_depth_decodes_to_all_nan():
    assert np.isnan(decode_depth(np.zeros((4, 4), np.uint16), '16UC1')).all()


@pytest.mark.parametrize('raw, encoding, divisor', [
    (np.full((4, 4), 700.0, np.float32), '32FC1', 1000.0),   # millimetres sent as metres
    (np.full((4, 4), 700, np.uint16), '16UC1', 1.0),          # divisor 1 on a millimetre image
    (np.full((4, 4), 1, np.uint16), '16UC1', 1000.0),         # metres sent as integer mm
])
def test_unit_confusion_is_refused(raw, encoding, divisor):
    with pytest.raises(DepthUnitsError):
        decode_depth(raw, encoding, divisor)


@pytest.mark.parametrize('raw, encoding', [
    (np.zeros((4, 4), np.uint8), 'mono8'),
    (np.zeros((4, 4), np.float32), '16UC1'),
    (np.zeros((4, 4), np.uint16), '32FC1'),
    (np.zeros((0, 4), np.uint16), '16UC1'),
    (np.zeros((4, 4, 3), np.uint16), '16UC1'),
])
def test_bad_depth_images_are_refused(raw, encoding):
    with pytest.raises(InvalidImageError):
        decode_depth(raw, encoding)


def test_box_pixel_range_keeps_pixel_centres_inside_and_clips():
    assert box_pixel_range(np.array([10.0, 20.0, 30.0, 40.0]), 640, 480) == (10, 20, 30, 40)
    assert box_pixel_range(np.array([10.4, 20.6, 30.4, 40.6]), 640, 480) == (10, 21, 30, 41)
    assert box_pixel_range(np.array([-50.0, -5.0, 30.0, 500.0]), 640, 480) == (0, 0, 30, 480)


@pytest.mark.parametrize('box, reason', [
    ([700.0, 10.0, 720.0, 30.0], 'box_outside_image'),
    ([-30.0, -30.0, -10.0, -10.0], 'box_outside_image'),
    ([10.0, 10.0, 10.0, 30.0], 'box_zero_area'),
    ([10.0, 30.0, 20.0, 10.0], 'box_zero_area'),
    ([10.6, 10.0, 11.4, 30.0], 'box_zero_area'),  # holds no pixel centre
])
def test_unusable_boxes_name_their_reason(box, reason):
    with pytest.raises(GraspDropError) as raised:
        box_pixel_range(np.array(box), 640, 480)
    assert raised.value.reason == reason
