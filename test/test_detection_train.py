"""A few training steps on tiny synthetic scenes lower the loss; checkpoints and bad input."""

import argparse
import json
import shutil

from detection_synthetic import LABELS, write_dataset
import pytest
import torch

from litedet_ros.detection import train_cli
from litedet_ros.detection.backends import ModelLoadError
from litedet_ros.detection.data import DatasetError, TrainingSet, collate, load_dataset
from litedet_ros.detection.model import ssdlite320_mobilenet_v2
from litedet_ros.detection.train import (
    TrainConfig,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    train,
)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('synthetic'), num_images=8, seed=0)


def _loss(model, dataset):
    images, targets = collate([TrainingSet(load_dataset(dataset), augment='none')[i]
                               for i in range(8)])
    model.train()
    with torch.no_grad():
        losses = model(images, targets)
    return float(losses['bbox_regression'] + losses['classification'])


def test_training_lowers_the_loss(dataset, tmp_path):
    config = TrainConfig(epochs=4, batch_size=4, lr=3e-3, warmup_steps=0, seed=3, workers=0,
                         augment='none')
    history = train([dataset], tmp_path, config, progress=False)
    assert [h['epoch'] for h in history] == [1, 2, 3, 4] and history[-1]['step'] == 8
    seed_everything(config.seed)  # the same initial weights train() started from
    before = _loss(ssdlite320_mobilenet_v2(len(LABELS) + 1), dataset)
    model, labels, checkpoint = load_checkpoint(tmp_path / 'last.pt')
    after = _loss(model, dataset)
    assert labels == LABELS and checkpoint['epoch'] == 4
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / 'best.pt').is_file() and (tmp_path / 'curves.png').stat().st_size > 0
    records = [json.loads(line) for line in (tmp_path / 'history.jsonl').read_text().splitlines()]
    assert len(records) == 4 and all(r['loss'] > 0 for r in records)


def test_training_pools_directories_of_the_same_classes(dataset, tmp_path):
    config = TrainConfig(epochs=1, batch_size=8, max_steps=1, val_images=0, workers=0)
    train([dataset, dataset], tmp_path / 'pooled', config, progress=False)
    assert json.loads((tmp_path / 'pooled' / 'config.json').read_text())['train_images'] == 16
    renamed = tmp_path / 'renamed'
    shutil.copytree(dataset, renamed)
    coco = json.loads((renamed / 'annotations.json').read_text())
    coco['categories'][0]['name'] = 'other'
    (renamed / 'annotations.json').write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match='differ'):
        train([dataset, renamed], tmp_path / 'mixed', config, progress=False)
    assert not (tmp_path / 'mixed' / 'last.pt').exists()


def test_augmented_samples_keep_valid_boxes(dataset):
    seed_everything(0)
    data = TrainingSet(load_dataset(dataset), augment='full')
    for i in range(len(data)):
        image, target = data[i]
        assert image.shape == (3, 320, 320) and 0 <= image.min() and image.max() <= 1
        boxes = target['boxes']
        assert len(boxes) == len(target['labels'])
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert ((boxes >= 0) & (boxes <= 320)).all()


def test_cli_validation_and_bad_files(dataset, tmp_path):
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    with pytest.raises(ValueError):
        train_cli.run(parser.parse_args(['--data', str(dataset), '--out', str(tmp_path),
                                         '--epochs', '0']))
    with pytest.raises(DatasetError):
        load_dataset(tmp_path)
    with pytest.raises(DatasetError, match='differ'):
        load_dataset(dataset, labels=('other',) * 3)
    bad = tmp_path / 'bad.pt'
    torch.save({'architecture': 'resnet'}, bad)
    with pytest.raises(ModelLoadError):
        load_checkpoint(bad)
    other_classes = tmp_path / 'other.pt'
    save_checkpoint(other_classes, ssdlite320_mobilenet_v2(3), ('a', 'b'), 1.0)
    with pytest.raises(ModelLoadError, match='classes'):
        train([dataset], tmp_path / 'run', TrainConfig(workers=0), init=other_classes,
              progress=False)
