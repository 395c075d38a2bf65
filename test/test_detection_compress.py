"""Compression toolkit: pruning keeps the contract and exports, distillation trains, bad input."""

import argparse
import json

from detection_synthetic import LABELS, varied_model, write_dataset
import numpy as np
import pytest
import torch

from litedet_ros.detection import compress_cli
from litedet_ros.detection.backends import ModelLoadError, OnnxRuntimeBackend
from litedet_ros.detection.cli import FP32_NAME, INT8_NAMES
from litedet_ros.detection.data import TrainingSet, collate, load_dataset
from litedet_ros.detection.distill import DistillationLoss, check_compatible, distillation_losses
from litedet_ros.detection.model import RawSSD, model_anchors, ssdlite320_mobilenet_v2
from litedet_ros.detection.preprocess import normalize
from litedet_ros.detection.prune import (
    CompressionError,
    count_parameters,
    prune_model,
    recalibrate_batch_norm,
)
from litedet_ros.detection.train import TrainConfig, load_checkpoint, save_checkpoint, train

NUM_ANCHORS = 3234


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('synthetic'), num_images=8, seed=0)


@pytest.fixture(scope='module')
def base_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('base') / 'base.pt'
    save_checkpoint(path, varied_model(), LABELS, 1.0)
    return path


def _compress(argv):
    parser = argparse.ArgumentParser()
    compress_cli.add_arguments(parser)
    return compress_cli.run(parser.parse_args(argv))


def _common(dataset, out):
    return ['--data', str(dataset), '--val', str(dataset), '--out', str(out), '--workers', '0',
            '--batch-size', '4', '--val-images', '4', '--calib-images', '4', '--no-progress']


@pytest.fixture(scope='module')
def pruned_run(dataset, base_checkpoint, tmp_path_factory):
    """``compress prune`` at sparsity 0.5 with one fine-tuning step, exported and quantized."""
    out = tmp_path_factory.mktemp('pruned')
    assert _compress(['prune', '--checkpoint', str(base_checkpoint), '--sparsity', '0.5',
                      '--max-steps', '1', *_common(dataset, out)]) == 0
    return out / 'sparsity_0.50'


def test_pruned_model_runs_in_onnx_runtime_with_the_same_contract(pruned_run, base_checkpoint,
                                                                  dataset):
    base, _, _ = load_checkpoint(base_checkpoint)
    model, labels, ckpt = load_checkpoint(pruned_run / 'best.pt')
    assert labels == LABELS and ckpt['pruning']['sparsity'] == 0.5
    assert 0 <= ckpt['pruning']['val_before_finetuning']['map50'] <= 1
    assert count_parameters(model) < 0.4 * count_parameters(base)
    np.testing.assert_array_equal(np.load(pruned_run / 'anchors.npy'), model_anchors(base))
    batch = np.stack([normalize(image) for image in load_dataset(dataset).images[4:6]])
    with torch.no_grad():
        expected = [t.numpy() for t in RawSSD(model.eval())(torch.from_numpy(batch))]
    for name in (FP32_NAME, *INT8_NAMES.values()):
        regressions, logits = OnnxRuntimeBackend(pruned_run / name).infer(batch)
        assert regressions.shape == (2, NUM_ANCHORS, 4), name
        assert logits.shape == (2, NUM_ANCHORS, len(LABELS) + 1), name
        correlation = np.corrcoef(logits.ravel(), expected[1].ravel())[0, 1]
        # INT8 of a barely trained net calibrated on 4 images: it only has to follow FP32
        assert correlation > (0.9999 if name == FP32_NAME else 0.5), (name, correlation)
    fp32_size = (pruned_run / FP32_NAME).stat().st_size
    assert (pruned_run / INT8_NAMES['asym']).stat().st_size < 0.45 * fp32_size
    summary = json.loads((pruned_run / 'summary.json').read_text())
    assert {row['variant'] for row in summary['variants']} == {'fp32', 'int8_sym', 'int8_asym'}
    card = (pruned_run / 'MODEL_CARD.md').read_text()
    assert 'litedet-ros compress prune --checkpoint' in card and '--sparsity 0.5' in card


def test_pruned_checkpoint_round_trips(pruned_run, tmp_path):
    model, labels, _ = load_checkpoint(pruned_run / 'pruned.pt')
    path = tmp_path / 'again.pt'
    save_checkpoint(path, model, labels, 1.0)
    again, _, _ = load_checkpoint(path)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    broken = torch.load(pruned_run / 'pruned.pt', weights_only=True)
    key = 'backbone.features.1.1.weight'  # a projection conv: its output no longer fits the next
    broken['state_dict'][key] = broken['state_dict'][key][:-8]
    torch.save(broken, tmp_path / 'broken.pt')
    with pytest.raises(ModelLoadError, match='do not fit'):
        load_checkpoint(tmp_path / 'broken.pt')


def test_pruning_never_touches_the_outputs_or_anchors():
    model = ssdlite320_mobilenet_v2(len(LABELS) + 1)
    anchors = model_anchors(model)
    prune_model(model, 0.7, global_ranking=True)
    with torch.no_grad():
        regressions, logits = RawSSD(model)(torch.zeros(1, 3, 320, 320))
    assert regressions.shape == (1, NUM_ANCHORS, 4)
    assert logits.shape == (1, NUM_ANCHORS, len(LABELS) + 1)
    assert torch.equal(model_anchors(model), anchors)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    images = np.random.default_rng(1).uniform(-1, 1, (3, 3, 320, 320)).astype(np.float32)
    recalibrate_batch_norm(model, images, batch_size=2)
    norm = model.backbone.features[0][0][1]
    assert not model.training and norm.momentum == 0.03 and norm.num_batches_tracked == 1
    assert norm.running_var.min() > 0 and not torch.equal(norm.running_var,
                                                          torch.ones_like(norm.running_var))
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())


def test_distillation_terms():
    torch.manual_seed(0)
    reg, logits = torch.randn(2, 50, 4), torch.randn(2, 50, 4) * 3
    kl, box = distillation_losses(reg, logits, reg, logits, 2.0)
    assert abs(float(kl)) < 1e-5 and float(box) == 0.0
    student_reg = reg.clone().requires_grad_(True)
    student_logits = torch.zeros_like(logits, requires_grad=True)
    kl, box = distillation_losses(student_reg + 0.5, student_logits, reg, logits, 2.0)
    assert float(kl.detach()) > 0 and float(box.detach()) > 0
    (kl + box).backward()
    assert student_logits.grad.abs().sum() > 0 and student_reg.grad.abs().sum() > 0
    background = logits.clone()
    background[..., 0] = 100.0  # the teacher sees no object: no box term
    assert float(distillation_losses(reg + 1, logits, reg, background, 2.0)[1]) == 0.0


def test_distillation_loss_decreases_on_a_tiny_run(dataset, tmp_path):
    teacher = varied_model()
    loss_fn = DistillationLoss(teacher, alpha=1.0, beta=1.0, temperature=2.0)
    config = TrainConfig(epochs=4, batch_size=4, lr=3e-3, warmup_steps=0, seed=1, workers=0,
                         augment='none', width_mult=0.5, val_images=0)
    check_compatible(teacher, ssdlite320_mobilenet_v2(len(LABELS) + 1, 0.5))
    images, targets = collate([TrainingSet(load_dataset(dataset), 'none')[i] for i in range(8)])

    def total(model):
        model.train()
        with torch.no_grad():
            return {k: float(v) for k, v in loss_fn(model, images, targets).items()}

    torch.manual_seed(config.seed)  # the student train() starts from
    before = total(ssdlite320_mobilenet_v2(len(LABELS) + 1, 0.5))
    history = train([dataset], tmp_path, config, progress=False, loss_fn=loss_fn)
    after = total(load_checkpoint(tmp_path / 'last.pt')[0])
    assert all(np.isfinite(h['loss']) and h['kd_cls_loss'] > 0 and h['kd_box_loss'] > 0
               for h in history)
    assert set(before) == {'bbox_regression', 'classification', 'kd_cls', 'kd_box'}
    assert sum(after.values()) < 0.8 * sum(before.values()), (before, after)
    assert after['kd_cls'] < before['kd_cls'], (before, after)


def test_bad_input_is_refused_before_training(dataset, base_checkpoint, tmp_path, capsys):
    for sparsity in ('0', '1', '1.5', '-0.2'):
        out = tmp_path / f'prune{sparsity}'
        assert _compress(['prune', '--checkpoint', str(tmp_path / 'missing.pt'), '--sparsity',
                          '0.3', sparsity, *_common(dataset, out)]) == 2
        assert 'sparsity must be in (0, 1)' in capsys.readouterr().err
        assert not out.exists()
    with pytest.raises(CompressionError):
        prune_model(ssdlite320_mobilenet_v2(3), 1.0)
    other_arch = tmp_path / 'resnet.pt'
    torch.save({'architecture': 'resnet18', 'state_dict': {}}, other_arch)
    other_classes = tmp_path / 'two_classes.pt'
    save_checkpoint(other_classes, ssdlite320_mobilenet_v2(3), ('a', 'b'), 1.0)
    refusals = [
        (['prune', '--checkpoint', str(other_arch), '--sparsity', '0.5'], 'not a ssdlite'),
        (['distill', '--teacher', str(other_arch)], 'not a ssdlite'),
        (['distill', '--teacher', str(other_classes)], 'differ'),
        (['distill', '--teacher', str(base_checkpoint), '--temperature', '0'], 'temperature'),
        (['distill', '--teacher', str(base_checkpoint), '--width-mult', '0'], 'width'),
    ]
    for i, (argv, message) in enumerate(refusals):
        out = tmp_path / f'run{i}'
        assert _compress([*argv, *_common(dataset, out)]) == 2, argv
        assert message in capsys.readouterr().err, argv
        assert not out.exists(), argv
    with pytest.raises(CompressionError, match='classes'):
        check_compatible(varied_model(), ssdlite320_mobilenet_v2(3, 0.5))
