"""``litedet-ros detector export|quantize|eval|checkpoint``: deployment tools of the detector."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from litedet_ros.detection.backends import BACKENDS
from litedet_ros.detection.postprocess import PostprocessConfig, single_threaded_decoding
from litedet_ros.detection.quantize import CALIBRATION_METHODS

FP32_NAME = 'ssdlite320_mnv2_fp32.onnx'
INT8_NAMES = {'sym': 'ssdlite320_mnv2_int8_sym.onnx', 'asym': 'ssdlite320_mnv2_int8_asym.onnx'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export``, ``quantize``, ``eval`` and ``checkpoint`` verbs."""
    verbs = parser.add_subparsers(dest='verb', required=True, metavar='VERB')
    export = verbs.add_parser('export', help='checkpoint -> FP32 ONNX + anchors + labels')
    export.add_argument('--checkpoint', required=True, help='.pt written by litedet-ros train')
    export.add_argument('--out', default=f'models/{FP32_NAME}', help='output ONNX file')

    quantize = verbs.add_parser('quantize',
                                help='FP32 ONNX -> INT8 Q/DQ ONNX (static, per-channel)')
    quantize.add_argument('--model', default=f'models/{FP32_NAME}', help='FP32 ONNX file')
    quantize.add_argument('--calib', required=True,
                          help='calibration images: a held-in (training) dataset directory')
    quantize.add_argument('--images', type=int, default=300, help='calibration images (>= 200)')
    quantize.add_argument('--variant', choices=('sym', 'asym', 'both'), default='both',
                          help='sym: S8S8, zero points 0 (TensorRT); asym: U8S8 (ORT CPU)')
    quantize.add_argument('--method', choices=CALIBRATION_METHODS, default='minmax',
                          help='activation range calibration')
    quantize.add_argument('--out-dir', help='output directory (default: beside --model)')

    evaluate = verbs.add_parser('eval', help='COCO mAP, precision/recall and PR curves')
    evaluate.add_argument('--model', default=f'models/{INT8_NAMES["asym"]}',
                          help='ONNX file (or .pt checkpoint with --backend torch)')
    evaluate.add_argument('--backend', choices=BACKENDS, default='onnxruntime')
    evaluate.add_argument('--data', required=True, help='held-out dataset directory')
    evaluate.add_argument('--limit', type=int, help='evaluate only the first N images')
    evaluate.add_argument('--threshold', type=float, default=0.5,
                          help='operating score threshold for precision/recall')
    evaluate.add_argument('--threads', type=int, default=2)
    evaluate.add_argument('--plot', help='write the PR curves to this PNG')
    evaluate.add_argument('--json', help='write the metrics to this JSON file')

    checkpoint = verbs.add_parser(
        'checkpoint', help='FP32 ONNX -> trainable .pt (batch norms restored), e.g. to prune '
                           'or distil the shipped model')
    checkpoint.add_argument('--model', default=f'models/{FP32_NAME}',
                            help='FP32 ONNX file written by export (labels.txt beside it)')
    checkpoint.add_argument('--calib', required=True,
                            help='images for the batch-norm statistics: a training dataset '
                                 'directory')
    checkpoint.add_argument('--images', type=int, default=160,
                            help='images used for the statistics (>= 2)')
    checkpoint.add_argument('--width-mult', type=float, default=1.0,
                            help='MobileNetV2 width of the exported model')
    checkpoint.add_argument('--out', required=True, help='output .pt file')


def _export(args: argparse.Namespace) -> int:
    from litedet_ros.detection.export import export_onnx
    from litedet_ros.detection.train import load_checkpoint

    model, labels, _ = load_checkpoint(args.checkpoint)
    path = export_onnx(model, args.out, labels)
    print(f'wrote {path} ({path.stat().st_size / 1e6:.2f} MB) with anchors and labels beside it')
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from litedet_ros.detection.data import load_dataset
    from litedet_ros.detection.detector import load_labels
    from litedet_ros.detection.preprocess import normalize
    from litedet_ros.detection.quantize import quantize_int8

    if args.images < 1:
        raise ValueError(f'--images must be >= 1, got {args.images}')
    model = Path(args.model)
    out_dir = Path(args.out_dir) if args.out_dir else model.parent
    data = load_dataset(args.calib, limit=args.images,
                        labels=load_labels(model.parent / 'labels.txt'))
    variants = ('sym', 'asym') if args.variant == 'both' else (args.variant,)
    for variant in variants:
        path = quantize_int8(model, out_dir / INT8_NAMES[variant],
                             (normalize(image) for image in data.images), variant,
                             args.method)
        print(f'wrote {path} ({path.stat().st_size / 1e6:.2f} MB), '
              f'calibrated ({args.method}) on {len(data)} images of {args.calib}')
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from litedet_ros.detection.backends import create_backend
    from litedet_ros.detection.data import load_dataset
    from litedet_ros.detection.detector import load_anchors, load_labels
    from litedet_ros.detection.evaluate import coco_evaluate, plot_pr_curves, predict

    model_dir = Path(args.model).parent
    labels = load_labels(model_dir / 'labels.txt')
    backend = create_backend(args.backend, args.model, args.threads)
    if args.backend != 'torch':
        single_threaded_decoding()
    data = load_dataset(args.data, limit=args.limit, labels=labels)
    result = coco_evaluate(data, predict(backend, data, load_anchors(model_dir / 'anchors.npy')),
                           PostprocessConfig(score_threshold=args.threshold).score_threshold)
    metrics = {'model': str(args.model), 'backend': args.backend, 'data': str(args.data),
               'images': result.num_images, 'map': result.map, 'map50': result.map50,
               'threshold': result.threshold, 'precision': result.precision,
               'recall': result.recall,
               'ap50_per_class': dict(zip(labels, result.ap50_per_class.round(4).tolist()))}
    print(json.dumps(metrics, indent=2))
    if args.plot:
        plot_pr_curves(result, labels, args.plot, title=f'{Path(args.model).name}: '
                       f'mAP50={result.map50:.3f} mAP={result.map:.3f}')
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from litedet_ros.detection.backends import OnnxRuntimeBackend
    from litedet_ros.detection.data import load_dataset
    from litedet_ros.detection.detector import load_labels
    from litedet_ros.detection.model import RawSSD
    from litedet_ros.detection.preprocess import normalize
    from litedet_ros.detection.train import save_checkpoint
    from litedet_ros.detection.unfold import model_from_onnx

    model_path = Path(args.model)
    data = load_dataset(args.calib, limit=args.images,
                        labels=load_labels(model_path.parent / 'labels.txt'))
    images = np.stack([normalize(image) for image in data.images])
    model, labels = model_from_onnx(model_path, images, args.width_mult)
    check = images[:4]
    expected = OnnxRuntimeBackend(model_path).infer(check)
    with torch.no_grad():
        rebuilt = [output.numpy() for output in RawSSD(model)(torch.from_numpy(check))]
    error = max(float(np.abs(a - b).max()) for a, b in zip(rebuilt, expected))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(Path(args.out), model, labels, args.width_mult,
                    source=f'rebuilt from {model_path}')
    print(f'wrote {args.out}: batch norms from {len(images)} images of {args.calib}; '
          f'max |torch - ONNX| on 4 of them: {error:.2e}')
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen verb; return the exit code."""
    return {'export': _export, 'quantize': _quantize, 'eval': _evaluate,
            'checkpoint': _checkpoint}[args.verb](args)
