"""The sim node over real ROS 2 topics: camera/joint/clock/object topics, trajectories, reset."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip('rclpy', reason='rclpy (ROS 2 Jazzy wheels) is not installed')

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from litedet_ros import topics  # noqa: E402
from litedet_ros.description import ARM_JOINTS, CAMERA_FRAME  # noqa: E402
from litedet_ros.errors import LitedetError  # noqa: E402
from litedet_ros.msg import ObjectStateArray  # noqa: E402
from litedet_ros.sim_node import SimNode  # noqa: E402
from litedet_ros.srv import ResetBin  # noqa: E402


class _Probe(Node):
    """Subscribe to everything the sim node publishes; keep the messages."""

    def __init__(self, context):
        super().__init__('sim_probe', context=context)
        self.messages = {}
        sensor = qos_profile_sensor_data
        for topic, kind, qos in ((topics.COLOR_IMAGE, Image, sensor),
                                 (topics.COLOR_INFO, CameraInfo, sensor),
                                 (topics.DEPTH_IMAGE, Image, sensor),
                                 (topics.DEPTH_INFO, CameraInfo, sensor),
                                 (topics.JOINT_STATES, JointState, 10),
                                 ('/clock', Clock, 10),
                                 (topics.SIM_OBJECTS, ObjectStateArray, 10)):
            self.messages[topic] = []
            self.create_subscription(kind, topic, self.messages[topic].append, qos)
        self.trajectory_pub = self.create_publisher(JointTrajectory, topics.JOINT_TRAJECTORY, 10)
        self.gripper_pub = self.create_publisher(Float64MultiArray, topics.GRIPPER_COMMAND, 10)
        self.reset = self.create_client(ResetBin, topics.SIM_RESET_BIN)

    def latest_joints(self):
        msg = self.messages[topics.JOINT_STATES][-1]
        return np.array([msg.position[list(msg.name).index(j)] for j in ARM_JOINTS])


def _sim_node(ros_context, **parameters):
    """A sim node of the seed-3 bin of 4 objects, as fast as possible unless ``parameters`` say."""
    values = {'seed': 3, 'num_objects': 4, 'real_time_factor': 0.0, **parameters}
    return SimNode(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in values.items()])


def _start(ros_context, ros_executor, camera_rate, real_time_factor=0.0):
    """A sim node (:func:`_sim_node`) and a probe, both spinning."""
    node = _sim_node(ros_context, camera_rate=camera_rate, real_time_factor=real_time_factor)
    probe = _Probe(ros_context)
    ros_executor.add_node(node)
    ros_executor.add_node(probe)
    return node, probe


def _stop(ros_executor, *nodes):
    for node in nodes:
        ros_executor.remove_node(node)
        node.destroy_node()


@pytest.fixture
def sim(ros_context, ros_executor):
    return _start(ros_context, ros_executor, camera_rate=10.0)


def _stamp(msg):
    return msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec


def test_publishes_consistent_topics(sim, spin_until):
    node, probe = sim
    assert spin_until(lambda: all(len(v) >= 3 for v in probe.messages.values()), timeout=30.0)
    color = probe.messages[topics.COLOR_IMAGE]
    depth = {_stamp(m): m for m in probe.messages[topics.DEPTH_IMAGE]}
    infos = {_stamp(m): m for m in probe.messages[topics.COLOR_INFO]}
    depth_infos = {_stamp(m): m for m in probe.messages[topics.DEPTH_INFO]}
    paired = [m for m in color if _stamp(m) in depth and _stamp(m) in infos
              and _stamp(m) in depth_infos]
    assert paired, 'no colour frame with depth and infos of the same stamp'
    image = paired[0]
    stamp = _stamp(image)
    assert (image.width, image.height, image.encoding) == (640, 480, 'rgb8')
    assert (depth[stamp].encoding, depth[stamp].width) == ('16UC1', 640)
    for msg in (image, depth[stamp], infos[stamp], depth_infos[stamp]):
        assert msg.header.frame_id == CAMERA_FRAME
    info = infos[stamp]
    assert (info.width, info.height) == (640, 480)
    assert info.k[0] == pytest.approx(615.0) and info.k[2] == pytest.approx(319.5)
    pixels = np.frombuffer(bytes(depth[stamp].data), dtype=np.uint16).reshape(480, 640)
    floor = np.median(pixels[pixels > 0])
    assert 500 < floor < 700  # bin floor / parts 0.5-0.7 m below the camera
    clocks = [_stamp(type('m', (), {'header': type('h', (), {'stamp': c.clock})})) for c in
              probe.messages['/clock']]
    assert np.all(np.diff(clocks) > 0)
    objects = probe.messages[topics.SIM_OBJECTS][-1]
    assert objects.header.frame_id == 'world' and len(objects.objects) == 4
    joints = probe.messages[topics.JOINT_STATES][-1]
    assert list(joints.name)[:6] == list(ARM_JOINTS)


def test_executes_trajectory_and_refuses_bad_ones(sim, spin_until):
    node, probe = sim
    assert spin_until(lambda: len(probe.messages[topics.JOINT_STATES]) > 0, timeout=30.0)
    start = probe.latest_joints()
    bad = JointTrajectory(joint_names=[*ARM_JOINTS[:5], 'no_such_joint'])
    bad.points = [JointTrajectoryPoint(positions=list(start))]
    probe.trajectory_pub.publish(bad)
    assert spin_until(lambda: node.rejected_trajectories == 1, timeout=10.0)
    assert 'no_such_joint' in node.last_error
    target = start + np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.2])
    good = JointTrajectory(joint_names=list(ARM_JOINTS))
    good.points = [JointTrajectoryPoint(positions=list(start)),
                   JointTrajectoryPoint(positions=list(target))]
    good.points[1].time_from_start.sec = 1
    probe.trajectory_pub.publish(good)
    assert spin_until(lambda: np.abs(probe.latest_joints() - target).max() < 2e-3,
                      timeout=30.0)
    probe.gripper_pub.publish(Float64MultiArray(data=[0.02, 0.03]))
    assert spin_until(lambda: node.rejected_gripper_commands == 1, timeout=10.0)


def test_reset_bin_service(sim, spin_until):
    node, probe = sim
    assert probe.reset.wait_for_service(timeout_sec=10.0)
    future = probe.reset.call_async(ResetBin.Request(seed=9, num_objects=26))
    assert spin_until(future.done, timeout=30.0)
    assert not future.result().success and '25' in future.result().message
    future = probe.reset.call_async(ResetBin.Request(seed=9, num_objects=7))
    assert spin_until(future.done, timeout=30.0)
    assert future.result().success
    probe.messages[topics.SIM_OBJECTS].clear()
    assert spin_until(lambda: len(probe.messages[topics.SIM_OBJECTS]) > 0, timeout=10.0)
    assert len(probe.messages[topics.SIM_OBJECTS][-1].objects) == 7
    assert node.failed_resets == 1


def _count_settling(monkeypatch, calls):
    """The number of ``calls`` each time a scene has settled (the first scene's first).

    Failures are injected in steps after it: settling takes as many steps as the parts need.
    """
    from litedet_ros.sim import workcell

    real_settle, settled = workcell.Workcell._settle, []

    def settle(cell):
        real_settle(cell)
        settled.append(len(calls))

    monkeypatch.setattr(workcell.Workcell, '_settle', settle)
    return settled


@pytest.mark.parametrize('in_a_row', [1, 2])
def test_a_diverging_step_is_reported_and_only_a_second_in_a_row_reloads_the_scene(
        ros_context, ros_executor, spin_until, monkeypatch, in_a_row):
    # No seeded scene of the sim node diverges on demand, so the physics blow-up is injected
    # (the cell's own recovery from it: test_sim_execution.py).
    from litedet_ros.sim import workcell

    real_step, calls = workcell.Workcell.step, []
    settled = _count_settling(monkeypatch, calls)

    def step_that_diverges(cell, count=1):
        calls.append(count)
        if settled and settled[0] + 20 <= len(calls) < settled[0] + 20 + in_a_row:
            raise workcell.PhysicsDivergedError('physics diverged (injected)')
        real_step(cell, count)

    monkeypatch.setattr(workcell.Workcell, 'step', step_that_diverges)
    node, probe = _start(ros_context, ros_executor, camera_rate=1.0)
    try:
        # settling a reloaded scene takes up to 20 steps: 60 are beyond it
        assert spin_until(lambda: node.physics_errors == in_a_row and
                          len(calls) > settled[-1] + 60, timeout=30.0)
        assert len(settled) == in_a_row  # the first scene, and the reloaded one after two
        before = len(probe.messages[topics.JOINT_STATES])
        assert spin_until(lambda: len(probe.messages[topics.JOINT_STATES]) > before + 5,
                          timeout=10.0)
        assert len(probe.messages[topics.SIM_OBJECTS][-1].objects) == 4  # the seed-3 bin
    finally:
        _stop(ros_executor, node, probe)


def test_a_stalled_simulation_does_not_race_to_catch_up(
        ros_context, ros_executor, spin_until, monkeypatch):
    # After a stall (a loaded machine), sim time must not run faster than real time to make up
    # for it: whatever reacts on the wall clock would then look slow in sim time.
    from litedet_ros.sim import workcell
    from litedet_ros.sim_node import MAX_LAG

    real_step, samples = workcell.Workcell.step, []  # (wall s, sim s) after each step
    stall = 0.5

    def step_that_stalls_once(cell, count=1):
        if len(samples) == 50:
            time.sleep(stall)
        real_step(cell, count)
        samples.append((time.monotonic(), cell.time))

    monkeypatch.setattr(workcell.Workcell, 'step', step_that_stalls_once)
    node, probe = _start(ros_context, ros_executor, camera_rate=0.1, real_time_factor=1.0)
    window = 0.4
    try:
        assert spin_until(lambda: len(samples) > 51 and
                          samples[-1][0] - samples[50][0] > window + 0.1, timeout=30.0)
    finally:
        _stop(ros_executor, node, probe)
    wall, sim = np.array(samples).T
    after = wall[50:] <= wall[50] + window
    sim_advance = sim[50:][after][-1] - sim[50]
    wall_advance = wall[50:][after][-1] - wall[50]
    print(f'{wall_advance:.3f} s of wall time after the stall ran {sim_advance:.3f} s of sim')
    # one late chunk of 10 ms may be run before the pacing resets; catching up the stall would
    # add up to 0.5 s
    assert sim_advance <= wall_advance + MAX_LAG + 0.02


def test_a_failing_simulation_thread_ends_the_node_with_status_1(monkeypatch, capfd):
    # Without the check the process spun on without a sim thread: alive, publishing nothing.
    from litedet_ros import sim_node
    from litedet_ros.sim import workcell

    real_step, calls = workcell.Workcell.step, []
    settled = _count_settling(monkeypatch, calls)

    def step_that_fails(cell, count=1):
        calls.append(count)
        if settled and len(calls) == settled[0] + 20:
            raise RuntimeError('a bug (injected)')
        real_step(cell, count)

    monkeypatch.setattr(workcell.Workcell, 'step', step_that_fails)
    with pytest.raises(SystemExit) as ended:
        sim_node.main(['--ros-args', '-p', 'seed:=3', '-p', 'num_objects:=4',
                       '-p', 'real_time_factor:=0.0', '-p', 'camera_rate:=1.0'])
    assert ended.value.code == 1
    assert len(calls) == settled[0] + 20
    log = capfd.readouterr().err
    assert 'simulation thread failed' in log and 'RuntimeError: a bug (injected)' in log


def test_requests_to_a_failed_simulation_are_refused_at_once(ros_context, monkeypatch):
    from litedet_ros.sim import workcell

    real_step, broken = workcell.Workcell.step, threading.Event()

    def step_that_fails_once_broken(cell, count=1):
        if broken.is_set():
            raise RuntimeError('a bug (injected)')
        real_step(cell, count)

    monkeypatch.setattr(workcell.Workcell, 'step', step_that_fails_once_broken)
    node = _sim_node(ros_context)
    try:
        broken.set()
        node._thread.join(timeout=30.0)
        assert node.failure == 'RuntimeError: a bug (injected)'
        response = node._on_reset(ResetBin.Request(seed=4, num_objects=2), ResetBin.Response())
        assert not response.success
        assert response.message == 'the simulation has stopped (RuntimeError: a bug (injected))'
        assert node.failed_resets == 1
    finally:
        node.destroy_node()


def test_an_unexpected_error_building_the_cell_is_a_startup_error(ros_context, monkeypatch):
    # it used to end the simulation thread before it signalled ready: the constructor hung
    from litedet_ros.sim import workcell

    def step_that_fails(cell, count=1):
        raise RuntimeError('a bug (injected)')

    monkeypatch.setattr(workcell.Workcell, 'step', step_that_fails)
    with pytest.raises(LitedetError, match='building the workcell failed: RuntimeError: a bug'):
        _sim_node(ros_context)
