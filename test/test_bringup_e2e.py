"""End to end: the demo's bin picked in the simulated workcell through the real graph.

sim_node -> detector_node (ONNX Runtime INT8, the shipped model) -> grasp_planner_node ->
controller_node -> sim_node, driven by demo_node, as ``litedet-ros demo`` runs it (about a
minute on 2 cores). Success, clearing, cycle-time and latency figures come from
``litedet-ros bench e2e``, not from this test.
"""

import argparse
from pathlib import Path

import pytest

from litedet_ros.bringup import demo
from litedet_ros.bringup.graph import BringupError

ROOT = Path(__file__).resolve().parents[1]
NEEDED = [ROOT / 'litedet_ros' / 'detector_node.py', ROOT / 'config' / 'detector_node.yaml',
          ROOT / 'config' / 'grasp_planner_node.yaml', ROOT / 'config' / 'controller_node.yaml']


def test_the_demo_bin_is_picked_and_every_object_accounted_for(tmp_path):
    missing = [str(path.relative_to(ROOT)) for path in NEEDED if not path.is_file()]
    if missing:
        pytest.skip(f'the graph is not complete yet: {missing} missing')
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(['--out', str(tmp_path)])
    try:
        status, report = demo.run_episodes(args, tmp_path, seed=400_000, num_objects=10,
                                           timeout=420.0, record=False)
    except BringupError as error:  # e.g. the shipped model is not there yet
        pytest.skip(f'the graph cannot start here: {error}')
    assert status == 0 and report, f'graph failed; logs in {tmp_path / "logs"}'
    assert report['successes'] >= 1, report['picks']
    # every success placed its object; one carried along with it is placed too, not lost
    assert report['final_objects']['placed'] >= report['successes'], report['final_objects']
    assert sum(report['final_objects'].values()) == 10, report['final_objects']
    assert report['lost'] == 0
    assert report['stop_reason'], report
