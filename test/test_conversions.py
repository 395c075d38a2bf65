"""Round-trips between ROS messages and core types, and refusal of malformed messages."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from litedet_ros import conversions
from litedet_ros.detection.types import Detections
from litedet_ros.errors import InvalidImageError, InvalidMessageError
from litedet_ros.grasping.types import Grasp, Push
from litedet_ros.motion.status import PickOutcome, PickResult, PickState, PickStatus

RNG = np.random.default_rng(7)


@pytest.mark.parametrize('encoding,shape,dtype', [
    ('rgb8', (4, 5, 3), np.uint8), ('bgr8', (3, 2, 3), np.uint8), ('mono8', (6, 7), np.uint8),
    ('16UC1', (4, 3), np.uint16), ('mono16', (2, 2), np.uint16), ('32FC1', (5, 4), np.float32)])
def test_image_round_trip(encoding, shape, dtype):
    pixels = (RNG.random(shape) * 200).astype(dtype)
    msg = conversions.numpy_to_image(pixels, encoding, 1_700_000_000_123_456_789, 'cam')
    assert msg.step == shape[1] * (shape[2] if len(shape) == 3 else 1) * np.dtype(dtype).itemsize
    assert msg.header.stamp.sec == 1_700_000_000 and msg.header.stamp.nanosec == 123_456_789
    back = conversions.image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, pixels)


def test_image_with_padded_rows_and_big_endian_depth():
    depth = np.array([[1000, 2000, 65535], [0, 1, 513]], dtype=np.uint16)
    msg = conversions.numpy_to_image(depth, '16UC1', 0, 'cam')
    rows = depth.astype('>u2').tobytes()
    msg.is_bigendian = 1
    msg.step = 8  # 6 bytes of pixels and 2 bytes of padding per row
    msg.data = rows[:6] + b'\xff\xff' + rows[6:] + b'\xff\xff'
    np.testing.assert_array_equal(conversions.image_to_numpy(msg), depth)


@pytest.mark.parametrize('mutate,message', [
    (lambda m: setattr(m, 'encoding', 'yuv422'), 'unsupported image encoding'),
    (lambda m: setattr(m, 'step', 5), 'shorter than one'),
    (lambda m: setattr(m, 'data', bytes(m.data)[:-1]), 'truncated'),
    (lambda m: (setattr(m, 'width', 0), setattr(m, 'step', 0), setattr(m, 'data', b'')),
     'zero size'),
])
def test_malformed_images_are_refused(mutate, message):
    msg = conversions.numpy_to_image(np.zeros((2, 2, 3), np.uint8), 'rgb8', 0, 'cam')
    mutate(msg)
    with pytest.raises(InvalidImageError, match=message):
        conversions.image_to_numpy(msg)


def test_numpy_to_image_refuses_mismatched_dtype_and_shape():
    with pytest.raises(InvalidImageError, match='dtype'):
        conversions.numpy_to_image(np.zeros((2, 2), np.float64), '32FC1', 0, 'cam')
    with pytest.raises(InvalidImageError, match='shape'):
        conversions.numpy_to_image(np.zeros((2, 2), np.uint8), 'rgb8', 0, 'cam')


def test_stamp_round_trip_keeps_nanoseconds_and_refuses_negative():
    stamp_ns = 1_763_766_000_999_999_999
    assert conversions.stamp_to_ns(conversions.ns_to_stamp(stamp_ns)) == stamp_ns
    with pytest.raises(InvalidMessageError):
        conversions.ns_to_stamp(-1)


def test_pose_round_trip_and_bad_quaternion():
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler('xyz', [0.3, -1.2, 2.5]).as_matrix()
    matrix[:3, 3] = [0.4, -0.2, 0.15]
    np.testing.assert_allclose(conversions.pose_to_matrix(conversions.matrix_to_pose(matrix)),
                               matrix, atol=1e-12)
    pose = conversions.matrix_to_pose(matrix)
    pose.orientation.w = 5.0
    with pytest.raises(InvalidMessageError, match='unit length'):
        conversions.pose_to_matrix(pose)
    pose.orientation.w = float('nan')
    with pytest.raises(InvalidMessageError, match='NaN'):
        conversions.pose_to_matrix(pose)


def make_detections():
    return Detections(
        boxes=[[10.5, 20.0, 110.25, 220.0], [0.0, 0.0, 640.0, 480.0]], scores=[0.9, 0.4],
        class_ids=[2, 0], labels=('can', 'box'), image_size=(640, 480),
        stamp_ns=42_000_000_001, frame_id='camera_color_optical_frame')


def test_detections_round_trip():
    detections = make_detections()
    msg = conversions.detections_to_msg(detections)
    assert (msg.image_width, msg.image_height) == (640, 480)
    assert [d.label for d in msg.detections] == ['can', 'box']
    back = conversions.msg_to_detections(msg)
    np.testing.assert_array_equal(back.boxes, detections.boxes)
    np.testing.assert_array_equal(back.scores, detections.scores)
    np.testing.assert_array_equal(back.class_ids, detections.class_ids)
    assert back.labels == detections.labels
    assert (back.stamp_ns, back.frame_id) == (detections.stamp_ns, detections.frame_id)


def test_empty_detections_round_trip():
    empty = Detections(np.zeros((0, 4)), [], [], (), (640, 480), 5, 'cam')
    back = conversions.msg_to_detections(conversions.detections_to_msg(empty))
    assert len(back) == 0 and back.image_size == (640, 480)


@pytest.mark.parametrize('box', [[10, 10, 10, 50], [-1, 0, 5, 5], [600, 400, 641, 470],
                                 [5, 50, 20, 40]])
def test_detection_boxes_outside_image_or_empty_are_refused(box):
    msg = conversions.detections_to_msg(make_detections())
    d = msg.detections[0]
    d.x_min, d.y_min, d.x_max, d.y_max = (float(v) for v in box)
    with pytest.raises(InvalidMessageError, match='outside'):
        conversions.msg_to_detections(msg)


def test_detections_refuse_zero_image_size():
    msg = conversions.detections_to_msg(make_detections())
    msg.image_width = 0
    with pytest.raises(InvalidMessageError, match='image size'):
        conversions.msg_to_detections(msg)


def make_grasp(score, index):
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler('x', np.pi).as_matrix()  # approach straight down
    pose[:3, 3] = [0.5, 0.1, 0.05]
    return Grasp(pose=pose, width=0.06, score=score, detection_index=index,
                 frame_id='base_link', stamp_ns=42_000_000_001)


def test_grasp_array_is_ranked_and_round_trips_with_source_detection():
    detection_msg = conversions.detections_to_msg(make_detections())
    grasps = [make_grasp(0.3, 1), make_grasp(0.8, 0), make_grasp(0.5, -1)]
    msg = conversions.grasps_to_msg(grasps, detection_msg, 42_000_000_001, 'base_link')
    assert [g.score for g in msg.grasps] == pytest.approx([0.8, 0.5, 0.3])
    assert msg.num_detections == len(detection_msg.detections) == 2
    assert msg.grasps[0].detection.label == 'can'
    assert msg.grasps[1].detection.label == ''  # no source detection
    np.testing.assert_allclose(
        [msg.grasps[0].approach.x, msg.grasps[0].approach.y, msg.grasps[0].approach.z],
        [0, 0, -1], atol=1e-12)
    back = conversions.msg_to_grasps(msg)
    assert [g.detection_index for g in back] == [0, -1, 1]
    boxes = make_detections().boxes
    assert back[0].box == pytest.approx(tuple(boxes[0])) and back[1].box is None
    assert back[2].box == pytest.approx(tuple(boxes[1]))
    np.testing.assert_allclose(back[0].pose, grasps[1].pose, atol=1e-12)
    assert back[0].width == pytest.approx(0.06) and back[0].frame_id == 'base_link'


def test_grasp_array_counts_the_detections_it_was_planned_from():
    detection_msg = conversions.detections_to_msg(make_detections())
    refused = conversions.grasps_to_msg([], detection_msg, 42_000_000_001, 'base_link')
    assert refused.grasps == [] and refused.num_detections == 2  # seen, no feasible grasp
    empty_bin = conversions.grasps_to_msg([], type(detection_msg)(), 1, 'base_link')
    assert empty_bin.num_detections == 0
    assert conversions.grasps_to_msg([make_grasp(0.5, -1)], None, 1, 'base_link'
                                     ).num_detections == 0  # source unknown


def test_a_grasp_of_a_part_found_in_depth_only_carries_its_box_and_is_counted():
    detection_msg = conversions.detections_to_msg(make_detections())
    missed = replace(make_grasp(0.7, -1), box=(100.0, 120.0, 160.0, 170.0))
    msg = conversions.grasps_to_msg([missed, make_grasp(0.2, 0)], detection_msg, 1,
                                    'base_link', undetected=1)
    assert msg.num_detections == 3  # two detections and the part found in depth
    source = msg.grasps[0].detection
    assert (source.label, source.class_id, source.score) == (conversions.UNDETECTED_LABEL, -1, 0)
    back = conversions.msg_to_grasps(msg)
    assert back[0].detection_index == -1 and back[0].box == pytest.approx(missed.box)
    assert back[1].detection_index == 0 and back[1].box == pytest.approx(
        tuple(make_detections().boxes[0]))


def test_pushes_offered_instead_of_grasps_round_trip_in_rank_order():
    detection_msg = conversions.detections_to_msg(make_detections())
    start = make_grasp(0.5, 0).pose
    ends = [start.copy(), start.copy()]
    ends[0][:3, 3] += (0.05, 0.0, 0.0)
    ends[1][:3, 3] += (0.0, -0.03, 0.0)
    msg = conversions.grasps_to_msg([], detection_msg, 42_000_000_001, 'base_link',
                                    (Push(start, ends[0], 1), Push(start, ends[1], 0)))
    assert msg.grasps == [] and [p.detection_index for p in msg.pushes] == [1, 0]
    pushes = conversions.msg_to_pushes(msg)
    assert [p.detection_index for p in pushes] == [1, 0]
    for push, end in zip(pushes, ends):
        np.testing.assert_allclose(push.start, start, atol=1e-12)
        np.testing.assert_allclose(push.end, end, atol=1e-12)
        assert push.frame_id == 'base_link' and push.stamp_ns == 42_000_000_001
    assert [p.length for p in pushes] == pytest.approx([0.05, 0.03])
    assert conversions.msg_to_pushes(conversions.grasps_to_msg([], detection_msg, 1, 'b')) == ()
    msg.pushes[1].end.orientation.w = float('nan')
    with pytest.raises(InvalidMessageError):
        conversions.msg_to_pushes(msg)


def test_grasp_with_inconsistent_approach_or_bad_width_is_refused():
    msg = conversions.grasp_to_msg(make_grasp(0.5, 0))
    msg.approach.z = 1.0
    with pytest.raises(InvalidMessageError, match='approach'):
        conversions.msg_to_grasp(msg)
    msg = conversions.grasp_to_msg(make_grasp(0.5, 0))
    msg.width = 0.0
    with pytest.raises(InvalidMessageError, match='width'):
        conversions.msg_to_grasp(msg)


def test_pick_status_round_trip_and_unknown_codes():
    status = PickStatus(
        state=PickState.TRANSPORTING, enabled=True, attempts=7, successes=5, failures=2,
        consecutive_failures=1,
        last_result=PickResult(PickOutcome.FAILED, 'grasp slipped: finger width 0.0 m', 3.5),
        stamp_ns=9)
    assert conversions.msg_to_pick_status(conversions.pick_status_to_msg(status)) == status
    msg = conversions.pick_status_to_msg(status)
    msg.state = 200
    with pytest.raises(InvalidMessageError, match='unknown'):
        conversions.msg_to_pick_status(msg)


def test_camera_info_round_trip_and_zero_intrinsics():
    from litedet_ros.camera.types import CameraInfo
    from litedet_ros.errors import InvalidCameraInfoError

    info = CameraInfo(width=640, height=480, k=[[615.0, 0, 319.5], [0, 615.5, 239.5], [0, 0, 1]],
                      d=[0.1, -0.2, 0.001, 0.002, 0.0], frame_id='camera_color_optical_frame')
    msg = conversions.camera_info_to_msg(info, 123)
    assert list(msg.p) == [615.0, 0, 319.5, 0, 0, 615.5, 239.5, 0, 0, 0, 1, 0]
    assert list(msg.r) == [1, 0, 0, 0, 1, 0, 0, 0, 1]
    back = conversions.msg_to_camera_info(msg)
    np.testing.assert_array_equal(back.k, info.k)
    np.testing.assert_array_equal(back.d, info.d)
    assert (back.width, back.height, back.frame_id, back.distortion_model) == \
        (640, 480, 'camera_color_optical_frame', 'plumb_bob')
    msg.k = [0.0] * 9
    with pytest.raises(InvalidCameraInfoError):
        conversions.msg_to_camera_info(msg)


def test_joint_trajectory_round_trip_and_ragged_points():
    trajectory = conversions.JointTrajectory(
        ('a', 'b'), np.array([0.0, 0.5, 1.25]), np.array([[0.0, 1.0], [0.1, 1.1], [0.2, 1.3]]),
        np.array([[0.0, 0.0], [0.2, 0.3], [0.0, 0.0]]))
    msg = conversions.joint_trajectory_to_msg(trajectory)
    assert msg.points[2].time_from_start.sec == 1
    assert msg.points[2].time_from_start.nanosec == 250_000_000
    back = conversions.msg_to_joint_trajectory(msg)
    assert back.joint_names == ('a', 'b')
    np.testing.assert_allclose(back.times, trajectory.times)
    np.testing.assert_allclose(back.positions, trajectory.positions)
    np.testing.assert_allclose(back.velocities, trajectory.velocities)
    msg.points[1].velocities = []
    assert conversions.msg_to_joint_trajectory(msg).velocities is None
    msg.points[1].positions = [0.1]
    with pytest.raises(InvalidMessageError, match='point 1'):
        conversions.msg_to_joint_trajectory(msg)


def test_object_states_to_msg():
    from types import SimpleNamespace

    pose = np.eye(4)
    pose[:3, 3] = [0.5, 0.0, 0.05]
    state = SimpleNamespace(id=3, class_id=1, label='can', pose=pose, location=2)
    msg = conversions.object_states_to_msg([state], 7, 'world')
    assert msg.header.frame_id == 'world' and len(msg.objects) == 1
    assert (msg.objects[0].id, msg.objects[0].label, msg.objects[0].location) == (3, 'can', 2)
    np.testing.assert_allclose(conversions.pose_to_matrix(msg.objects[0].pose), pose)
