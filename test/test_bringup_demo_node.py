"""demo_node through real topics and services, against a scripted sim and controller.

The other end (reset service, the controller's run service, pick_status sequence,
camera/detections/grasps stream, object ground truth) is played by a test node, so the episode
logic, progress lines, latencies, annotated images, recording and report are checked without the
full graph (the full loop runs in ``litedet-ros demo``).
"""

import json

from mcap.reader import make_reader
import numpy as np
import pytest

from litedet_ros import conversions, topics

# a controller run as pick_status messages: (state, attempts, last_result, reason, cycle); as
# the controller does, an attempt is counted when it starts (still waiting for grasps)
FAIL = 'empty hand after close (finger width 0.0 mm)'
EMPTIES = [(2, 0, 0, '', 0.0), (2, 1, 0, '', 0.0), (3, 1, 0, '', 0.0), (4, 1, 0, '', 0.0),
           (0, 1, 1, '', 3.2), (2, 1, 1, '', 3.2), (2, 2, 1, '', 3.2), (3, 2, 1, '', 3.2),
           (0, 2, 3, FAIL, 0.8), (2, 2, 3, FAIL, 0.8), (0, 2, 3, FAIL, 0.8)]  # then bin empty
# failures in a row; the second attempt's end status is lost (caught up from the third's)
FAILS = [(2, 0, 0, '', 0.0), (2, 1, 0, '', 0.0), (3, 1, 0, '', 0.0), (0, 1, 3, FAIL, 0.5),
         (2, 1, 3, FAIL, 0.5), (2, 2, 3, FAIL, 0.5), (3, 2, 3, FAIL, 0.5),
         (2, 3, 3, FAIL, 0.6), (3, 3, 3, FAIL, 0.6), (0, 3, 3, FAIL, 0.7), (2, 3, 3, FAIL, 0.7)]


@pytest.fixture
def cell(ros_executor):
    """A scripted sim + controller; ``cell.script`` is replayed at every run request."""
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_srvs.srv import SetBool

    from litedet_ros.demo_node import RUN_SERVICE
    from litedet_ros.msg import (
        Detection,
        DetectionArray,
        GraspArray,
        ObjectState,
        ObjectStateArray,
        PickStatus,
    )
    from litedet_ros.srv import ResetBin

    node = Node('cell', context=ros_executor.context)
    node.requests, node.script = [], EMPTIES
    # 4 attempts and 5 robot collisions before the episode; one collision per failed attempt
    state = {'step': -1, 'placed': 0, 'offset': 4, 'collisions': 5}

    def reset(request, response):
        node.requests.append(('reset', request.seed, request.num_objects))
        response.success = True
        return response

    def run(request, response):
        node.requests.append(('run', request.data))
        if request.data:
            if state['step'] >= 0:
                state['offset'] += node.script[-1][1]
            state['step'], state['placed'] = 0, 0
        response.success = True
        return response

    node.create_service(ResetBin, topics.SIM_RESET_BIN, reset)
    node.create_service(SetBool, RUN_SERVICE, run)
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    status_pub = node.create_publisher(PickStatus, topics.PICK_STATUS, latched)
    color_pub = node.create_publisher(Image, topics.COLOR_IMAGE, qos_profile_sensor_data)
    debug_pub = node.create_publisher(Image, topics.DETECTIONS_IMAGE, qos_profile_sensor_data)
    detections_pub = node.create_publisher(DetectionArray, topics.DETECTIONS, 10)
    grasps_pub = node.create_publisher(GraspArray, topics.GRASPS, 10)
    objects_pub = node.create_publisher(ObjectStateArray, topics.SIM_OBJECTS, 10)
    status_pub.publish(PickStatus(state=0, attempts=state['offset']))
    pixels = np.full((48, 64, 3), 90, dtype=np.uint8)

    def tick():
        stamp = node.get_clock().now().nanoseconds
        header = conversions.make_header(stamp, 'cam')
        color_pub.publish(conversions.numpy_to_image(pixels, 'rgb8', stamp, 'cam'))
        debug_pub.publish(conversions.numpy_to_image(pixels, 'rgb8', stamp, 'cam'))
        detections_pub.publish(DetectionArray(header=header, detections=[Detection(
            label='can', score=0.9, x_min=1.0, y_min=1.0, x_max=9.0, y_max=9.0)]))
        grasps_pub.publish(GraspArray(header=conversions.make_header(stamp, 'base_link')))
        objects_pub.publish(ObjectStateArray(header=header, objects=[
            ObjectState(id=i, location=2 if i < state['placed'] else 0) for i in range(3)],
            robot_collisions=state['collisions']))
        if 0 <= state['step'] < len(node.script):
            s, attempts, result, reason, cycle = node.script[state['step']]
            state['placed'] += result == 1 and s == 0
            state['collisions'] += result == 3 and s == 0
            status_pub.publish(PickStatus(state=s, attempts=state['offset'] + attempts,
                                          last_result=result, last_reason=reason,
                                          last_cycle_time=cycle))
            state['step'] += 1

    node.create_timer(0.05, tick)
    ros_executor.add_node(node)
    return node


def demo_node(ros_executor, tmp_path, **parameters):
    from rclpy.parameter import Parameter

    from litedet_ros.demo_node import DemoNode

    values = {'output_dir': str(tmp_path), 'seed': 42, 'num_objects': 3,
              'record_image_period': 0.2, **parameters}
    node = DemoNode(context=ros_executor.context,
                    parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    ros_executor.add_node(node)
    return node


def test_demo_node_runs_records_and_reports_rounds(ros_executor, spin_until, tmp_path, cell,
                                                   capsys):
    demo = demo_node(ros_executor, tmp_path, rounds=2)
    assert spin_until(lambda: demo.done, timeout=30), demo.phase

    assert cell.requests == [('reset', 42, 3), ('run', True), ('reset', 43, 3), ('run', True)]
    assert demo.stop_reason == '2 rounds done'
    report = json.loads((tmp_path / 'report.json').read_text())
    assert [r['stop_reason'] for r in report['rounds']] == [
        'no more grasps with 2 objects left in the bin'] * 2
    assert (report['attempts'], report['successes'], report['failures']) == (4, 2, 2)
    assert [p['outcome'] for p in report['picks']] == ['SUCCESS', 'FAILED'] * 2
    assert [p['round'] for p in report['picks']] == [1, 1, 2, 2]
    assert report['picks'][1]['reason'] == FAIL
    assert report['mean_cycle_s'] == pytest.approx(2.0)
    assert report['objects'] == 6 and report['lost'] == 0
    assert [r['collisions'] for r in report['rounds']] == [1, 1] and report['collisions'] == 2
    # the controller's state when the sim's count rose; none counted before the demo began
    events = report['collision_events']
    assert [(e['round'], e['collisions']) for e in events if e['state'] != 'between_rounds'] \
        == [(1, 1), (2, 1)]
    assert sum(report['collision_states'].values()) == sum(e['collisions'] for e in events) == 3
    assert report['final_objects']['placed'] == 2
    assert report['latency']['frame_to_grasp']['n'] > 0
    assert 0 < report['latency']['frame_to_grasp']['p50_ms'] <= report['latency'][
        'frame_to_grasp']['p99_ms'] < 1000
    assert (tmp_path / report['picks'][0]['image']).stat().st_size > 0
    assert (tmp_path / 'timing.png').is_file()
    assert 'success' in (tmp_path / 'results.txt').read_text()
    out = capsys.readouterr().out
    assert 'pick   1: SUCCESS' in out and 'pick   2: FAILED' in out and 'round 2/2' in out

    with open(tmp_path / 'recording.mcap', 'rb') as stream:
        summary = make_reader(stream).get_summary()
    counts = {summary.channels[c].topic: n
              for c, n in summary.statistics.channel_message_counts.items()}
    assert counts['/pick_status'] >= 2 * len(EMPTIES) and counts['/grasps'] > 0
    assert 0 < counts['/camera/camera/color/image_raw'] < counts['/grasps']  # throttled


def test_two_failures_in_a_row_end_the_round(ros_executor, spin_until, tmp_path, cell):
    cell.script = FAILS
    demo = demo_node(ros_executor, tmp_path, record=False)
    assert spin_until(lambda: demo.done, timeout=30), demo.phase
    assert cell.requests == [('reset', 42, 3), ('run', True), ('run', False)]
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['stop_reason'] == 'stop rule: 2 consecutive failed attempts'
    # the third attempt had started when the stop came: it is let finish and counted
    assert (report['attempts'], report['failures'], report['cleared_rate']) == (3, 3, 0.0)
    assert [p['cycle_time'] for p in report['picks']] == [0.5, 0.6, 0.7]
    assert not (tmp_path / 'recording.mcap').exists()
