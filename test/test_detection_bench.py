"""``litedet-ros bench detector`` measures every variant in one run and writes the JSON schema."""

from __future__ import annotations

import argparse
import json

from detection_synthetic import LABELS, varied_model, write_dataset
import pytest

from litedet_ros.detection import bench
from litedet_ros.detection.cli import FP32_NAME, INT8_NAMES
from litedet_ros.detection.data import load_dataset
from litedet_ros.detection.export import export_onnx
from litedet_ros.detection.preprocess import normalize
from litedet_ros.detection.prune import count_parameters
from litedet_ros.detection.quantize import quantize_int8

pytest.importorskip('rclpy', reason='rclpy (ROS 2 Jazzy wheels) is not installed')


def test_bench_json(tmp_path, capsys):
    data = write_dataset(tmp_path / 'test', num_images=6, seed=5)
    models = tmp_path / 'models'
    fp32 = export_onnx(varied_model(), models / FP32_NAME, LABELS)
    calibration = [normalize(image) for image in load_dataset(data, labels=LABELS).images]
    quantize_int8(fp32, models / INT8_NAMES['asym'], calibration, 'asym')
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / 'bench.json'
    assert bench.run(parser.parse_args([
        '--models', str(models), '--data', str(data), '--rounds', '5', '--e2e-frames', '3',
        '--variant', f'copy={fp32}', '--json', str(out)])) == 0
    report = json.loads(out.read_text())
    assert [row['variant'] for row in report['variants']] == ['fp32', 'int8_asym', 'copy']
    for row in report['variants']:
        assert set(row) == {'variant', 'map50', 'map', 'size_mb', 'params', 'model_p50_ms',
                            'model_p99_ms', 'e2e_p50_ms', 'e2e_p99_ms', 'fps'}
        # batch norms folded into the convolutions: 1 bias instead of 2 affine values each
        assert 0.98 < row['params'] / count_parameters(varied_model()) <= 1.0
        assert 0.0 <= row['map'] <= row['map50'] <= 1.0
        assert 0 < row['model_p50_ms'] <= row['model_p99_ms']
        assert 0 < row['e2e_p50_ms'] <= row['e2e_p99_ms'] and row['fps'] > 0
    assert report['variants'][1]['size_mb'] < 0.4 * report['variants'][0]['size_mb']
    assert report['machine']['threads'] == 2
    assert 'int8_asym' in capsys.readouterr().out
    with pytest.raises(ValueError, match='NAME=EXISTING_ONNX'):
        bench.variant_paths(models, ['broken'])
