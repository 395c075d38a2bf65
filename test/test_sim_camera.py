"""Simulated D435: depth against known geometry, boxes against projections, seeded scenes."""

from dataclasses import replace

import mujoco
import numpy as np
import pytest
from scipy.spatial import ConvexHull

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.errors import InvalidCameraInfoError
from litedet_ros.sim.camera import D435_COLOR, DepthModel, apply_depth_model, visible_boxes
from litedet_ros.sim.objects import (
    CLASS_NAMES,
    COLLISION_GEOM_GROUP,
    CUP_FLOOR,
    CUP_HEIGHT,
    CUP_INNER_RADIUS,
    CUP_OUTER_RADIUS,
    OBJECT_CLASSES,
    OBJECT_GEOM_GROUP,
    ObjectInstance,
    convex_pieces,
    pybullet_data_dir,
)
from litedet_ros.sim.workcell import SceneError, Workcell, WorkcellConfig

BOX = OBJECT_CLASSES[0]


def _rays(intrinsics: PinholeCamera) -> np.ndarray:
    v, u = np.mgrid[0:intrinsics.height, 0:intrinsics.width]
    return np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy,
                     np.ones(u.shape)], axis=-1)


@pytest.fixture(scope='module')
def box_cell():
    """A cell with one 100 g box resting on the bin floor, rotated 0.4 rad about z."""
    cell = Workcell(WorkcellConfig(), num_objects=0)
    box = ObjectInstance(0, 0, 1.0, (0.8, 0.5, 0.3, 1.0), 0.1, 0.6)
    angle = 0.4
    cell.reset_with([box], [(np.array([0.52, 0.03, 0.04]),
                             np.array([np.cos(angle / 2), 0, 0, np.sin(angle / 2)]))])
    yield cell
    cell.close()


def test_depth_matches_plane(box_cell):
    # The bin floor is the plane z = bin_wall in world; compare on floor pixels far from edges.
    cell = box_cell
    intr = cell.config.intrinsics
    depth = cell.render_depth(ideal=True)
    labels = cell.render_labels()
    pose = cell.camera_pose()
    rays_world = _rays(intr) @ pose[:3, :3].T
    floor = cell.layout['bin_wall']
    expected = (floor - pose[2, 3]) / rays_world[..., 2]  # ray parameter = optical-axis depth
    hit = pose[:2, 3] + rays_world[..., :2] * expected[..., None]
    inner = ((np.abs(hit[..., 0] - cell.layout['bin_x']) < cell.layout['bin_length'] / 2 - 0.03)
             & (np.abs(hit[..., 1] - cell.layout['bin_y']) < cell.layout['bin_width'] / 2 - 0.03)
             & (labels == 0))
    assert inner.sum() > 50_000
    error = np.abs(depth[inner] - expected[inner])
    assert error.max() < 1e-3, error.max()


def test_depth_matches_box(box_cell):
    # Analytic ray / oriented-box intersection (slab method) in the box frame.
    cell = box_cell
    intr = cell.config.intrinsics
    depth = cell.render_depth(ideal=True)
    labels = cell.render_labels()
    camera = cell.camera_pose()
    box = cell.object_states()[0].pose
    box_from_camera = np.linalg.inv(box) @ camera
    origin = box_from_camera[:3, 3]
    directions = _rays(intr) @ box_from_camera[:3, :3].T
    half = np.array(BOX.size) / 2
    with np.errstate(divide='ignore', invalid='ignore'):
        t1 = (-half - origin) / directions
        t2 = (half - origin) / directions
    t_near = np.minimum(t1, t2).max(axis=-1)
    t_far = np.maximum(t1, t2).min(axis=-1)
    inside = (t_near <= t_far) & (t_near > 0)
    # Skip the one-pixel rim where pixel centres graze the outline.
    from scipy import ndimage
    core = ndimage.binary_erosion(inside, iterations=2) & (labels == 1)
    assert core.sum() > 2000
    error = np.abs(depth[core] - t_near[core])
    assert error.max() < 1e-3, error.max()


def test_segmentation_box_matches_projection(box_cell):
    cell = box_cell
    frame = cell.capture(ideal_depth=True)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    corners = corners * np.array(BOX.size) / 2
    world = cell.object_states()[0].pose @ np.c_[corners, np.ones(8)].T
    optical = (np.linalg.inv(cell.camera_pose()) @ world)[:3].T
    uv = cell.config.intrinsics.project(optical)
    # Pixel-centre coordinates -> pixel-edge box, as in Detection.msg.
    projected = np.r_[uv.min(axis=0) + 0.5, uv.max(axis=0) + 0.5]
    assert np.abs(frame.boxes[0] - projected).max() < 1.5, (frame.boxes[0], projected)
    assert frame.visible_pixels[0] == (frame.labels == 1).sum()


def _volume(vertices, faces):
    """Volume enclosed by a closed triangle mesh (divergence theorem)."""
    a, b, c = vertices[faces].transpose(1, 0, 2)
    return abs(np.einsum('ij,ij->', a, np.cross(b, c))) / 6


def test_a_decomposed_mesh_collides_as_it_renders():
    """The duck's file is 5 convex pieces; each is a geom, so its hull is the piece itself."""
    duck = OBJECT_CLASSES[CLASS_NAMES.index('duck')]
    pieces = convex_pieces(pybullet_data_dir() / duck.mesh)
    assert len(pieces) == 5
    for vertices, faces in pieces:
        assert ConvexHull(vertices).volume == pytest.approx(_volume(vertices, faces), rel=0.01)
    cell = Workcell(WorkcellConfig(), num_objects=0)
    instance = ObjectInstance(0, CLASS_NAMES.index('duck'), 1.0, (1, 1, 0, 1), 0.05, 0.8)
    cell.reset_with([instance], [(np.array([0.5, 0.0, 0.05]), np.array([1.0, 0, 0, 0]))])
    body = mujoco.mj_name2id(cell.model, mujoco.mjtObj.mjOBJ_BODY, instance.body_name)
    geoms = np.flatnonzero(cell.model.geom_bodyid == body)
    assert len(geoms) == 5 and (cell.model.geom_type[geoms] == mujoco.mjtGeom.mjGEOM_MESH).all()
    cell.close()


def test_a_mug_is_hollow_as_it_renders():
    """Its mesh (one piece: MuJoCo would collide it as its hull, filled) only renders."""
    mug = OBJECT_CLASSES[CLASS_NAMES.index('mug')]
    assert len(convex_pieces(pybullet_data_dir() / mug.mesh)) == 1
    cell = Workcell(WorkcellConfig(), num_objects=0)
    instance = ObjectInstance(0, CLASS_NAMES.index('mug'), 1.0, (1, 1, 1, 1), 0.25, 0.6)
    cell.reset_with([instance], [(np.array([0.5, 0.0, 0.05]), np.array([1.0, 0, 0, 0]))])
    model, data = cell.model, cell.data
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, instance.body_name)
    assert model.body_mass[body] == pytest.approx(0.25)
    (state,) = cell.object_states()
    base = state.pose[:3, 3]
    scale = mug.size[0]

    def drop_ray(radius, groups):
        """Height at which a ray down at ``radius`` from the mug's axis meets its geoms."""
        shown = np.zeros(6, np.uint8)
        shown[list(groups)] = 1
        geom = np.zeros(1, np.int32)
        distance = mujoco.mj_ray(model, data, base + (radius, 0, 0.4), np.array([0, 0, -1.0]),
                                 shown, 1, -1, geom)
        assert model.geom_bodyid[geom[0]] == body
        return 0.4 - distance

    # colliding geoms: down the middle to the inside's floor, on the wall its rim
    assert drop_ray(0.0, [COLLISION_GEOM_GROUP]) == pytest.approx(CUP_FLOOR * scale, abs=1e-4)
    wall = (CUP_INNER_RADIUS + CUP_OUTER_RADIUS) / 2 * scale
    assert drop_ray(wall, [COLLISION_GEOM_GROUP]) == pytest.approx(CUP_HEIGHT * scale, abs=1e-3)
    # the rendered mesh agrees (the camera's depth): the same heights within 3 mm
    assert drop_ray(0.0, [OBJECT_GEOM_GROUP]) == pytest.approx(CUP_FLOOR * scale, abs=0.003)
    assert drop_ray(wall, [OBJECT_GEOM_GROUP]) == pytest.approx(CUP_HEIGHT * scale, abs=0.003)
    cell.close()


def test_same_seed_same_scene():
    first = Workcell(num_objects=8, seed=42)
    poses_a = np.array([s.pose for s in first.object_states()])
    rgb_a = first.render_rgb()
    depth_a = first.render_depth()
    first.reset(seed=43, num_objects=8)
    poses_other = np.array([s.pose for s in first.object_states()])
    first.close()
    second = Workcell(num_objects=8, seed=42)
    poses_b = np.array([s.pose for s in second.object_states()])
    assert np.array_equal(poses_a, poses_b)
    assert np.array_equal(rgb_a, second.render_rgb())
    assert np.array_equal(depth_a, second.render_depth())
    assert not np.allclose(poses_a, poses_other)
    second.close()


@pytest.mark.parametrize('seed, count', [(0, 26), (0, -1), (-1, 5), (2 ** 32, 5), (1.5, 5),
                                         (True, 5), ('7', 5)])
def test_bad_scene_request_refused(box_cell, seed, count):
    before = [s.pose for s in box_cell.object_states()]
    with pytest.raises(SceneError):
        box_cell.reset(seed=seed, num_objects=count)
    assert np.array_equal(before[0], box_cell.object_states()[0].pose)


def test_depth_model_artefacts():
    intr = D435_COLOR
    rng = np.random.default_rng(0)
    depth = np.full((intr.height, intr.width), 0.5, dtype=np.float32)
    depth[:, 320:] = 1.5  # a step edge
    depth[:40] = 0.1  # closer than the minimum range
    noisy = apply_depth_model(depth, intr, DepthModel(), rng)
    assert (noisy[:40] == 0).all()
    assert (noisy[100:, 319:321] == 0).mean() > 0.8
    near = noisy[100:, 50:300]
    far = noisy[100:, 350:600]
    assert near[near > 0].std() < far[far > 0].std()
    assert abs(np.median(far[far > 0]) - 1.5) < 0.002
    assert np.allclose(noisy * 1000, np.round(noisy * 1000), atol=1e-3)  # 1 mm steps


def test_grazing_surface_invalid():
    intr = D435_COLOR
    u = np.arange(intr.width)[None, :].repeat(intr.height, axis=0)
    # Plane through (0, 0, 1 m) whose normal is 85 degrees from the optical axis.
    tilt = np.deg2rad(85.0)
    denominator = np.cos(tilt) - np.sin(tilt) * (u - intr.cx) / intr.fx
    depth = np.where(denominator > 0.02, np.cos(tilt) / denominator, 5.0).astype(np.float32)
    flat = np.full_like(depth, 1.0)
    model = DepthModel(subpixel=0.0)
    rng = np.random.default_rng(0)
    assert (apply_depth_model(flat, intr, model, rng) > 0).all()
    tilted = apply_depth_model(depth, intr, model, rng)
    assert (tilted[200:280, 300:340] == 0).mean() > 0.9


def test_visible_boxes_and_intrinsics():
    labels = np.zeros((10, 12), dtype=np.int32)
    labels[2:5, 3:7] = 1
    labels[8, 11] = 3
    boxes, pixels = visible_boxes(labels, 3)
    assert boxes.tolist() == [[3, 2, 7, 5], [0, 0, 0, 0], [11, 8, 12, 9]]
    assert pixels.tolist() == [12, 0, 1]
    with pytest.raises(InvalidCameraInfoError):
        replace(D435_COLOR, fx=0.0)
    assert D435_COLOR.matrix[0, 2] == 319.5


def test_depth_model_needs_an_image():
    rng = np.random.default_rng(0)
    for shape in ((1, 640), (480,), (480, 640, 1)):
        with pytest.raises(ValueError, match='2D image'):
            apply_depth_model(np.ones(shape, np.float32), D435_COLOR, DepthModel(), rng)


def _depth_model_in_numpy(depth, intr, model, rng):
    """The artefacts as whole-image numpy operations: the reference of the compiled pass."""
    z = depth.astype(np.float32)
    sigma = np.float32(model.subpixel / (intr.fx * model.baseline)) * z * z
    noisy = z + rng.standard_normal(size=z.shape, dtype=np.float32) * sigma
    invalid = (z < model.min_depth) | (z > model.max_depth)
    edge = np.zeros(z.shape, dtype=bool)
    step_x = np.abs(np.diff(z, axis=1)) > model.edge_jump
    step_y = np.abs(np.diff(z, axis=0)) > model.edge_jump
    edge[:, 1:] |= step_x
    edge[:, :-1] |= step_x
    edge[1:] |= step_y
    edge[:-1] |= step_y
    invalid |= edge & (rng.random(z.shape, dtype=np.float32) < model.edge_dropout)
    z_v, z_u = np.gradient(z)
    x = (np.arange(z.shape[1]) - intr.cx) / intr.fx
    y = ((np.arange(z.shape[0]) - intr.cy) / intr.fy)[:, None]
    a, b = intr.fx * z_u, intr.fy * z_v
    norm = np.sqrt(a * a + b * b + (a * x + b * y + z) ** 2) * np.sqrt(x * x + y * y + 1.0)
    invalid |= np.arccos(np.clip(np.abs(z) / np.maximum(norm, 1e-12), 0.0, 1.0)) \
        > model.grazing_angle
    noisy = np.round(noisy / model.depth_unit) * np.float32(model.depth_unit)
    return np.where(invalid, np.float32(0.0), noisy).astype(np.float32)


def test_depth_model_is_the_numpy_reference_bit_for_bit():
    """The compiled pass gives what numpy gives: the simulated bins stay the same bins."""
    intr = D435_COLOR
    u = np.arange(intr.width)[None, :].repeat(intr.height, axis=0)
    depth = (0.7 + 0.2 * (u - intr.cx) / intr.width).astype(np.float32)  # a slope
    depth[100:200, 100:300] = 0.62  # a part: steps on its sides
    # a plane 88 degrees off the optical axis: seen across the grazing limit near u = 430
    tilt = np.deg2rad(88.0)
    depth[300:, 400:] = 5.0 * np.cos(tilt) / (np.cos(tilt)
                                             + np.sin(tilt) * (u[300:, 400:] - intr.cx) / intr.fx)
    depth[:20] = 0.1  # too close
    for seed in range(3):
        expected = _depth_model_in_numpy(depth, intr, DepthModel(), np.random.default_rng(seed))
        got = apply_depth_model(depth, intr, DepthModel(), np.random.default_rng(seed))
        assert got.dtype == np.float32 and (got[300:, 400:] == 0).any(axis=0).sum() > 20
        np.testing.assert_array_equal(got, expected)
