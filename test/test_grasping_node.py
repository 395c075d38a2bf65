"""Grasp planner node, real messages: matched inputs in, ranked grasps out, bad input counted."""

from __future__ import annotations

import json

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 Jazzy wheels) is not installed')

from geometry_msgs.msg import PoseArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo as CameraInfoMsg  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from litedet_ros import conversions, topics  # noqa: E402
from litedet_ros.camera.types import CameraInfo, PinholeCamera  # noqa: E402
from litedet_ros.detection.types import Detections  # noqa: E402
from litedet_ros.grasp_planner_node import GraspPlannerNode  # noqa: E402
from litedet_ros.grasping.config import BinGeometry  # noqa: E402
from litedet_ros.grasping.synthetic import (  # noqa: E402
    Cuboid,
    bin_solids,
    look_down_pose,
    render_depth,
    rotation_z,
    visible_box,
)
from litedet_ros.motion.status import PickState  # noqa: E402
from litedet_ros.msg import DetectionArray, GraspArray, PickStatus  # noqa: E402

CAMERA = PinholeCamera(615.0, 615.0, 160.0, 120.0, 320, 240)
FRAME = 'camera_color_optical_frame'
BOX = Cuboid(np.array([0.02, -0.03, 0.025]), np.array([0.03, 0.02, 0.025]), rotation_z(0.4))


@pytest.fixture(scope='module')
def scene():
    bin_geometry = BinGeometry(wall_height=0.12)
    solids = bin_solids(bin_geometry) + [BOX]
    depth, ids = render_depth(CAMERA, look_down_pose(0.7), solids)
    return depth, visible_box(ids, len(solids) - 1)


@pytest.fixture
def graph(ros_context, ros_executor):
    """The node under test (look-down camera, bin at the origin) and a test client node."""
    overrides = [Parameter('camera_pose', value=[0.0, 0.0, 0.7, 1.0, 0.0, 0.0, 0.0]),
                 Parameter('bin_pose', value=[0.0, 0.0, 0.0, 0.0]),
                 Parameter('bin_wall_height', value=0.12), Parameter('stats_period', value=0.2)]
    node = GraspPlannerNode(context=ros_context, parameter_overrides=overrides)
    client = rclpy.create_node('grasp_test_client', context=ros_context)
    received = {'grasps': [], 'poses': [], 'markers': [], 'latency': []}
    client.create_subscription(GraspArray, topics.GRASPS, received['grasps'].append, 10)
    client.create_subscription(PoseArray, topics.GRASP_POSES, received['poses'].append, 10)
    client.create_subscription(MarkerArray, topics.GRASP_MARKERS, received['markers'].append,
                               10)
    client.create_subscription(String, '/grasp_planner_node/latency', received['latency'].append,
                               10)
    publishers = {
        'detections': client.create_publisher(DetectionArray, topics.DETECTIONS, 10),
        'depth': client.create_publisher(Image, topics.DEPTH_IMAGE, qos_profile_sensor_data),
        'info': client.create_publisher(CameraInfoMsg, topics.DEPTH_INFO,
                                        qos_profile_sensor_data)}
    ros_executor.add_node(node)
    ros_executor.add_node(client)
    return node, publishers, received


def send(publishers, stamp_ns, depth, box, *, encoding='16UC1', k=None,
         detection_stamp_ns=None, detection_frame=FRAME):
    """Publish one (detections, depth, camera_info) set; wait until the node has it all."""
    k = np.array([[CAMERA.fx, 0, CAMERA.cx], [0, CAMERA.fy, CAMERA.cy], [0, 0, 1]]) \
        if k is None else k
    info = conversions.camera_info_to_msg(
        CameraInfo(CAMERA.width, CAMERA.height, np.eye(3), np.zeros(5), frame_id=FRAME),
        stamp_ns)
    info.k = [float(v) for v in np.ravel(k)]
    pixels = (np.nan_to_num(depth) * 1000).astype(np.uint16) if encoding == '16UC1' else depth
    detections = Detections(np.array([box]), [0.9], [0], ('box',), (CAMERA.width, CAMERA.height),
                            detection_stamp_ns or stamp_ns, detection_frame)
    publishers['info'].publish(info)
    publishers['depth'].publish(conversions.numpy_to_image(pixels, encoding, stamp_ns, FRAME))
    publishers['detections'].publish(conversions.detections_to_msg(detections))


def test_matched_inputs_give_ranked_grasps_in_the_target_frame(graph, spin_until, scene):
    node, publishers, received = graph
    depth, box = scene
    assert spin_until(lambda: publishers['depth'].get_subscription_count() > 0)
    send(publishers, 1_000_000_000, depth, box)
    assert spin_until(lambda: received['grasps'] and received['poses'] and received['markers'])
    msg = received['grasps'][0]
    assert msg.header.frame_id == 'base_link' and msg.num_detections == 1
    assert conversions.stamp_to_ns(msg.header.stamp) == 1_000_000_000
    grasps = conversions.msg_to_grasps(msg)
    assert grasps and [g.score for g in grasps] == sorted((g.score for g in grasps),
                                                          reverse=True)
    best = grasps[0]
    assert np.linalg.norm(best.position[:2] - BOX.centre[:2]) < 0.003
    assert abs(best.pose[:3, 1] @ BOX.rotation[:, 1]) > np.cos(np.radians(3))
    assert msg.grasps[0].detection.label == 'box'
    poses = received['poses'][0]
    assert len(poses.poses) == len(grasps)
    assert poses.poses[0].position.x == pytest.approx(best.position[0])
    kinds = {m.ns for m in received['markers'][0].markers}
    assert {'grasps', 'objects'} <= kinds


def test_each_planned_set_is_timed_by_stage_and_reported(graph, spin_until, scene):
    node, publishers, received = graph
    depth, box = scene
    assert spin_until(lambda: publishers['depth'].get_subscription_count() > 0)
    send(publishers, 1_000_000_000, depth, box)
    assert spin_until(lambda: received['grasps'])
    send(publishers, 2_000_000_000, depth, (20.0, 100.0, 50.0, 130.0))  # bin floor: no grasp

    def reported():
        reports = [json.loads(m.data) for m in received['latency']]
        return [r for r in reports if r['latency_ms'].get('total', {}).get('count') == 2]

    assert spin_until(reported, timeout=5.0)
    report = reported()[-1]
    stages = report['latency_ms']
    assert set(stages) == {'inputs', 'plan', 'publish', 'total'}
    assert stages['plan']['p50'] > 0 and stages['total']['max'] >= stages['plan']['max']
    assert report['drops'] == {'too_few_points': 1}


def test_poses_and_markers_are_built_only_for_a_subscriber(graph, spin_until, scene,
                                                          ros_executor, monkeypatch):
    node, publishers, received = graph
    depth, box = scene
    built = []
    markers = node._markers
    monkeypatch.setattr(node, '_markers', lambda *args: built.append(1) or markers(*args))
    assert spin_until(lambda: node._markers_pub.get_subscription_count() > 0
                      and publishers['depth'].get_subscription_count() > 0)
    send(publishers, 1_000_000_000, depth, box)
    assert spin_until(lambda: received['grasps'] and received['poses'] and received['markers'])
    assert built == [1]
    client = next(n for n in ros_executor.get_nodes() if n.get_name() == 'grasp_test_client')
    for subscription in list(client.subscriptions):
        if subscription.topic_name.endswith((topics.GRASP_POSES, topics.GRASP_MARKERS)):
            client.destroy_subscription(subscription)
    assert spin_until(lambda: node._markers_pub.get_subscription_count() == 0
                      and node._poses_pub.get_subscription_count() == 0)
    send(publishers, 2_000_000_000, depth, box)
    assert spin_until(lambda: len(received['grasps']) == 2)
    assert received['grasps'][1].grasps  # planned and sent as before
    assert built == [1] and len(received['poses']) == len(received['markers']) == 1


def test_bad_inputs_are_counted_and_the_node_keeps_working(graph, spin_until, scene):
    node, publishers, received = graph
    depth, box = scene
    assert spin_until(lambda: publishers['depth'].get_subscription_count() > 0)
    send(publishers, 2_000_000_000, depth, box, k=np.zeros((3, 3)))
    assert spin_until(lambda: node.drops['InvalidCameraInfoError'] == 1)
    send(publishers, 3_000_000_000, depth * 1000, box, encoding='32FC1')
    assert spin_until(lambda: node.drops['DepthUnitsError'] == 1)
    send(publishers, 2_500_000_000, depth, box)  # stamps going backwards
    assert spin_until(lambda: node.drops['sync_backwards'] == 3)
    send(publishers, 4_000_000_000, depth, box, detection_stamp_ns=4_500_000_000)
    send(publishers, 5_000_000_000, np.full_like(depth, np.nan), box)
    assert spin_until(lambda: node.drops['no_valid_depth'] == 1)
    assert node.drops['sync_unmatched'] >= 2, node.drops  # the lone depth and info of 4 s
    send(publishers, 5_500_000_000, depth, box, detection_frame='camera_depth_optical_frame')
    assert spin_until(lambda: node.drops['InvalidMessageError'] == 1)  # depth not aligned
    send(publishers, 6_000_000_000, depth, box)
    assert spin_until(lambda: any(m.grasps for m in received['grasps']))
    empty = [m for m in received['grasps'] if not m.grasps]
    assert len(empty) == 4  # bad K, mm as metres, all-invalid, unaligned: answered, no grasp


def test_images_of_a_pick_under_way_are_skipped(graph, spin_until, scene, ros_context):
    node, publishers, received = graph
    depth, box = scene
    client = rclpy.create_node('pick_status_client', context=ros_context)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    status = client.create_publisher(PickStatus, topics.PICK_STATUS, latched)

    def say(state, stamp_ns):
        status.publish(PickStatus(header=conversions.make_header(stamp_ns, ''), state=state))
        assert spin_until(lambda: node.pick_gate.under_way == (state == PickState.APPROACHING))

    assert spin_until(lambda: publishers['depth'].get_subscription_count() > 0)
    say(PickState.APPROACHING, 500_000_000)
    send(publishers, 1_000_000_000, depth, box)
    assert spin_until(lambda: node.drops['picking'] == 1)
    say(PickState.WAITING_FOR_GRASPS, 2_000_000_000)
    assert node.pick_gate.ended_ns == 2_000_000_000
    send(publishers, 1_500_000_000, depth, box)  # taken before the pick ended
    assert spin_until(lambda: node.drops['picking'] == 2)
    assert not received['grasps']
    send(publishers, 2_500_000_000, depth, box)
    assert spin_until(lambda: len(received['grasps']) == 1 and received['grasps'][0].grasps)
    say(PickState.APPROACHING, 2_600_000_000)
    assert node.set_parameters([Parameter('plan_while_picking', value=True)])[0].successful
    send(publishers, 3_000_000_000, depth, box)
    assert spin_until(lambda: len(received['grasps']) == 2)
    assert node.drops['picking'] == 2
    client.destroy_node()


def test_invalid_parameter_changes_are_refused(graph):
    node, _, _ = graph
    result = node.set_parameters([Parameter('gripper_stroke', value=-0.1)])
    assert not result[0].successful and 'stroke' in result[0].reason
    result = node.set_parameters([Parameter('bin_size', value=[0.4])])
    assert not result[0].successful
    assert node.set_parameters([Parameter('gripper_stroke', value=0.1)])[0].successful
    assert node.planner.config.gripper.stroke == 0.1
