"""``litedet-ros bench picks``: the e2e protocol in one process (figures come from the bench)."""

import argparse
import json

import pytest

from litedet_ros.bringup import pick_bench
from litedet_ros.bringup.report import NO_GRASP, PickRecord
from litedet_ros.motion.status import PickOutcome, PickResult, PickState, PickStatus


class Clock:
    time = 0.0
    robot_collisions = 0

    def object_states(self):
        return []


def status(state, attempts, outcome=PickOutcome.NONE, reason=''):
    return PickStatus(state, True, attempts=attempts,
                      last_result=PickResult(outcome, reason, 4.0))


def test_the_recorder_keeps_one_record_per_finished_attempt_and_times_successes():
    clock = Clock()
    recorder = pick_bench.Recorder(clock)
    for state, attempts, outcome, at in (
            (PickState.WAITING_FOR_GRASPS, 0, PickOutcome.NONE, 0.0),
            (PickState.PLANNING, 1, PickOutcome.NONE, 0.0),
            (PickState.APPROACHING, 1, PickOutcome.NONE, 0.1),
            (PickState.GRASPING, 1, PickOutcome.NONE, 1.8),
            (PickState.LIFTING, 1, PickOutcome.NONE, 2.1),
            (PickState.TRANSPORTING, 1, PickOutcome.NONE, 2.6),
            (PickState.PLACING, 1, PickOutcome.NONE, 4.1),
            (PickState.IDLE, 1, PickOutcome.SUCCESS, 4.3),
            (PickState.IDLE, 1, PickOutcome.SUCCESS, 4.3)):  # a repeated status: no new record
        clock.time = at
        recorder(status(state, attempts, outcome))
    assert [p.outcome for p in recorder.picks] == ['SUCCESS']
    assert recorder.phases['approaching'] == [pytest.approx(1.7)]
    assert recorder.phases['placing'] == [pytest.approx(0.2)]
    recorder(status(PickState.IDLE, 2, PickOutcome.FAILED,
                    'no feasible grasp for 3 detected objects'))
    recorder(status(PickState.IDLE, 3, PickOutcome.FAILED, 'empty hand after close (0.0 mm)'))
    assert [p.outcome for p in recorder.picks] == ['SUCCESS', NO_GRASP, 'FAILED']
    assert recorder.failed_in_a_row() == 1
    assert recorder.phases['approaching'] == [pytest.approx(1.7)]  # failures are not timed


def test_the_recorder_names_the_state_in_which_each_collision_began():
    clock = Clock()
    recorder = pick_bench.Recorder(clock)
    for state, collisions in ((PickState.WAITING_FOR_GRASPS, 0), (PickState.APPROACHING, 0),
                              (PickState.GRASPING, 2), (PickState.LIFTING, 2),
                              (PickState.PUSHING, 2), (PickState.IDLE, 3)):
        clock.robot_collisions = collisions
        recorder(status(state, 1))
    assert recorder.collisions.states == {'approaching': 2, 'pushing': 1}
    assert [(e['state'], e['collisions']) for e in recorder.collisions.events] == [
        ('approaching', 2), ('pushing', 1)]


def test_failed_in_a_row_skips_looks_without_a_grasp_and_starts_again_each_round():
    recorder = pick_bench.Recorder(Clock())
    outcomes = ['SUCCESS', 'FAILED', NO_GRASP, 'PARTIAL_SUCCESS']
    recorder.picks = [PickRecord(k, o, '', 1.0, 0.0, {}) for k, o in enumerate(outcomes, 1)]
    assert recorder.failed_in_a_row() == 2  # a part dropped in transit is no success either
    recorder.round = 2
    assert recorder.failed_in_a_row() == 0


@pytest.mark.parametrize('reason, kind', [
    ('object slipped after lift (finger width 33.8 -> 0.0 mm)', 'object slipped after lift'),
    ('motion ended 0.037 rad from its goal', 'motion ended N rad from its goal'),
    ('physics diverged at t = 365.330 s: MuJoCo warning', 'physics diverged at t = N s: MuJoCo '
     'warning')])
def test_failure_reasons_are_grouped_without_their_figures(reason, kind):
    assert pick_bench._reason_kind(reason) == kind


@pytest.fixture(scope='module')
def parameters():
    return pick_bench.node_configs({'use_sim': 'true'}, pick_bench.default_config_dir())


def test_the_components_get_the_parameters_of_the_sim_graph(parameters):
    assert parameters['grasp_planner_node']['push_distance'] > 0
    assert parameters['controller_node']['clear_height'] == pytest.approx(0.22)
    assert parameters['detector_node']['precision'] == 'int8'


def test_the_cell_the_planner_and_the_controller_must_agree_on_the_fingers(parameters):
    longer = {**parameters, 'grasp_planner_node': {**parameters['grasp_planner_node'],
                                                   'gripper_finger_length': 0.08}}
    with pytest.raises(pick_bench.BringupError, match='fingers of different lengths'):
        pick_bench.build_pipeline(longer, 'truth')
    pytest.importorskip('mujoco', reason='MuJoCo is not installed')
    fingers = pick_bench.node_configs({'use_sim': 'true', 'finger_length': '0.08'},
                                      pick_bench.default_config_dir())
    pipeline = pick_bench.build_pipeline(fingers, 'truth')
    assert pipeline.planner.config.gripper.finger_length == 0.08
    # the cell and the motion model were built with the longer fingers: the tcp is further out
    assert pipeline.cell.layout['finger_length'] == 0.08
    home = pipeline.cell.arm_positions()
    tcp_short = pick_bench.build_pipeline(parameters, 'truth').backend.tcp_pose(home)
    assert pipeline.backend.tcp_pose(home)[:3, 3] == pytest.approx(
        tcp_short[:3, 3] + 0.025 * tcp_short[:3, 2], abs=1e-6)


def test_a_round_through_the_detector_accounts_for_every_object(parameters, tmp_path):
    pytest.importorskip('mujoco', reason='MuJoCo is not installed')
    pipeline = pick_bench.build_pipeline(parameters, 'detector')
    report = pick_bench.run_rounds(pipeline, seed=300_000, rounds=1, progress=False)
    (round_result,) = report['rounds']
    assert round_result['objects'] == 6  # drawn from the seed, as demo_node draws it
    assert sum(round_result['final_objects'].values()) == 6 and report['lost'] == 0
    assert report['attempts'] == round_result['attempts'] >= 1
    # every success placed its part (one carried along with it is placed too)
    assert round_result['final_objects']['placed'] >= report['successes'], report['picks']
    assert sum(report['failure_reasons'].values()) == \
        report['failures'] + report['partial_successes']
    if report['successes']:
        assert all(report['phase_p50_s'][name] > 0 for name in ('approaching', 'transporting'))
    left = report['parts_left']
    assert left['visible'] <= round_result['final_objects']['in_bin']
    assert set(left['visible_pixels_p50']) == {'detected', 'undetected'}
    assert all(pixels is None or pixels > 0 for pixels in left['visible_pixels_p50'].values())
    assert report['latency']['detector']['n'] == report['latency']['grasp_planner']['n'] >= 1
    json.dumps(report, allow_nan=False)  # the --json file


def test_the_command_refuses_no_rounds_and_a_node_selection(capsys):
    parser = argparse.ArgumentParser()
    pick_bench.add_arguments(parser)
    assert pick_bench.run(parser.parse_args(['--rounds', '0'])) == 2
    assert '--rounds must be >= 1' in capsys.readouterr().err
    assert pick_bench.run(parser.parse_args(['--nodes', 'detector_node'])) == 2
    assert '--nodes does not apply' in capsys.readouterr().err
