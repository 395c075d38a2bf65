"""Episode recording (MCAP read back with mcap_ros2) and the report figures, table and plot."""

import json
import re

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
import numpy as np
import pytest

from litedet_ros.bringup.recording import McapRecorder, RecordingError, message_definition
from litedet_ros.bringup.report import NO_GRASP, PickRecord, format_table, plot_report, summarize
from litedet_ros.motion.status import PUSHED


@pytest.fixture
def share_dirs():
    """Share directories of the installed message packages (ROS side, as demo_node finds them)."""
    from litedet_ros.demo_node import _share_dirs

    return _share_dirs()


def test_definition_lists_each_nested_type_once(share_dirs):
    text = message_definition('litedet_ros/msg/GraspArray', share_dirs)
    assert text.startswith('# Grasps for one image')
    sections = [line for line in text.splitlines() if line.startswith('MSG: ')]
    assert len(sections) == len(set(sections))
    assert {'MSG: std_msgs/Header', 'MSG: litedet_ros/Grasp', 'MSG: litedet_ros/Detection',
            'MSG: geometry_msgs/PoseStamped', 'MSG: builtin_interfaces/Time'} <= set(sections)


def test_missing_definition_is_an_error(tmp_path):
    with pytest.raises(RecordingError, match='no definition of nope_msgs/msg/X'):
        message_definition('nope_msgs/msg/X', [tmp_path])


def test_recorded_messages_decode_with_mcap_ros2(tmp_path, share_dirs):
    from rclpy.serialization import serialize_message

    from litedet_ros import conversions
    from litedet_ros.msg import PickStatus

    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    image = conversions.numpy_to_image(pixels, 'rgb8', 1_500_000_000, 'camera_color_optical_frame')
    status = PickStatus(state=4, attempts=3, successes=2, last_reason='slipped')
    recorder = McapRecorder(tmp_path / 'run.mcap', share_dirs)
    recorder.add_topic('/camera/camera/color/image_raw', 'sensor_msgs/msg/Image')
    recorder.add_topic('/pick_status', 'litedet_ros/msg/PickStatus')
    recorder.write('/camera/camera/color/image_raw', serialize_message(image), 10, 10)
    recorder.write('/pick_status', serialize_message(status), 20, 20)
    with pytest.raises(RecordingError, match='not added'):
        recorder.write('/other', b'', 30, 30)
    recorder.close()
    assert recorder.counts == {'/camera/camera/color/image_raw': 1, '/pick_status': 1}

    with open(tmp_path / 'run.mcap', 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        decoded = [(channel.topic, schema.name, message.log_time, msg) for schema, channel,
                   message, msg in reader.iter_decoded_messages()]
    assert [(t, s, log) for t, s, log, _ in decoded] == [
        ('/camera/camera/color/image_raw', 'sensor_msgs/Image', 10),
        ('/pick_status', 'litedet_ros/PickStatus', 20)]
    got_image, got_status = decoded[0][3], decoded[1][3]
    assert (got_image.width, got_image.height, got_image.encoding) == (6, 4, 'rgb8')
    assert got_image.header.stamp.sec == 1 and got_image.header.stamp.nanosec == 500_000_000
    assert bytes(got_image.data) == pixels.tobytes()
    assert (got_status.attempts, got_status.successes, got_status.last_reason) == (
        3, 2, 'slipped')


def picks():
    return [PickRecord(1, 'SUCCESS', '', 3.5, 10.0, {'in_bin': 2, 'placed': 1}),
            PickRecord(2, 'FAILED', 'slipped on lift', 1.0, 11.0, {'in_bin': 2, 'placed': 1}),
            PickRecord(3, 'SUCCESS', '', 4.5, 16.0, {'in_bin': 1, 'placed': 2})]


def test_summary_figures(tmp_path):
    latencies = {'detector': [0.010, 0.012, 0.011], 'grasp_planner': []}
    report = summarize(3, picks(), {'in_bin': 1, 'placed': 2}, 18.0, latencies,
                       'bin empty', collisions=2, seed=7)
    assert (report['attempts'], report['successes'], report['failures']) == (3, 2, 1)
    assert report['success_rate'] == pytest.approx(2 / 3)
    assert report['cleared_rate'] == pytest.approx(2 / 3)
    assert report['mean_cycle_s'] == pytest.approx(3.0)
    assert report['picks_per_hour'] == pytest.approx(400.0)
    assert report['lost'] == 0 and report['seed'] == 7 and report['collisions'] == 2
    assert report['latency']['detector']['p50_ms'] == pytest.approx(11.0)
    assert report['latency']['grasp_planner']['n'] == 0
    assert report['latency']['grasp_planner']['p99_ms'] is None
    json.dumps(report, allow_nan=False)  # strict JSON
    assert 'p50 n/a' in format_table(summarize(3, [], {}, 0.0, latencies, 'x'))
    table = format_table(report)
    assert '66.7 %' in table and '3.00 s (sim)' in table and 'bin empty' in table
    assert re.search(r'robot collisions +\| 2\n', table)
    report['collision_states'] = {'approaching': 1, 'placing': 1}
    assert re.search(r'robot collisions +\| 2 \(approaching 1, placing 1\)\n',
                     format_table(report))
    plot_report(report, latencies, tmp_path / 'timing.png')
    assert (tmp_path / 'timing.png').stat().st_size > 10_000


def test_rounds_without_a_feasible_grasp_are_not_attempts():
    no_grasp = PickRecord(4, NO_GRASP, 'no feasible grasp for 1 detected objects', 0.2, 17.0,
                          {'in_bin': 1, 'placed': 2})
    pushed = PickRecord(5, NO_GRASP, f'no feasible grasp for 1 detected objects{PUSHED} '
                        'detection 0 6 cm', 3.1, 21.0, {'in_bin': 1, 'placed': 2})
    report = summarize(3, [*picks(), no_grasp, pushed], {'in_bin': 1, 'placed': 2}, 18.0, {},
                       'x')
    assert (report['attempts'], report['successes'], report['no_grasp_rounds']) == (3, 2, 2)
    assert report['pushes'] == 1
    assert re.search(r'looks without a grasp +\| 2 \(1 with a push\)\n', format_table(report))
    assert report['success_rate'] == pytest.approx(2 / 3)
    assert report['mean_cycle_s'] == pytest.approx(3.0)


def test_unaccounted_objects_are_counted():
    report = summarize(5, picks(), {'in_bin': 1, 'placed': 2, 'dropped': 1}, 18.0, {}, 'x')
    assert report['lost'] == 1


def test_demo_rejects_a_bad_object_count(tmp_path, capsys):
    import argparse

    from litedet_ros.bringup import demo

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    assert demo.run(parser.parse_args(['--objects', '40', '--out', str(tmp_path)])) == 2
    assert '--objects must be in [1, 25]' in capsys.readouterr().err
