"""Every custom interface crosses Fast DDS between real rclpy nodes unchanged."""

import numpy as np
import pytest

from litedet_ros import conversions
from litedet_ros.detection.types import Detections
from litedet_ros.grasping.types import Grasp
from litedet_ros.motion.status import PickOutcome, PickResult, PickState, PickStatus

msg = pytest.importorskip('litedet_ros.msg', reason='interfaces not built (run make env)')
srv = pytest.importorskip('litedet_ros.srv', reason='interfaces not built (run make env)')


def sample_messages():
    detections = conversions.detections_to_msg(Detections(
        [[1, 2, 30, 40], [5, 6, 70, 80]], [0.9, 0.6], [1, 3], ('can', 'ring'), (640, 480),
        1_000_000_123, 'camera_color_optical_frame'))
    # float32 fields: values exactly representable, so equality holds after transport
    grasp = Grasp(np.eye(4), width=0.0625, score=0.75, detection_index=1, stamp_ns=1_000_000_123)
    grasps = conversions.grasps_to_msg([grasp], detections, 1_000_000_123, 'base_link')
    status = conversions.pick_status_to_msg(PickStatus(
        PickState.GRASPING, True, 3, 2, 1, 0, PickResult(PickOutcome.SUCCESS, '', 3.9), 77))
    state = msg.ObjectState(id=4, class_id=2, label='bracket',
                            location=msg.ObjectState.LOCATION_PLACED,
                            pose=conversions.matrix_to_pose(np.eye(4)))
    states = msg.ObjectStateArray(header=conversions.make_header(5, 'world'), objects=[state])
    return [detections.detections[0], detections, grasps.grasps[0], grasps, status, state, states]


@pytest.mark.parametrize('index', range(7))
def test_custom_message_round_trip_through_dds(ros_context, ros_executor, spin_until, index):
    from rclpy.node import Node

    sent = sample_messages()[index]
    topic = f'roundtrip_{type(sent).__name__.lower()}'
    talker = Node('talker', context=ros_context)
    listener = Node('listener', context=ros_context)
    received = []
    listener.create_subscription(type(sent), topic, received.append, 10)
    publisher = talker.create_publisher(type(sent), topic, 10)
    ros_executor.add_node(talker)
    ros_executor.add_node(listener)
    assert spin_until(lambda: publisher.get_subscription_count() > 0)
    publisher.publish(sent)
    assert spin_until(lambda: bool(received)), f'{type(sent).__name__} never arrived'
    assert received[0] == sent
    assert received[0] is not sent


def test_reset_bin_service_round_trip(ros_context, ros_executor, spin_until):
    from rclpy.node import Node

    server_node = Node('bin_server', context=ros_context)
    client_node = Node('bin_client', context=ros_context)

    def handle(request, response):
        response.success = 1 <= request.num_objects <= 25
        response.message = f'seed {request.seed}, {request.num_objects} objects'
        return response

    server_node.create_service(srv.ResetBin, 'reset_bin', handle)
    client = client_node.create_client(srv.ResetBin, 'reset_bin')
    ros_executor.add_node(server_node)
    ros_executor.add_node(client_node)
    assert spin_until(client.service_is_ready)
    future = client.call_async(srv.ResetBin.Request(seed=11, num_objects=12))
    assert spin_until(future.done)
    assert future.result().success and future.result().message == 'seed 11, 12 objects'
