"""``litedet-ros bench detector``: accuracy, size and latency of every model variant in one run.

For each variant (an ONNX file run with ONNX Runtime on ``--threads`` threads):

* ``map50``, ``map``: COCO mAP@.5 and mAP@[.5:.95] on the held-out split (fractions 0-1);
* ``size_mb``: file size, 1e6 bytes;
* ``params``: weights and biases in the exported graph, batch norms folded
  (:func:`parameter_count`);
* ``model_p50_ms``, ``model_p99_ms``: batch-1 backend call on preprocessed test images;
* ``e2e_p50_ms``, ``e2e_p99_ms``: a 640x480 ``sensor_msgs/Image`` published to a real
  ``detector_node`` until its ``DetectionArray`` arrives at a subscriber, one frame in flight;
* ``fps``: 1 / mean end-to-end latency (sequential frames).

Latency rounds interleave the variants (one call of each in turn), so a load change on the shared
machine hits every variant alike; the sessions do not spin-wait between calls (idle spinning
threads of the other variants' sessions would take the cores from the one being timed).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import time

import cv2
import numpy as np

from litedet_ros.detection.backends import OnnxRuntimeBackend
from litedet_ros.detection.cli import FP32_NAME, INT8_NAMES
from litedet_ros.detection.data import DetectionDataset, image_path, load_dataset
from litedet_ros.detection.detector import load_anchors, load_labels
from litedet_ros.detection.evaluate import coco_evaluate, predict
from litedet_ros.detection.postprocess import single_threaded_decoding
from litedet_ros.detection.preprocess import normalize

DEFAULT_VARIANTS = {'fp32': FP32_NAME, 'int8_sym': INT8_NAMES['sym'],
                    'int8_asym': INT8_NAMES['asym']}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options."""
    parser.add_argument('--models', default='models',
                        help='directory of the shipped variants, labels.txt and anchors.npy')
    parser.add_argument('--variant', action='append', default=[], metavar='NAME=ONNX',
                        help='extra variant (e.g. pruned=models/pruned.onnx); repeatable')
    parser.add_argument('--data', required=True,
                        help='held-out COCO split (litedet-ros sim dataset --split test) for mAP '
                             'and latency inputs')
    parser.add_argument('--limit', type=int, help='use only the first N images for mAP')
    parser.add_argument('--rounds', type=int, default=300,
                        help='model-latency calls per variant')
    parser.add_argument('--e2e-frames', type=int, default=200,
                        help='frames per variant through detector_node (0: skip)')
    parser.add_argument('--threads', type=int, default=2, help='inference threads')
    parser.add_argument('--json', help='write the results to this JSON file')


def parameter_count(path: Path) -> int:
    """Elements of the ONNX graph's initializers, less INT8 scales and zero points.

    The same count for an FP32 graph and its Q/DQ INT8 copy (int8 weights, int32 biases).
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    quantization = {name for node in graph.node
                    if node.op_type in ('QuantizeLinear', 'DequantizeLinear')
                    for name in node.input[1:]}
    return sum(int(np.prod(init.dims)) for init in graph.initializer
               if init.name not in quantization)


def variant_paths(models: Path, extra: list[str]) -> dict[str, Path]:
    """Shipped variants found in ``models`` plus ``NAME=PATH`` extras."""
    paths = {name: models / file for name, file in DEFAULT_VARIANTS.items()
             if (models / file).is_file()}
    for item in extra:
        name, sep, path = item.partition('=')
        if not sep or not name or not Path(path).is_file():
            raise ValueError(f'--variant must be NAME=EXISTING_ONNX, got {item!r}')
        paths[name] = Path(path)
    if not paths:
        raise ValueError(f'no model variants found in {models}')
    return paths


def model_latency(backends: dict[str, OnnxRuntimeBackend], inputs: np.ndarray,
                  rounds: int) -> dict[str, np.ndarray]:
    """Time ``rounds`` batch-1 calls of each backend, interleaved; return ms per variant."""
    times = {name: np.empty(rounds) for name in backends}
    for backend in backends.values():  # warm-up: allocations, kernel selection
        for i in range(10):
            backend.infer(inputs[i % len(inputs)][None])
    for r in range(rounds):
        batch = inputs[r % len(inputs)][None]
        for name, backend in backends.items():
            start = time.perf_counter()
            backend.infer(batch)
            times[name][r] = 1e3 * (time.perf_counter() - start)
    return times


def machine_info(threads: int, load_at_start: float) -> dict:
    """Where the figures were measured."""
    import onnxruntime

    cpu = platform.processor()
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in
                   Path('/proc/cpuinfo').read_text().splitlines()
                   if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'threads': threads,
            'load_average_1min_start': load_at_start,
            'load_average_1min_end': os.getloadavg()[0], 'python': platform.python_version(),
            'onnxruntime': onnxruntime.__version__, 'platform': platform.platform()}


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, optionally save JSON; return 0."""
    load_at_start = os.getloadavg()[0]  # other jobs on a shared machine skew latencies
    models = Path(args.models)
    paths = variant_paths(models, args.variant)
    labels = load_labels(models / 'labels.txt')
    anchors = load_anchors(models / 'anchors.npy')
    data = load_dataset(args.data, limit=args.limit, labels=labels)
    single_threaded_decoding()
    backends = {name: OnnxRuntimeBackend(path, args.threads, spinning=False)
                for name, path in paths.items()}
    rows = {name: {'variant': name, 'size_mb': path.stat().st_size / 1e6,
                   'params': parameter_count(path)} for name, path in paths.items()}
    for name, backend in backends.items():
        result = coco_evaluate(data, predict(backend, data, anchors))
        rows[name].update(map50=result.map50, map=result.map)
    inputs = np.stack([normalize(image) for image in data.images[:50]])
    for name, ms in model_latency(backends, inputs, args.rounds).items():
        rows[name].update(model_p50_ms=float(np.percentile(ms, 50)),
                          model_p99_ms=float(np.percentile(ms, 99)))
    if args.e2e_frames:
        # The node side lives with the nodes; the core never imports ROS at module level.
        from litedet_ros.detector_node import measure_end_to_end

        frames = _test_frames(data, 20)
        e2e = measure_end_to_end(paths, frames, args.e2e_frames, args.threads)
        for name, ms in e2e.items():
            rows[name].update(e2e_p50_ms=float(np.percentile(ms, 50)),
                              e2e_p99_ms=float(np.percentile(ms, 99)),
                              fps=float(1e3 / np.mean(ms)))
    report = {'variants': list(rows.values()),
              'machine': machine_info(args.threads, load_at_start),
              'data': {'split': str(args.data), 'images': len(data)},
              'rounds': args.rounds, 'e2e_frames': args.e2e_frames}
    print(format_table(report['variants']))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _test_frames(data: DetectionDataset, count: int) -> list[np.ndarray]:
    """Original-resolution RGB test images (the dataset keeps only resized copies)."""
    coco = json.loads(data.annotations_path.read_text())
    names = {info['id']: info['file_name'] for info in coco['images']}
    return [cv2.cvtColor(cv2.imread(str(image_path(data.root, names[int(i)]))),
                         cv2.COLOR_BGR2RGB) for i in data.image_ids[:count]]


def format_table(rows: list[dict]) -> str:
    """One line per variant."""
    columns = ('variant', 'map50', 'map', 'size_mb', 'params', 'model_p50_ms', 'model_p99_ms',
               'e2e_p50_ms', 'e2e_p99_ms', 'fps')
    lines = [' '.join(f'{c:>12}' for c in columns)]
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, '-')
            cells.append(f'{value:>12.3f}' if isinstance(value, float) else f'{value:>12}')
        lines.append(' '.join(cells))
    return '\n'.join(lines)
