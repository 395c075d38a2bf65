"""Synthetic detection datasets from the simulated workcell, in COCO format.

Layout of a dataset directory::

    DIR/annotations.json   COCO: images, annotations, categories (id 1..K = CLASS_NAMES order)
    DIR/images/000000.jpg  colour images, 640x480 (JPEG quality 95)
    DIR/depth/000000.png   optional aligned depth, uint16 mm (0 = invalid)

Seeds: a dataset made with ``--seed S`` renders ``views_per_scene`` views of each of the scene
seeds ``S, S + 1, ...`` in turn, skipping (and counting) a scene whose physics diverges while it
settles; each image records its ``scene_seed`` and ``view``. The splits use disjoint
scene-seed ranges: train ``[0, 100000)``, val ``[100000, 200000)``, test ``[200000, 300000)``
(``SPLIT_SEEDS``), so no scene appears in two splits as long as each split has fewer than
100000 scenes.

Occlusion cut-off: an object is annotated when at least ``MIN_VISIBILITY`` (30 %) of its
unoccluded silhouette and ``MIN_PIXELS`` (64) pixels are visible. Objects that are visible but
below the cut-off are written with ``iscrowd = 1``: COCO evaluation then ignores detections on
them instead of counting them as false positives; training loaders should skip them.
Every annotation carries ``visibility`` (visible fraction of the silhouette) and a run-length
``segmentation`` of its visible pixels; boxes are ``[x, y, w, h]`` of the visible pixels.

Domain randomization per scene: object count 1..25 (clutter level), 0-3 unlabelled distractors
(procedural meshes), per-instance scale and colour; per view: key light position, colour and
intensity, ambient level, table / bin / tote colours and textures, object colour jitter, camera
pose jitter (+-2 cm, +-3 degrees), sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import time

import cv2
import mujoco
import numpy as np
from pycocotools import mask as mask_utils
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from litedet_ros.sim.camera import visible_boxes
from litedet_ros.sim.objects import CLASS_NAMES, OBJECT_GEOM_GROUP
from litedet_ros.sim.workcell import (
    MAX_OBJECTS,
    MAX_SEED,
    PhysicsDivergedError,
    SceneError,
    Workcell,
    WorkcellConfig,
)

SPLIT_SEEDS = {'train': 0, 'val': 100_000, 'test': 200_000}
MIN_VISIBILITY = 0.3
MIN_PIXELS = 64
AMODAL_SCALE = 4  # silhouettes for the visibility fraction are rendered at 1/4 resolution
SOLO_GROUP = 4  # geom group used to render one object alone
STATIC_BODIES = ('table', 'bin', 'place_zone')


@dataclass(frozen=True)
class DatasetStats:
    """Summary of a generated dataset.

    Attributes:
        images: images written.
        annotations: annotations written (including ``iscrowd`` ones).
        ignored: annotations below the occlusion cut-off (``iscrowd = 1``).
        seconds: wall time, s.
        diverged_scenes: scene seeds skipped because their physics diverged.
    """

    images: int
    annotations: int
    ignored: int
    seconds: float
    diverged_scenes: tuple[int, ...] = ()

    @property
    def images_per_second(self) -> float:
        """Throughput, images/s."""
        return self.images / self.seconds if self.seconds > 0 else 0.0


def categories() -> list[dict]:
    """COCO categories: id 1..K in ``CLASS_NAMES`` order."""
    return [{'id': k + 1, 'name': name, 'supercategory': 'part'}
            for k, name in enumerate(CLASS_NAMES)]


class DomainRandomizer:
    """Per-view appearance randomization of a workcell scene (changes the model in place)."""

    def __init__(self, cell: Workcell) -> None:
        """Remember the nominal appearance of the current scene."""
        model = cell.model
        self.cell = cell
        self.geom_rgba = model.geom_rgba.copy()
        self.light_pos = model.light_pos.copy()
        self.light_diffuse = model.light_diffuse.copy()
        self.cam_pos = model.cam_pos[cell.camera_id].copy()
        self.cam_quat = model.cam_quat[cell.camera_id].copy()
        body_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in STATIC_BODIES]
        visual = model.geom_group == 1
        self.static_geoms = [np.flatnonzero(visual & (model.geom_bodyid == b)) for b in body_ids]
        self.object_geoms = np.flatnonzero(model.geom_group == OBJECT_GEOM_GROUP)
        self.materials = np.flatnonzero([model.material(i).name.startswith('dr_')
                                         for i in range(model.nmat)])

    def apply(self, rng: np.random.Generator) -> None:
        """Draw and apply one random appearance."""
        model = self.cell.model
        model.geom_rgba[:] = self.geom_rgba
        jitter = rng.normal(0.0, 0.05, size=(self.object_geoms.size, 3))
        model.geom_rgba[self.object_geoms, :3] = np.clip(
            self.geom_rgba[self.object_geoms, :3] + jitter, 0.0, 1.0)
        model.geom_matid[self.object_geoms] = -1
        for geoms in self.static_geoms:
            model.geom_rgba[geoms, :3] = rng.uniform(0.1, 0.9, size=3)
            textured = self.materials.size and rng.random() < 0.5
            model.geom_matid[geoms] = rng.choice(self.materials) if textured else -1
        model.light_pos[:] = self.light_pos + rng.uniform(-0.4, 0.4, size=self.light_pos.shape)
        model.light_diffuse[:] = self.light_diffuse * rng.uniform(0.4, 1.3)
        model.light_diffuse[:] *= rng.uniform(0.85, 1.0, size=3)
        model.vis.headlight.ambient[:] = rng.uniform(0.1, 0.45)
        model.vis.headlight.diffuse[:] = rng.uniform(0.2, 0.5)
        camera = self.cell.camera_id
        model.cam_pos[camera] = self.cam_pos + rng.uniform(-0.02, 0.02, size=3)
        turn = Rotation.from_rotvec(rng.uniform(-1, 1, size=3) * np.deg2rad(3.0))
        nominal = Rotation.from_quat(self.cam_quat, scalar_first=True)
        model.cam_quat[camera] = (nominal * turn).as_quat(scalar_first=True)


def silhouette_pixels(cell: Workcell, renderer: mujoco.Renderer) -> np.ndarray:
    """Unoccluded silhouette area of every object, in full-resolution pixels.

    Each object is rendered alone (its geoms moved to ``SOLO_GROUP``, the only group shown) by
    a renderer of ``1 / AMODAL_SCALE`` resolution.

    Returns:
        ``float64[K]`` estimated silhouette pixel counts, in ``cell.objects`` order.
    """
    model = cell.model
    option = mujoco.MjvOption()
    option.geomgroup[:] = 0
    option.geomgroup[SOLO_GROUP] = 1
    renderer.enable_segmentation_rendering()
    areas = np.zeros(len(cell.objects))
    body_of_geom = model.geom_bodyid
    for k, instance in enumerate(cell.objects):
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, instance.body_name)
        geoms = np.flatnonzero(body_of_geom == body)
        model.geom_group[geoms] = SOLO_GROUP
        renderer.update_scene(cell.data, cell.camera_id, option)
        areas[k] = (renderer.render()[..., 0] >= 0).sum() * AMODAL_SCALE ** 2
        model.geom_group[geoms] = OBJECT_GEOM_GROUP
    return areas


def generate_dataset(out_dir: str | Path, images: int, seed: int, views_per_scene: int = 8,
                     save_depth: bool = False, progress: bool = True,
                     config: WorkcellConfig | None = None) -> DatasetStats:
    """Render a randomized COCO dataset.

    Args:
        out_dir: output directory (created; an existing annotations.json is overwritten).
        images: number of images, >= 1.
        seed: first scene seed; scenes use ``seed, seed + 1, ...`` (``ceil(images /
            views_per_scene)`` of them plus any skipped because their physics diverged).
        views_per_scene: randomized views rendered from each settled scene.
        save_depth: also write aligned depth (uint16 mm PNG) under ``depth/``.
        progress: show a progress bar.
        config: workcell configuration (default: the standard cell).

    Returns:
        Counts and wall time.

    Raises:
        SceneError: images < 1, views_per_scene < 1, or seeds outside [0, 2**32), or every
            one of 10 scenes in a row diverged.
    """
    scenes = -(-images // views_per_scene) if images >= 1 and views_per_scene >= 1 else 0
    if scenes == 0:
        raise SceneError(f'need images >= 1 and views_per_scene >= 1, got {images}, '
                         f'{views_per_scene}')
    if not 0 <= seed or seed + scenes - 1 > MAX_SEED:
        raise SceneError(f'scene seeds {seed}..{seed + scenes - 1} outside [0, {MAX_SEED}]')
    out = Path(out_dir)
    (out / 'images').mkdir(parents=True, exist_ok=True)
    if save_depth:
        (out / 'depth').mkdir(exist_ok=True)
    config = config or WorkcellConfig()
    intr = config.intrinsics
    coco = {'info': {'description': 'litedet_ros simulated bin-picking dataset',
                     'seed': seed, 'views_per_scene': views_per_scene,
                     'min_visibility': MIN_VISIBILITY, 'min_pixels': MIN_PIXELS},
            'images': [], 'annotations': [], 'categories': categories()}
    ignored = 0
    diverged: list[int] = []
    start = time.perf_counter()
    cell = None
    small = None
    bar = tqdm(total=images, unit='img', disable=not progress)
    scene_seed = seed - 1
    while len(coco['images']) < images:
        scene_seed += 1
        if scene_seed > MAX_SEED or (len(diverged) >= 10 and
                                     diverged[-10] == scene_seed - 10):
            raise SceneError(f'no stable scene up to seed {scene_seed - 1} '
                             f'({len(diverged)} diverged)')
        rng = np.random.default_rng([scene_seed, 1])
        count = int(rng.integers(1, MAX_OBJECTS + 1))
        distractors = int(rng.integers(0, 4))
        try:
            if cell is None:
                cell = Workcell(config, scene_seed, count, distractors)
            else:
                cell.reset(scene_seed, count, distractors)
        except PhysicsDivergedError:
            diverged.append(scene_seed)
            continue
        if small is not None:
            small.close()
        small = mujoco.Renderer(cell.model, intr.height // AMODAL_SCALE,
                                intr.width // AMODAL_SCALE)
        randomizer = DomainRandomizer(cell)
        for view in range(min(views_per_scene, images - len(coco['images']))):
            image_id = len(coco['images'])
            randomizer.apply(rng)
            labels = cell.render_labels()
            boxes, visible = visible_boxes(labels, len(cell.objects))
            silhouettes = silhouette_pixels(cell, small)
            rgb = _sensor_noise(cell.render_rgb(), rng)
            name = f'{image_id:06d}.jpg'
            cv2.imwrite(str(out / 'images' / name), rgb[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            if save_depth:
                depth_mm = np.round(cell.render_depth() * 1000).astype(np.uint16)
                cv2.imwrite(str(out / 'depth' / f'{image_id:06d}.png'), depth_mm)
            coco['images'].append({'id': image_id, 'file_name': f'images/{name}',
                                   'width': intr.width, 'height': intr.height,
                                   'scene_seed': scene_seed, 'view': view,
                                   'num_objects': count})
            for k, instance in enumerate(cell.objects):
                pixels = int(visible[k])
                if instance.class_id < 0 or pixels == 0:
                    continue
                visibility = min(1.0, pixels / max(silhouettes[k], 1.0))
                crowd = int(visibility < MIN_VISIBILITY or pixels < MIN_PIXELS)
                ignored += crowd
                x0, y0, x1, y1 = boxes[k]
                rle = mask_utils.encode(np.asfortranarray(labels == k + 1, dtype=np.uint8))
                rle['counts'] = rle['counts'].decode('ascii')
                coco['annotations'].append({
                    'id': len(coco['annotations']) + 1, 'image_id': image_id,
                    'category_id': instance.class_id + 1, 'bbox': [x0, y0, x1 - x0, y1 - y0],
                    'area': pixels, 'iscrowd': crowd, 'visibility': round(visibility, 4),
                    'segmentation': rle, 'instance_id': instance.id})
            bar.update(1)
    bar.close()
    if small is not None:
        small.close()
    cell.close()
    (out / 'annotations.json').write_text(json.dumps(coco))
    return DatasetStats(len(coco['images']), len(coco['annotations']), ignored,
                        time.perf_counter() - start, tuple(diverged))


def _sensor_noise(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Shot/read noise of a colour sensor, a random strength per image.
    noise = rng.standard_normal(size=(*rgb.shape[:2], 1), dtype=np.float32)
    noise *= rng.uniform(0.5, 4.0)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)
