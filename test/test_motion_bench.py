"""``litedet-ros bench motion`` on a few seeded queries: figures, table and JSON."""

import json

import numpy as np
import pytest

from litedet_ros.cli import main
from litedet_ros.motion import bench
from litedet_ros.motion.backend import BuiltinBackend
from litedet_ros.motion.model import RobotModel
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


def test_cli_writes_json_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / 'motion.json'
    assert main(['bench', 'motion', '--json', str(out), '--ik-poses', '20', '--queries', '3']) == 0
    written = json.loads(out.read_text())
    for key in ('ik_success_rate', 'ik_p50_ms', 'plan_success_rate', 'plan_p50_ms',
                'plan_p95_ms', 'toppra_p50_ms', 'collisions'):
        assert key in written
    assert 'plan_p95_ms' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(['bench', 'no-such-area'])
