"""``litedet-ros bench perception``: frame-to-grasp latency of the perception graph alone.

What the computer of a real cell runs on every camera frame: ``camera_node`` playing a RealSense
recording (looped, at its recorded rate, 30 FPS), ``detector_node`` and ``grasp_planner_node``,
each in its own process, started from the graph description as ``bringup camera:=own`` starts
them (same parameter files, ``--params`` and ``name:=value`` arguments), plus
``latency_probe_node``, which measures the stages from the receive times of one image stamp
(colour image -> detections -> grasps) and writes the figures. No simulator and no controller
compete for the cores (``bench e2e`` and ``demo`` measure the same stages beside them).

The default recording is the simulated workcell camera over a held-out bin (seed 300003, 15
objects), written to ``OUT/bin_<seed>_<objects>.db3`` when missing.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
from pathlib import Path
import subprocess
import sys

from litedet_ros import topics
from litedet_ros.bringup.cli import add_graph_arguments, graph_from_args, launch_arguments
from litedet_ros.bringup.graph import PACKAGE, BringupError, NodeSpec, options_from_arguments
from litedet_ros.bringup.latency import LATENCY_STAGES

PERCEPTION_NODES = ('camera_node', 'detector_node', 'grasp_planner_node')
RATE_NAMES = {topics.COLOR_IMAGE: 'colour images', topics.DETECTIONS: 'detections',
              topics.GRASPS: 'grasp arrays'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options and the graph options of ``bringup``."""
    parser.add_argument('--recording', help='RealSense recording (.db3/.bag) to play; default: '
                        'the simulated camera over --seed/--objects, written to OUT')
    parser.add_argument('--seed', type=int, default=300_003,
                        help='bin seed of the default recording (default 300003, held out)')
    parser.add_argument('--objects', type=int, default=15,
                        help='objects in the default recording (default 15)')
    parser.add_argument('--seconds', type=float, default=60.0,
                        help='measurement, wall s (default 60)')
    parser.add_argument('--warmup', type=float, default=10.0,
                        help='start-up before measuring, wall s (default 10)')
    parser.add_argument('--out', default='output/bench_perception',
                        help='folder for the recording, logs and figures (default '
                        'output/bench_perception)')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    add_graph_arguments(parser)


def _recording(args: argparse.Namespace, out: Path) -> Path:
    if args.recording:
        return Path(args.recording).resolve()
    path = (out / f'bin_{args.seed}_{args.objects}.db3').resolve()
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        # in its own process: MuJoCo loaded before ONNX Runtime (the graph check) crashes
        code = 'import sys; from litedet_ros.cli import main; sys.exit(main(sys.argv[1:]))'
        done = subprocess.run([sys.executable, '-c', code, 'camera', 'record-sim', str(path),
                               '--seed', str(args.seed), '--objects', str(args.objects),
                               '--frames', '60'], check=False)
        if done.returncode or not path.is_file():
            raise BringupError(f'could not record the simulated camera to {path}')
    return path


def perception_graph(args: argparse.Namespace, recording: Path, report: Path
                     ) -> tuple[NodeSpec, ...]:
    """The three perception nodes (camera playing ``recording`` in a loop) and the probe.

    Raises:
        BringupError: the options ask for another graph, or the graph cannot start.
    """
    if args.nodes:
        raise BringupError(f'bench perception runs {", ".join(PERCEPTION_NODES)}; --nodes does '
                           'not apply')
    args.sim = False  # launch_arguments() reads the --sim flag, which this command has not
    options = options_from_arguments(launch_arguments(args))
    if options.use_sim or options.camera != 'own':
        raise BringupError('bench perception needs use_sim:=false and camera:=own, got '
                           f'use_sim:={str(options.use_sim).lower()} camera:={options.camera}')
    args.nodes = ','.join(PERCEPTION_NODES)
    nodes = graph_from_args(args)
    camera = nodes[0]
    camera = replace(camera, parameters=(*camera.parameter_files, {
        **camera.overrides, 'playback_file': str(recording), 'playback_loop': True,
        'playback_realtime': True}))
    probe = NodeSpec(PACKAGE, 'latency_probe_node', 'latency_probe_node', camera.namespace,
                     parameters=({'warmup': args.warmup, 'duration': args.seconds,
                                  'output_file': str(report)},),
                     additional_env=camera.additional_env, required=False)
    return (camera, *nodes[1:], probe)


def format_report(report: dict) -> str:
    """The figures as a table."""
    lines = [f'{"stage":<16}{"n":>6}{"p50 ms":>9}{"p99 ms":>9}{"mean ms":>9}']
    for stage in LATENCY_STAGES:
        figures = report['latency'][stage]
        values = [figures[key] for key in ('p50_ms', 'p99_ms', 'mean_ms')]
        lines.append(f'{stage:<16}{figures["n"]:>6}' + ''.join(
            f'{value:>9.1f}' if value is not None else f'{"-":>9}' for value in values))
    lines.append('rates: ' + ', '.join(f'{RATE_NAMES.get(topic, topic)} {hz:.1f} Hz'
                                       for topic, hz in report['rate_hz'].items()))
    detector = (report.get('detector_report') or {}).get('latency_ms') or {}
    if detector:
        lines.append('detector_node, its own timing p50/p99 ms: ' + ', '.join(
            f'{stage} {s["p50"]:.1f}/{s["p99"]:.1f}' for stage, s in detector.items()))
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the graph for the warm-up and the measurement; print and save the figures."""
    from litedet_ros.bringup.runner import Bringup, node_commands  # noqa: PLC0415

    out = Path(args.out)
    report_file = (out / 'latency.json').resolve()
    try:
        if args.seconds <= 0 or args.warmup < 0:
            raise BringupError('need --seconds > 0 and --warmup >= 0')
        recording = _recording(args, out)
        commands = node_commands(perception_graph(args, recording, report_file))
    except BringupError as error:
        print(f'litedet-ros bench perception: {error}', file=sys.stderr)
        return 2
    report_file.unlink(missing_ok=True)
    bringup = Bringup(commands, log_dir=out / 'logs')
    status = bringup.run(
        until=lambda: bringup.processes['latency_probe_node'].poll() is not None)
    if not report_file.is_file():
        print(f'no figures (bringup exit {status}); node logs in {out / "logs"}',
              file=sys.stderr)
        return 1
    report = json.loads(report_file.read_text())
    report['protocol'] = {'recording': str(recording), 'warmup_s': args.warmup,
                          'nodes': list(PERCEPTION_NODES)}
    print(format_report(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + '\n')
    return status
