"""Stage latency from receive times, the latency probe node, and ``bench perception``."""

import argparse
import json
from pathlib import Path
import subprocess
import sys
import time

import pytest

from litedet_ros import topics
from litedet_ros.bringup import perception_bench
from litedet_ros.bringup.graph import BringupError
from litedet_ros.bringup.latency import StageLatency

ROOT = Path(__file__).resolve().parents[1]
MS = 1_000_000


def test_stages_pair_messages_of_one_stamp():
    latency = StageLatency(keep=3)
    latency.add(topics.COLOR_IMAGE, 1, 100 * MS)
    latency.add(topics.COLOR_IMAGE, 2, 133 * MS)
    latency.add(topics.DETECTIONS, 2, 150 * MS)   # detections of the second image
    latency.add(topics.DETECTIONS, 1, 160 * MS)   # of the first, late
    latency.add(topics.GRASPS, 2, 190 * MS)
    latency.add(topics.GRASPS, 9, 195 * MS)       # no image of that stamp: no sample
    assert latency.samples['detector'] == pytest.approx([0.017, 0.060])
    assert latency.samples['grasp_planner'] == pytest.approx([0.040])
    assert latency.samples['frame_to_grasp'] == pytest.approx([0.057])
    assert latency.latest_stamp(topics.GRASPS) == 9


def test_unmeasured_and_forgotten_stamps_give_no_sample():
    latency = StageLatency(keep=2)
    latency.add(topics.COLOR_IMAGE, 1, 0, measure=False)
    latency.add(topics.DETECTIONS, 1, 10 * MS, measure=False)  # warm-up: remembered only
    latency.add(topics.GRASPS, 1, 30 * MS)
    assert latency.samples['frame_to_grasp'] == pytest.approx([0.030])
    assert latency.samples['detector'] == []
    for stamp in (2, 3):  # stamp 1 of the image falls out of the window
        latency.add(topics.COLOR_IMAGE, stamp, stamp * MS)
    latency.add(topics.DETECTIONS, 1, 40 * MS)
    assert latency.samples['detector'] == []
    assert latency.latest_stamp(topics.DETECTIONS) == 1


def test_probe_measures_the_stream_and_writes_its_figures(ros_executor, spin_until, tmp_path):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from litedet_ros import conversions
    from litedet_ros.latency_probe_node import LatencyProbeNode
    from litedet_ros.msg import DetectionArray, GraspArray

    output = tmp_path / 'latency.json'
    probe = LatencyProbeNode(context=ros_executor.context, parameter_overrides=[
        Parameter('warmup', value=0.0), Parameter('duration', value=2.0),
        Parameter('output_file', value=str(output))])
    source = Node('pipeline', context=ros_executor.context)
    publishers = {topics.COLOR_IMAGE: source.create_publisher(Image, topics.COLOR_IMAGE,
                                                              qos_profile_sensor_data),
                  topics.DETECTIONS: source.create_publisher(DetectionArray, topics.DETECTIONS,
                                                             10),
                  topics.GRASPS: source.create_publisher(GraspArray, topics.GRASPS, 10)}
    ros_executor.add_node(probe)
    ros_executor.add_node(source)
    assert spin_until(lambda: all(p.get_subscription_count() for p in publishers.values()))

    sent = 0
    while not probe.done and sent < 200:
        stamp = conversions.ns_to_stamp(time.time_ns())
        image = Image(height=2, width=2, encoding='mono8', step=2, data=bytes(4))
        image.header.stamp = stamp
        publishers[topics.COLOR_IMAGE].publish(image)
        spin_until(lambda: False, timeout=0.02)
        publishers[topics.DETECTIONS].publish(DetectionArray(header=image.header))
        spin_until(lambda: False, timeout=0.03)
        publishers[topics.GRASPS].publish(GraspArray(header=image.header))
        spin_until(lambda: False, timeout=0.02)
        sent += 1
    assert probe.done
    report = json.loads(output.read_text())
    assert report['duration_s'] == 2.0
    frame_to_grasp = report['latency']['frame_to_grasp']
    assert frame_to_grasp['n'] >= 10
    # each grasp array follows its image by >= 50 ms of spinning
    assert 50 <= frame_to_grasp['p50_ms'] < 500
    assert report['latency']['detector']['p50_ms'] < frame_to_grasp['p50_ms']
    assert 3 <= report['rate_hz'][topics.COLOR_IMAGE] <= 15


def bench_args(*argv):
    parser = argparse.ArgumentParser()
    perception_bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_bench_graph_plays_the_recording_in_a_loop(tmp_path):
    recording = tmp_path / 'bin.db3'
    recording.write_bytes(b'')  # only its existence is checked before the nodes start
    nodes = perception_bench.perception_graph(bench_args('precision:=fp32'), recording,
                                              tmp_path / 'latency.json')
    assert [node.name for node in nodes] == ['camera_node', 'detector_node',
                                             'grasp_planner_node', 'latency_probe_node']
    camera, detector = nodes[0], nodes[1]
    assert camera.overrides['playback_file'] == str(recording)
    assert camera.overrides['playback_loop'] is True
    assert camera.parameter_files[0].endswith('config/camera_node.yaml')
    assert detector.overrides['precision'] == 'fp32'
    assert not nodes[-1].required  # the probe ends the bench, as demo_node ends the demo


@pytest.mark.parametrize('argv, message', [
    (['--nodes', 'detector_node'], '--nodes does not apply'),
    (['use_sim:=true'], 'needs use_sim:=false and camera:=own'),
    (['camera:=realsense2_camera'], 'needs use_sim:=false and camera:=own'),
])
def test_the_bench_refuses_another_graph(tmp_path, argv, message):
    recording = tmp_path / 'bin.db3'
    recording.write_bytes(b'')
    with pytest.raises(BringupError, match=message):
        perception_bench.perception_graph(bench_args(*argv), recording, tmp_path / 'l.json')


def test_bench_perception_measures_the_running_graph(tmp_path):
    """The command end to end: sim recording, real node processes, figures printed and saved."""
    pytest.importorskip('rclpy', reason='rclpy (ROS 2 Jazzy wheels) is not installed')
    figures = tmp_path / 'figures.json'
    code = 'import sys; from litedet_ros.cli import main; sys.exit(main(sys.argv[1:]))'
    done = subprocess.run(
        [sys.executable, '-c', code, 'bench', 'perception', '--objects', '3', '--seconds', '4',
         '--warmup', '8', '--out', str(tmp_path / 'out'), '--json', str(figures)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'frame_to_grasp' in done.stdout
    report = json.loads(figures.read_text())
    for stage in ('detector', 'grasp_planner', 'frame_to_grasp'):
        assert report['latency'][stage]['n'] > 0, stage
        assert 0 < report['latency'][stage]['p50_ms'] < 5000
    assert report['rate_hz'][topics.COLOR_IMAGE] > 5  # the recording loops at 30 FPS
    assert report['detector_report']['latency_ms']['inference']['p50'] > 0
    assert report['protocol']['recording'].endswith('bin_300003_3.db3')
