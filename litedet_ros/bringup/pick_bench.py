"""``litedet-ros bench picks``: the e2e protocol in one process, without ROS.

The simulated cell, the detector (or, with ``--boxes truth``, the simulator's exact visible boxes),
the grasp planner and the pick-and-place task are called in turn in one process, configured from
the same parameter files as the graph (``config/<node>.yaml``, then ``--params``). Same protocol
as ``bench e2e``: bins of 5-25 objects from held-out seeds, a round ends when the bin is empty (no
detections), after 2 attempts in a row without success, or on the controller's own stop rule.
50 rounds take 6-9 minutes on one core here, against 34-42 minutes through the graph: it is the
tool for comparing settings side by side, and it explains the figures (failure reasons, phase
durations, the parts each round leaves behind).

It does not measure what only the graph has: the sim clock stands still while perception and
planning run (through the graph they take sim time, a few tenths of a second per attempt), images
do not cross processes, and the look at the bin is taken when the task asks for it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, fields, replace
import json
import os
from pathlib import Path
import re
import sys
import time

import numpy as np

# onnxruntime and torch (the detector's) load before pinocchio, coal and MuJoCo: the other
# order crashes (../shared/ENVIRONMENT.md)
from litedet_ros.detection.detector import Detector  # isort: skip
from litedet_ros.bringup.bench import HELD_OUT_SEED, MAX_CONSECUTIVE_FAILURES
from litedet_ros.bringup.cli import add_graph_arguments, launch_arguments
from litedet_ros.bringup.graph import (
    BringupError,
    build_graph,
    check_finger_lengths,
    check_graph,
    options_from_arguments,
    resolve_parameters,
)
from litedet_ros.bringup.report import (
    LOCATIONS,
    NO_GRASP,
    CollisionStates,
    PickRecord,
    attempts_without_success,
    format_table,
    round_objects,
    summarize,
)
from litedet_ros.bringup.runner import default_config_dir
from litedet_ros.detection.node_config import DetectorNodeConfig
from litedet_ros.detection.types import Detections, box_iou
from litedet_ros.errors import LitedetError
from litedet_ros.grasping.camera import decode_depth
from litedet_ros.grasping.config import BinGeometry
from litedet_ros.grasping.node_config import GraspNodeConfig
from litedet_ros.grasping.planner import GraspPlanner
from litedet_ros.motion.backend import MotionBackend
from litedet_ros.motion.controller import ControllerConfig
from litedet_ros.motion.sim_robot import SimRobot
from litedet_ros.motion.status import NO_FEASIBLE_GRASP, PickState, PickStatus
from litedet_ros.motion.task import GraspCandidates, PickPlaceTask, TaskConfig
from litedet_ros.sim.camera import encode_depth
from litedet_ros.sim.node_config import SimNodeConfig
from litedet_ros.sim.workcell import CameraFrame, Location, Workcell

#: Boxes the grasp planner is given.
BOX_SOURCES = ('detector', 'truth')
#: A detection covers a part when their boxes overlap by at least this IoU.
COVERED_IOU = 0.5
#: States timed for the phase durations of successful picks, in the order they occur.
PHASES = (PickState.APPROACHING, PickState.GRASPING, PickState.LIFTING,
          PickState.TRANSPORTING, PickState.PLACING)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options (the graph's launch arguments pick parameter files)."""
    parser.add_argument('--rounds', type=int, default=50, help='bins to clear (default 50)')
    parser.add_argument('--seed', type=int, default=HELD_OUT_SEED,
                        help=f'seed of the first bin (default {HELD_OUT_SEED}, held out)')
    parser.add_argument('--boxes', choices=BOX_SOURCES, default='detector',
                        help="the detector's boxes (default) or the simulator's exact ones")
    parser.add_argument('--json', help='write the figures to this JSON file')
    add_graph_arguments(parser)


@dataclass
class Pipeline:
    """The cell and the components of the graph, in one process (the task is made per run)."""

    cell: Workcell
    detector: Detector | None
    planner: GraspPlanner
    backend: MotionBackend
    task_config: TaskConfig
    depth_encoding: str


def node_configs(arguments: dict[str, str], config_dir: Path) -> dict[str, dict[str, object]]:
    """Parameters of the sim graph's nodes, as ``bringup --sim`` would start them.

    Raises:
        BringupError: what the bringup would refuse (:func:`~.graph.check_graph`), such as a
            parameter a node does not have.
    """
    nodes = build_graph(replace(options_from_arguments(arguments), use_rviz=False), config_dir)
    check_graph(nodes)
    return {node.name: resolve_parameters(node) for node in nodes}


def _config(cls: type, values: dict[str, object]):  # noqa: ANN202 - any config dataclass
    names = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
                  if k in names})


def build_pipeline(parameters: dict[str, dict[str, object]], boxes: str) -> Pipeline:
    """Wire the cell, detector, grasp planner and task from the nodes' parameters.

    Raises:
        BringupError: the nodes model fingers of different lengths.
    """
    check_finger_lengths(parameters)
    sim = _config(SimNodeConfig, parameters['sim_node'])
    cell = Workcell(sim.workcell_config(), num_objects=0)
    detector = None
    if boxes == 'detector':
        detector = _config(DetectorNodeConfig, parameters['detector_node']).load_detector()
    grasp = _config(GraspNodeConfig, parameters['grasp_planner_node'])
    controller = _config(ControllerConfig, parameters['controller_node'])
    return Pipeline(cell, detector, GraspPlanner(grasp.planner_config()),
                    controller.make_backend(), controller.task_config(), sim.depth_encoding)


def truth_detections(frame: CameraFrame, size: tuple[int, int]) -> Detections:
    """The visible objects' exact boxes as detections of their classes, score 1."""
    visible = np.flatnonzero(frame.visible_pixels > 0)
    labels = tuple(frame.objects[k].label for k in visible)
    return Detections(frame.boxes[visible], np.ones(len(visible)),
                      np.array([frame.objects[k].class_id for k in visible]), labels, size,
                      stamp_ns=int(frame.time * 1e9))


class Look:
    """Looks at the bin for the task, timing detection and grasp planning (wall s)."""

    def __init__(self, pipeline: Pipeline) -> None:
        """Wrap a pipeline."""
        self.pipeline = pipeline
        self.latency: dict[str, list[float]] = {'detector': [], 'grasp_planner': []}
        self.drops: Counter = Counter()

    def detect(self, frame: CameraFrame, timed: bool = True) -> Detections:
        """Detections of ``frame`` from the detector or the truth."""
        camera = self.pipeline.cell.config.intrinsics
        if self.pipeline.detector is None:
            return truth_detections(frame, (camera.width, camera.height))
        started = time.perf_counter()
        detections, _ = self.pipeline.detector.detect(frame.rgb, stamp_ns=int(frame.time * 1e9))
        if timed:
            self.latency['detector'].append(time.perf_counter() - started)
        return detections

    def __call__(self) -> GraspCandidates:
        pipeline = self.pipeline
        cell = pipeline.cell
        frame = cell.capture()
        detections = self.detect(frame)
        depth = encode_depth(frame.depth, pipeline.depth_encoding)  # as sim_node publishes it
        started = time.perf_counter()
        plan = pipeline.planner.plan(decode_depth(depth, pipeline.depth_encoding),
                                     cell.config.intrinsics, detections, cell.camera_pose())
        self.latency['grasp_planner'].append(time.perf_counter() - started)
        self.drops.update(plan.drops)
        return GraspCandidates(tuple(plan.grasps), len(detections.boxes) + len(plan.undetected),
                               plan.pushes)


def leftovers(frame: CameraFrame, detections: Detections, cell: Workcell,
              bin_geometry: BinGeometry | None) -> list[dict]:
    """The parts still in the bin and visible: class, wall distance (m), covered by a box."""
    states = {state.id: state for state in cell.object_states()}
    parts = []
    for k in np.flatnonzero(frame.visible_pixels > 0):
        state = states[frame.objects[k].id]
        if state.location != Location.IN_BIN:
            continue
        wall = None
        if bin_geometry is not None:
            local = bin_geometry.to_bin(state.pose[None, :3, 3])[0]
            wall = float(min(bin_geometry.size_x / 2 - abs(local[0]),
                             bin_geometry.size_y / 2 - abs(local[1])))
        covered = any(box_iou(frame.boxes[k], box) >= COVERED_IOU for box in detections.boxes)
        parts.append({'label': state.label, 'wall_distance_m': wall, 'detected': covered,
                      'visible_pixels': int(frame.visible_pixels[k])})
    return parts


class Recorder:
    """The task's status callback: records of attempts, phase durations, collision states.

    A record per finished attempt, the phase durations of successes, and the task state in
    which each robot collision began.
    """

    def __init__(self, cell: Workcell) -> None:
        """Record against ``cell``'s clock, collision count and object states."""
        self.cell = cell
        self.picks: list[PickRecord] = []
        self.round = 1
        self.phases: dict[str, list[float]] = {state.name.lower(): [] for state in PHASES}
        self.collisions = CollisionStates(cell.robot_collisions)
        self._entered: list[tuple[PickState, float]] = []
        self._finished = 0  # the task's attempt count at the last finished attempt

    def __call__(self, status: PickStatus) -> None:
        now = self.cell.time
        # the collisions since the last status began in the state it reported
        self.collisions.update(
            self.cell.robot_collisions,
            self._entered[-1][0].name.lower() if self._entered else 'before_the_task',
            round=self.round, pick=len(self.picks) + 1, sim_time_s=round(now, 2))
        if status.state == PickState.WAITING_FOR_GRASPS:
            self._entered = []
        if not self._entered or self._entered[-1][0] != status.state:
            self._entered.append((status.state, now))
        if status.state != PickState.IDLE or status.attempts <= self._finished:
            return
        self._finished = status.attempts
        result = status.last_result
        outcome = result.outcome.name
        if result.reason.startswith(NO_FEASIBLE_GRASP):
            outcome = NO_GRASP  # nothing moved: not an attempt
        counts = Counter(state.location.name.lower() for state in self.cell.object_states())
        self.picks.append(PickRecord(len(self.picks) + 1, outcome, result.reason,
                                     result.cycle_time, now,
                                     {name: counts.get(name, 0) for name in LOCATIONS},
                                     round=self.round))
        if outcome == 'SUCCESS':
            for (state, start), (_, end) in zip(self._entered, self._entered[1:]):
                if state in PHASES:
                    self.phases[state.name.lower()].append(end - start)

    def failed_in_a_row(self) -> int:
        """Attempts without success at the end of this round's records.

        Counted as demo_node counts them for its stop rule: looks without a grasp skipped,
        partial successes included.
        """
        return attempts_without_success([p.outcome for p in self.picks if p.round == self.round])


def run_rounds(pipeline: Pipeline, seed: int, rounds: int, progress: bool = True) -> dict:
    """Clear ``rounds`` bins from ``seed`` on; the e2e report plus the in-process figures."""
    cell = pipeline.cell
    look, recorder = Look(pipeline), Recorder(cell)
    robot = SimRobot(cell)
    task = PickPlaceTask(pipeline.backend, robot, pipeline.task_config, on_status=recorder)
    round_results, parts_left = [], []
    objects = sim_time = 0
    for round_index in range(1, rounds + 1):
        round_seed = seed + round_index - 1
        count = round_objects(round_seed)
        cell.reset(round_seed, count)
        task.reset()
        recorder.round = round_index
        objects += count
        started, collisions_before = cell.time, cell.robot_collisions
        recoveries_before, divergences_before = cell.physics_recoveries, robot.divergences
        stop = ''

        def detect() -> GraspCandidates:
            nonlocal stop
            if recorder.failed_in_a_row() >= MAX_CONSECUTIVE_FAILURES:
                stop = f'stop rule: {MAX_CONSECUTIVE_FAILURES} consecutive failed attempts'
                return GraspCandidates()  # looks empty: ends the task's run
            return look()

        task.run(detect)
        located = Counter(state.location.name.lower() for state in cell.object_states())
        if not stop:
            stop = (f'controller stopped after {task.status.consecutive_failures} consecutive '
                    'failures' if task.status.state == PickState.STOPPED else
                    'bin empty' if not located['in_bin'] else
                    f'nothing detected with {located["in_bin"]} objects left')
        # the arm ends each attempt out of the camera's view
        final = cell.capture()
        parts_left += leftovers(final, look.detect(final, timed=False), cell,
                                pipeline.planner.config.bin)
        round_results.append({
            'round': round_index, 'seed': round_seed, 'objects': count,
            'attempts': sum(p.round == round_index and p.outcome != NO_GRASP
                            for p in recorder.picks),
            'final_objects': {name: located.get(name, 0) for name in LOCATIONS},
            'collisions': cell.robot_collisions - collisions_before,
            'physics_recoveries': cell.physics_recoveries - recoveries_before,
            'physics_divergences': robot.divergences - divergences_before,
            'stop_reason': stop})
        sim_time += cell.time - started
        if progress:
            print(f'round {round_index}/{rounds} (seed {round_seed}): {located["placed"]} of '
                  f'{count} placed; {stop}', flush=True)
    totals = Counter()
    for result in round_results:
        totals.update(result['final_objects'])
    report = summarize(objects, recorder.picks, totals, sim_time, look.latency,
                       f'{rounds} rounds done', sum(r['collisions'] for r in round_results))
    failures = Counter(_reason_kind(p.reason) for p in recorder.picks
                       if p.outcome not in ('SUCCESS', NO_GRASP))
    report.update(rounds=round_results, failure_reasons=dict(failures.most_common()),
                  no_grasp_drops=dict(look.drops.most_common()),
                  collision_states=dict(recorder.collisions.states.most_common()),
                  collision_events=recorder.collisions.events,
                  physics_recoveries=sum(r['physics_recoveries'] for r in round_results),
                  physics_divergences=robot.divergences,
                  phase_p50_s={name: float(np.median(v)) if v else None
                               for name, v in recorder.phases.items()},
                  parts_left=_leftover_summary(parts_left))
    return report


def _reason_kind(reason: str) -> str:
    """A failure reason without its figures: 'motion ended 0.037 rad ...' -> '... N rad ...'."""
    return re.sub(r'-?\d+(\.\d+)?', 'N', reason.split(' (')[0])


def _leftover_summary(parts: list[dict]) -> dict:
    near = [p for p in parts if p['wall_distance_m'] is not None]
    return {
        'visible': len(parts),
        'detected': sum(p['detected'] for p in parts),
        'within_5cm_of_a_wall': sum(p['wall_distance_m'] < 0.05 for p in near),
        'within_7_5cm_of_a_wall': sum(p['wall_distance_m'] < 0.075 for p in near),
        'by_label': dict(Counter(p['label'] for p in parts).most_common()),
        'undetected_by_label': dict(Counter(p['label'] for p in parts
                                            if not p['detected']).most_common()),
        # how much of them the camera saw: the undetected ones are often mostly hidden
        'visible_pixels_p50': {
            kind: (float(np.median(pixels)) if pixels else None)
            for kind, pixels in (
                ('detected', [p['visible_pixels'] for p in parts if p['detected']]),
                ('undetected', [p['visible_pixels'] for p in parts if not p['detected']]))},
    }


def run(args: argparse.Namespace) -> int:
    """Run the rounds, print the table, write the JSON; return the exit code."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    try:
        if args.rounds < 1:
            raise BringupError(f'--rounds must be >= 1, got {args.rounds}')
        if args.nodes:
            raise BringupError('--nodes does not apply: the bench runs no nodes')
        args.sim = True  # the graph whose parameters are used: the simulated cell's
        parameters = node_configs(launch_arguments(args),
                                  Path(args.config_dir or default_config_dir()))
        pipeline = build_pipeline(parameters, args.boxes)
    except (LitedetError, ValueError, TypeError) as error:
        print(f'litedet-ros bench picks: {error}', file=sys.stderr)
        return 2
    wall = time.monotonic()
    report = run_rounds(pipeline, args.seed, args.rounds)
    report['protocol'] = {'rounds': args.rounds, 'first_seed': args.seed, 'objects': '5-25',
                          'max_consecutive_failures': MAX_CONSECUTIVE_FAILURES,
                          'boxes': args.boxes,
                          'finger_length': pipeline.planner.config.gripper.finger_length,
                          'in_process': True}
    report['wall_s'] = time.monotonic() - wall
    print(format_table(report))
    print('failures:', report['failure_reasons'])
    print('robot collisions by task state:', report['collision_states'],
          f'(physics blow-ups undone: {report["physics_recoveries"]}, arm halted by one not '
          f'undone: {report["physics_divergences"]})')
    print('phases of successful picks, p50 s:',
          {k: round(v, 2) for k, v in report['phase_p50_s'].items() if v is not None})
    print('parts left visible in the bins:', report['parts_left'])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, allow_nan=False) + '\n')
    return 0
