"""``litedet-ros bench motion`` on a few seeded queries: figures, table and JSON."""

from dataclasses import replace
import json

import numpy as np
import pytest

from litedet_ros.cli import main
from litedet_ros.motion import bench
from litedet_ros.motion.backend import BuiltinBackend
from litedet_ros.motion.controller import ControllerConfig
from litedet_ros.motion.model import RobotModel
from litedet_ros.motion.planner import PlannerConfig
from litedet_ros.motion.task import tool_down_pose


@pytest.fixture(scope='module')
def backend():
    return BuiltinBackend(RobotModel.from_workcell())


def test_unreachable_poses_are_told_apart(backend):
    inside = tool_down_pose((0.5, 0.0, 0.2))
    far = tool_down_pose((1.5, 0.0, 0.2))
    into_the_floor = tool_down_pose((0.5, 0.0, -0.02))
    assert bench.reachable(backend, inside)
    assert not bench.reachable(backend, far) and not bench.reachable(backend, into_the_floor)


def test_benchmark_figures(backend):
    results = bench.run_benchmark(ik_poses=40, plan_queries=8, seed=3, backend=backend)
    assert results['ik_queries'] == 40 and results['plan_queries'] == 8
    assert results['ik_success_rate'] == 1.0 and results['plan_success_rate'] == 1.0
    assert results['collisions'] == 0
    assert 0 < results['ik_p50_ms'] <= results['ik_p95_ms'] < 50
    assert 0 < results['plan_p50_ms'] <= results['plan_p95_ms'] < 1000
    assert 0.5 < results['duration_p50_s'] < 10
    assert bench.run_benchmark(40, 8, 3, backend)['ik_unreachable_skipped'] == \
        results['ik_unreachable_skipped']  # seeded
    assert np.isfinite(list(results.values())).all()


def test_full_speed_moves_need_a_fraction_of_the_joint_torques():
    """At the controller's full speed the transports stay well inside the URDF efforts.

    The torque check itself: four times the acceleration limit asks for more torque.
    """
    controller = ControllerConfig().builtin_config()

    def peak(acceleration_limit):
        planner = replace(controller.planner, acceleration_limit=acceleration_limit)
        backend = BuiltinBackend(RobotModel.from_workcell(), replace(controller, planner=planner))
        queries = bench.transport_queries(backend, 6, np.random.default_rng(5))
        results = bench.planning_benchmark(backend, queries)
        assert results['plan_success_rate'] == 1.0
        return results['peak_torque_fraction']

    full_speed = peak(PlannerConfig.acceleration_limit)
    assert 0.05 < full_speed < 0.6
    assert peak(4 * PlannerConfig.acceleration_limit) > full_speed + 0.05


def test_cli_writes_json_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / 'motion.json'
    assert main(['bench', 'motion', '--json', str(out), '--ik-poses', '20', '--queries', '3']) == 0
    written = json.loads(out.read_text())
    for key in ('ik_success_rate', 'ik_p50_ms', 'plan_success_rate', 'plan_p50_ms',
                'plan_p95_ms', 'toppra_p50_ms', 'collisions', 'peak_torque_fraction'):
        assert key in written
    assert 'plan_p95_ms' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(['bench', 'no-such-area'])
