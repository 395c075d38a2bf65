"""The bringup runner with real node processes: start, see topics, stop; crashes; bad input."""

import argparse
import io
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

import pytest

from litedet_ros import topics
from litedet_ros.bringup import cli
from litedet_ros.bringup.graph import build_graph, options_from_arguments, select
from litedet_ros.bringup.runner import Bringup, NodeCommand, node_commands

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'config'
# a light sim: few objects, few frames, as fast as the CPU allows
SIM_PARAMS = ('/**/sim_node:\n  ros__parameters:\n    num_objects: 3\n    camera_rate: 5.0\n'
              '    depth_noise: false\n')
RUN_CLI = ('import argparse, sys\nfrom litedet_ros.bringup import cli\n'
           'parser = argparse.ArgumentParser()\ncli.add_arguments(parser)\n'
           'sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n')


def commands(arguments, *names):
    nodes = build_graph(options_from_arguments(arguments), CONFIG)
    return node_commands(select(nodes, list(names)))


@pytest.fixture
def sim_params(tmp_path):
    path = tmp_path / 'sim.yaml'
    path.write_text(SIM_PARAMS)
    return str(path)


def test_runner_starts_the_sim_node_whose_topics_arrive_then_stops_it(
        ros_executor, spin_until, sim_params):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    output = io.StringIO()
    bringup = Bringup(commands({'use_sim': 'true', 'params_file': sim_params}, 'sim_node'),
                      output=output)
    received = {}
    listener = Node('listener', context=ros_executor.context)
    listener.create_subscription(JointState, topics.JOINT_STATES,
                                 lambda msg: received.setdefault('joints', msg), 10)
    listener.create_subscription(Image, topics.COLOR_IMAGE,
                                 lambda msg: received.setdefault('color', msg),
                                 qos_profile_sensor_data)
    ros_executor.add_node(listener)
    bringup.start()
    try:
        assert spin_until(lambda: len(received) == 2 or bringup.poll(), timeout=90), \
            output.getvalue()
        assert not bringup.exits, output.getvalue()
        assert len(received['joints'].name) == 7
        assert (received['color'].width, received['color'].height) == (640, 480)
    finally:
        started = time.monotonic()
        bringup.shutdown()
    assert time.monotonic() - started < bringup.sigint_timeout  # SIGINT sufficed
    assert [(e.name, e.returncode) for e in bringup.exits] == [('sim_node', 0)]
    assert 'sending SIGTERM' not in output.getvalue()
    assert '[bringup] started sim_node' in output.getvalue()


def test_a_killed_required_node_is_reported_and_stops_the_others(sim_params):
    output = io.StringIO()
    bringup = Bringup(commands({'use_sim': 'true', 'params_file': sim_params}, 'sim_node')
                      + commands({}, 'camera_node'), output=output)
    killed = []

    def kill_camera_once():
        if not killed and bringup.processes and time.monotonic() - start > 3.0:
            os.kill(bringup.processes['camera_node'].pid, signal.SIGKILL)
            killed.append(time.monotonic())
        assert time.monotonic() - start < 60, output.getvalue()
        return False

    start = time.monotonic()
    assert bringup.run(until=kill_camera_once) == 1
    text = output.getvalue()
    assert 'camera_node ended: killed by SIGKILL' in text
    assert 'required node camera_node ended (killed by SIGKILL): stopping the bringup' in text
    assert bringup.processes['sim_node'].returncode is not None
    assert time.monotonic() - killed[0] < 10


def test_an_optional_node_may_end_without_stopping_the_bringup():
    output = io.StringIO()
    optional = NodeCommand('optional', (sys.executable, '-c', 'import sys; sys.exit(3)'),
                           required=False)
    bringup = Bringup([*commands({}, 'camera_node'), optional], output=output)
    start = time.monotonic()
    assert bringup.run(until=lambda: time.monotonic() - start > 4.0) == 0
    text = output.getvalue()
    assert 'optional ended: exit code 3' in text
    assert 'camera_node ended' in text and 'shutting down' in text
    assert bringup.processes['camera_node'].returncode == 0


def test_ctrl_c_on_the_runner_stops_every_node(tmp_path):
    runner = subprocess.Popen([sys.executable, '-c', RUN_CLI, '--nodes', 'camera_node',
                               '--log-dir', str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    line = runner.stdout.readline()
    match = re.search(r'started camera_node \(pid (\d+)\)', line)
    assert match, line
    time.sleep(3.0)
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 0, out
    assert 'shutting down' in out and 'camera_node ended: exit code 0' in out
    with pytest.raises(ProcessLookupError):
        os.kill(int(match.group(1)), 0)
    assert (tmp_path / 'camera_node.log').stat().st_size > 0


@pytest.mark.parametrize(('argv', 'message'), [
    (['--params', 'no_such.yaml'], 'parameters file not found: no_such.yaml'),
    (['backend:=openvino'], "unknown backend 'openvino'"),
    (['use_sim'], "expected name:=value, got 'use_sim'"),
    (['--nodes', 'camera_node', '--params', '{bad}'], 'playback_file names a file'),
    (['--nodes', 'camera', 'camera:=realsense2_camera'], 'realsense2_camera is not installed'),
    (['--nodes', 'rviz2', 'use_rviz:=true', 'camera:=none'], 'rviz2 is not installed'),
])
def test_bad_input_stops_the_bringup_before_any_node_starts(tmp_path, capsys, argv, message):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('/**:\n  ros__parameters:\n    playback_file: /no/such/recording.bag\n')
    argv = [str(bad) if item == '{bad}' else item for item in argv]
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    env = {k: v for k, v in os.environ.items() if k != 'AMENT_PREFIX_PATH'}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, 'environ', env)
        assert cli.run(parser.parse_args(argv)) == 2
    error = capsys.readouterr().err
    assert message in error and 'started' not in error


def test_a_missing_node_module_stops_the_bringup_before_any_node_starts():
    from litedet_ros.bringup.graph import NodeSpec
    from litedet_ros.bringup.runner import BringupError

    with pytest.raises(BringupError, match='no module litedet_ros.no_such_node'):
        node_commands((NodeSpec('litedet_ros', 'no_such_node', 'no_such_node', '/'),))


def test_print_shows_the_command_lines(capsys):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(['--sim', '--nodes', 'sim_node', '--print',
                                      'namespace:=cell'])) == 0
    out = capsys.readouterr().out
    assert '# sim_node' in out and '-r __ns:=/cell' in out and 'sim_node.yaml' in out
