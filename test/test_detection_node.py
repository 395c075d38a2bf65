"""detector_node with real messages: images in, detections out, bad input counted, service."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 Jazzy wheels) is not installed')

from detection_synthetic import LABELS, draw_scene, varied_model  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from litedet_ros import conversions, topics  # noqa: E402
from litedet_ros.detection.export import export_onnx  # noqa: E402
from litedet_ros.detector_node import DetectorNode  # noqa: E402
from litedet_ros.motion.status import PickState  # noqa: E402
from litedet_ros.msg import DetectionArray, GraspArray, PickStatus  # noqa: E402

FRAME = 'camera_color_optical_frame'


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    """An exported untrained model: it fires on anything at a low threshold."""
    return export_onnx(varied_model(), tmp_path_factory.mktemp('model') / 'model.onnx', LABELS)


@pytest.fixture(scope='module')
def image():
    return draw_scene(np.random.default_rng(0))[0]


def make_graph(ros_context, ros_executor, overrides):
    node = DetectorNode(context=ros_context, parameter_overrides=overrides)
    client = rclpy.create_node('detector_test_client', context=ros_context)
    received = {'detections': [], 'debug': [], 'latency': []}
    client.create_subscription(DetectionArray, topics.DETECTIONS, received['detections'].append,
                               10)
    client.create_subscription(Image, topics.DETECTIONS_IMAGE, received['debug'].append,
                               qos_profile_sensor_data)
    client.create_subscription(String, '/detector_node/latency', received['latency'].append, 10)
    publisher = client.create_publisher(Image, topics.COLOR_IMAGE, qos_profile_sensor_data)
    ros_executor.add_node(node)
    ros_executor.add_node(client)
    return node, client, publisher, received


@pytest.fixture
def graph(ros_context, ros_executor, model_file):
    return make_graph(ros_context, ros_executor, [
        Parameter('model_file_path', value=str(model_file)),
        Parameter('confidence_threshold', value=0.05), Parameter('stats_period', value=0.2)])


def publish_until(publisher, client, spin_until, make_msg, predicate, timeout=10.0):
    """Publish fresh messages until ``predicate`` holds (discovery, best-effort QoS)."""
    def step():
        if predicate():
            return True
        publisher.publish(make_msg(client.get_clock().now().nanoseconds))
        spin_until(predicate, timeout=0.2)
        return predicate()
    return spin_until(step, timeout=timeout)


def test_images_in_detections_out(graph, image, spin_until):
    node, client, publisher, received = graph
    sent = []

    def make(stamp_ns):
        sent.append(stamp_ns)
        return conversions.numpy_to_image(image, 'rgb8', stamp_ns, FRAME)

    assert publish_until(publisher, client, spin_until, make,
                         lambda: received['detections'] and received['debug'])
    msg = received['detections'][-1]
    assert conversions.stamp_to_ns(msg.header.stamp) in sent and msg.header.frame_id == FRAME
    assert (msg.image_width, msg.image_height) == (640, 480)
    assert len(msg.detections) > 0
    detections = conversions.msg_to_detections(msg)  # boxes valid and inside the image
    assert set(detections.labels) <= set(LABELS)
    debug = conversions.image_to_numpy(received['debug'][-1])
    assert debug.shape == image.shape and not np.array_equal(debug, image)  # boxes drawn
    assert spin_until(lambda: any('latency_ms' in json.loads(m.data) and
                                  'total' in json.loads(m.data)['latency_ms']
                                  for m in received['latency']), timeout=3.0)
    summary = node.stats.summary()
    assert summary['total']['p50'] >= summary['inference']['p50'] > 0


def test_bad_images_are_counted_and_the_node_keeps_serving(graph, image, spin_until):
    node, client, publisher, received = graph
    good = conversions.numpy_to_image(image, 'rgb8', 0, FRAME)
    bad_messages = []
    rgba = conversions.numpy_to_image(image, 'rgb8', 0, FRAME)
    rgba.encoding = 'rgba8'
    bad_messages.append(rgba)
    short_step = conversions.numpy_to_image(image, 'rgb8', 0, FRAME)
    short_step.step = 100
    bad_messages.append(short_step)
    truncated = conversions.numpy_to_image(image, 'rgb8', 0, FRAME)
    truncated.data = bytes(truncated.data)[:1000]
    bad_messages.append(truncated)
    bad_messages.append(Image(header=good.header, encoding='rgb8'))  # zero size

    def make_bad(stamp_ns):
        msg = bad_messages[len(node.drops) % len(bad_messages)]
        msg.header.stamp = conversions.ns_to_stamp(stamp_ns)
        return msg

    assert publish_until(publisher, client, spin_until, make_bad,
                         lambda: sum(node.drops.values()) >= 4)
    assert node.drops['InvalidImageError'] >= 4 and not received['detections']

    def make_good(stamp_ns):
        good.header.stamp = conversions.ns_to_stamp(stamp_ns)
        return good

    assert publish_until(publisher, client, spin_until, make_good,
                         lambda: received['detections'])

    def make_stale(stamp_ns):
        return make_good(stamp_ns - 10 * 10**9)

    assert publish_until(publisher, client, spin_until, make_stale,
                         lambda: node.drops['stale'] > 0)


def test_images_of_a_pick_under_way_are_not_detected(graph, image, spin_until):
    node, client, publisher, received = graph
    status = client.create_publisher(PickStatus, topics.PICK_STATUS, QoSProfile(
        depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))

    def say(state):
        stamp_ns = client.get_clock().now().nanoseconds
        status.publish(PickStatus(header=conversions.make_header(stamp_ns, ''), state=state))
        assert spin_until(lambda: node.pick_gate.under_way == (state == PickState.LIFTING))
        return stamp_ns

    def make(stamp_ns):
        return conversions.numpy_to_image(image, 'rgb8', stamp_ns, FRAME)

    say(PickState.LIFTING)
    assert publish_until(publisher, client, spin_until, make, lambda: node.drops['picking'] >= 3)
    assert not received['detections']
    ended = say(PickState.WAITING_FOR_GRASPS)
    assert publish_until(publisher, client, spin_until, make, lambda: received['detections'])
    assert conversions.stamp_to_ns(received['detections'][0].header.stamp) >= ended


AWAIT = 3.0  # await_grasps, s


def test_one_image_in_flight_while_a_planner_publishes_grasps(ros_context, ros_executor,
                                                               model_file, image, spin_until):
    node, client, publisher, received = make_graph(ros_context, ros_executor, [
        Parameter('model_file_path', value=str(model_file)),
        Parameter('confidence_threshold', value=0.05), Parameter('await_grasps', value=AWAIT)])

    def make(stamp_ns):
        return conversions.numpy_to_image(image, 'rgb8', stamp_ns, FRAME)

    def detected(count):
        return lambda: len(received['detections']) >= count

    # no node publishes grasps: every image is detected
    assert publish_until(publisher, client, spin_until, make, detected(3))
    assert node.drops['awaiting_grasps'] == 0
    grasps = client.create_publisher(GraspArray, topics.GRASPS, 10)
    assert spin_until(lambda: node.count_publishers(topics.GRASPS) == 1)
    spin_until(lambda: False, timeout=0.5)  # the detections of any image still queued
    # a planner runs (it answers the last detections): after the next detections, images
    # wait for their grasps
    grasps.publish(GraspArray(header=received['detections'][-1].header))
    count = len(received['detections'])
    assert publish_until(publisher, client, spin_until, make, detected(count + 1))
    assert publish_until(publisher, client, spin_until, make,
                         lambda: node.drops['awaiting_grasps'] >= 3, timeout=AWAIT / 2)
    assert len(received['detections']) == count + 1
    in_flight = received['detections'][-1].header
    grasps.publish(GraspArray(header=in_flight))
    assert publish_until(publisher, client, spin_until, make, detected(count + 2),
                         timeout=AWAIT / 2)
    assert node.unanswered == 0
    # grasps that never come: the next image is detected after await_grasps
    waited = time.monotonic()
    assert publish_until(publisher, client, spin_until, make, detected(count + 3))
    assert time.monotonic() - waited >= AWAIT - 0.1 and node.unanswered == 1


def test_enable_service_and_parameter_validation(graph, image, spin_until):
    node, client, publisher, received = graph
    service = client.create_client(SetBool, '/detector_node/enable')
    assert service.wait_for_service(timeout_sec=5.0)
    future = service.call_async(SetBool.Request(data=False))
    assert spin_until(future.done) and future.result().success
    assert not node.enabled
    for _ in range(5):
        publisher.publish(conversions.numpy_to_image(
            image, 'rgb8', client.get_clock().now().nanoseconds, FRAME))
        spin_until(lambda: False, timeout=0.1)
    assert not received['detections']
    result = node.set_parameters([Parameter('confidence_threshold', value=1.5)])[0]
    assert not result.successful and 'score_threshold' in result.reason
    result = node.set_parameters([Parameter('backend', value='openvino')])[0]
    assert not result.successful
    assert node.set_parameters([Parameter('confidence_threshold', value=0.3)])[0].successful
    assert node.detector.config.score_threshold == 0.3


def test_missing_model_is_reported_and_fixed_by_parameter(ros_context, ros_executor, tmp_path,
                                                          model_file, image, spin_until):
    node, client, publisher, received = make_graph(ros_context, ros_executor, [
        Parameter('model_file_path', value=str(tmp_path / 'missing.onnx')),
        Parameter('confidence_threshold', value=0.05)])
    assert node.detector is None

    def make(stamp_ns):
        return conversions.numpy_to_image(image, 'rgb8', stamp_ns, FRAME)

    assert publish_until(publisher, client, spin_until, make, lambda: node.drops['no_model'])
    assert node.set_parameters([Parameter('model_file_path', value=str(model_file))])[0] \
        .successful
    assert node.detector is not None
    assert publish_until(publisher, client, spin_until, make, lambda: received['detections'])


def test_config_file_matches_the_node_defaults():
    from dataclasses import asdict
    from pathlib import Path

    import yaml

    from litedet_ros.detection.node_config import DetectorNodeConfig

    path = Path(__file__).resolve().parents[1] / 'config' / 'detector_node.yaml'
    parameters = yaml.safe_load(path.read_text())['/**/detector_node']['ros__parameters']
    assert parameters == asdict(DetectorNodeConfig())
