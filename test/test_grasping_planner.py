"""Grasp planner on analytically rendered bins: accuracy, segmentation, collisions, bad input."""

from dataclasses import replace
import functools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.detection.types import Detections
from litedet_ros.errors import InvalidCameraInfoError, InvalidImageError, InvalidMessageError
from litedet_ros.grasping import candidates as candidates_module
from litedet_ros.grasping import planner as planner_module
from litedet_ros.grasping.candidates import generate_candidates
from litedet_ros.grasping.collision import (
    PREFILTER_STRIDE,
    gripper_boxes,
    points_clearance,
    points_clearances,
    swept_bounds,
    swept_collisions,
    wall_clearance,
)
from litedet_ros.grasping.config import BinGeometry, GripperGeometry, PlannerConfig
from litedet_ros.grasping.estimation import estimate_object, percentile
from litedet_ros.grasping.planner import GraspPlanner
from litedet_ros.grasping.scene import SceneCloud
from litedet_ros.grasping.synthetic import (
    Cuboid,
    Cylinder,
    bin_solids,
    look_down_pose,
    render_depth,
    rotation_z,
    visible_box,
)

CAMERA = PinholeCamera(615.0, 615.0, 320.0, 240.0, 640, 480)
BIN = BinGeometry()
CONFIG = PlannerConfig(bin=BIN)
MARGIN = CONFIG.gripper.width_margin
DOWN = np.array([0.0, 0.0, -1.0])


def box_on_floor(x, y, size, yaw=0.0, z0=0.0):
    size = np.asarray(size, dtype=np.float64)
    return Cuboid(np.array([x, y, z0 + size[2] / 2]), size / 2, rotation_z(yaw))


def detect(depth, ids, first_object):
    """Ground-truth boxes of every visible object solid (ids >= first_object)."""
    indices = [i for i in range(first_object, ids.max() + 1) if (ids == i).any()]
    boxes = np.stack([visible_box(ids, i) for i in indices])
    n = len(boxes)
    return Detections(boxes, np.ones(n), np.zeros(n), ('part',) * n,
                      (depth.shape[1], depth.shape[0]), stamp_ns=7)


@functools.lru_cache(maxsize=None)
def scene(name):
    """Render a named scene once: (depth, detections, objects, bin, camera pose)."""
    pose = look_down_pose(0.7)
    bin_geometry = BIN
    if name == 'box':
        objects = [box_on_floor(0.05, 0.02, (0.06, 0.04, 0.05), np.radians(30))]
    elif name == 'low_rod':  # 18 mm thick: no room for widest_overlap above the floor
        lying = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
        objects = [Cylinder(np.array([0.0, 0.0, 0.009]), 0.009, 0.05, lying)]
    elif name == 'cylinder':
        lying = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # axis along planning y
        objects = [Cylinder(np.array([-0.08, -0.04, 0.03]), 0.03, 0.06, lying),
                   Cylinder(np.array([0.09, 0.05, 0.05]), 0.03, 0.05)]
    elif name == 'touching':
        objects = [box_on_floor(0.0, 0.0, (0.06, 0.04, 0.05)),
                   box_on_floor(0.0, 0.04, (0.06, 0.04, 0.065))]
    elif name in ('wall', 'low_wall'):
        if name == 'low_wall':
            bin_geometry = BinGeometry(wall_height=0.06)
        objects = [box_on_floor(0.0, 0.15 - 0.02, (0.06, 0.04, 0.05))]
    elif name == 'pile':
        objects = [box_on_floor(-0.1, 0.0, (0.05, 0.04, 0.03)),
                   box_on_floor(0.1, 0.0, (0.05, 0.04, 0.08))]
    elif name == 'tilted':
        tilt = np.array([[1.0, 0, 0], [0, np.cos(0.6), -np.sin(0.6)], [0, np.sin(0.6),
                                                                        np.cos(0.6)]])
        objects = [Cuboid(np.array([0.0, 0.0, 0.05]), np.array([0.03, 0.05, 0.02]), tilt)]
    elif name == 'oblique_camera':
        pose = look_down_pose(0.6, x=-0.15)
        c, s = np.cos(np.radians(20)), -np.sin(np.radians(20))  # tilted towards +x
        pose[:3, :3] = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ pose[:3, :3]
        objects = [box_on_floor(0.05, -0.03, (0.07, 0.045, 0.04), np.radians(-50))]
    elif name == 'occluded_corner':  # a tall part stands over one corner of a flat one
        objects = [box_on_floor(0.0, 0.0, (0.07, 0.045, 0.02)),
                   box_on_floor(0.025, 0.01, (0.04, 0.04, 0.09))]
    elif name == 'perched':  # a can lying on a brick, its centre 7.5 cm up
        lying = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
        objects = [box_on_floor(0.0, 0.0, (0.12, 0.05, 0.045)),
                   Cylinder(np.array([0.0, 0.0, 0.075]), 0.03, 0.05, lying)]
    elif name == 'crowded':  # three parts close around a box, one across each long side
        objects = [box_on_floor(0.0, 0.0, (0.06, 0.035, 0.04)),
                   box_on_floor(-0.006, 0.045, (0.03, 0.036, 0.057), 1.906),
                   box_on_floor(-0.007, -0.053, (0.058, 0.036, 0.03), 2.694),
                   box_on_floor(0.055, 0.012, (0.035, 0.037, 0.046), 0.942)]
    elif name == 'big_can':  # 7 cm across, lying, off the camera axis (its side in view)
        lying = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
        objects = [Cylinder(np.array([0.12, 0.0, 0.035]), 0.035, 0.05, lying)]
    elif name == 'row':  # five free boxes, the taller the further along x
        heights = (0.03, 0.045, 0.06, 0.075, 0.09)
        objects = [box_on_floor(x, 0.0, (0.05, 0.04, h))
                   for x, h in zip((-0.14, -0.07, 0.0, 0.07, 0.14), heights)]
    elif name == 'narrow_gap':  # a lower box 1.5 mm beyond a finger closing across the other
        outer = (0.04 + MARGIN) / 2 + CONFIG.gripper.finger_thickness  # finger's outer face, y
        objects = [box_on_floor(0.0, 0.0, (0.06, 0.04, 0.04)),
                   box_on_floor(0.0, outer + 0.0015 + 0.02, (0.12, 0.04, 0.03))]
    elif name == 'wide':
        objects = [box_on_floor(0.0, 0.0, (0.10, 0.09, 0.04))]
    elif name == 'wide_and_small':  # one part too wide for the stroke, one that fits
        objects = [box_on_floor(-0.08, 0.0, (0.10, 0.09, 0.04)),
                   box_on_floor(0.1, 0.05, (0.05, 0.03, 0.03), np.radians(20))]
    elif name == 'thin_l':  # an L bracket on its side: two 6 mm walls, 3 cm high, seen edge-on
        yaw = np.radians(35)
        along, across = rotation_z(yaw)[:2, 0], rotation_z(yaw)[:2, 1]
        end = 0.035 * along - 0.017 * across
        objects = [box_on_floor(0.0, 0.0, (0.07, 0.006, 0.03), yaw),
                   box_on_floor(*(end + 0.003 * along), (0.006, 0.04, 0.03), yaw)]
    elif name == 'bare':  # the empty bin, and a chip too small to be a part
        objects = [box_on_floor(0.05, 0.0, (0.007, 0.007, 0.012))]
    solids = bin_solids(bin_geometry) + objects
    depth, ids = render_depth(CAMERA, pose, solids)
    detections = detect(depth, ids, len(solids) - len(objects))
    return depth, detections, objects, bin_geometry, pose


def plan(name, **overrides):
    depth, detections, objects, bin_geometry, pose = scene(name)
    config = PlannerConfig(bin=bin_geometry, **overrides)
    return GraspPlanner(config).plan(depth, CAMERA, detections, pose), objects


def best_for(result, index):
    return next(g for g in result.grasps if g.detection_index == index)


def angle_deg(a, b):
    """Angle between two lines (sign-free), degrees."""
    return np.degrees(np.arccos(np.clip(abs(np.dot(a, b)), 0.0, 1.0)))


def test_box_on_floor_top_grasp_is_centred_across_the_narrow_side():
    result, (box,) = plan('box')
    grasp = result.grasps[0]
    top_centre = box.centre + [0.0, 0.0, box.half[2]]
    assert angle_deg(grasp.approach, DOWN) < 1.0
    assert np.linalg.norm(grasp.position[:2] - top_centre[:2]) < 0.002
    height = top_centre[2] - BIN.pose[2, 3]
    # flat-topped: the tips go between grasp_depth and grasp_depth_fraction of the way down
    depth = top_centre[2] - (grasp.position[2] - CONFIG.gripper.tcp_to_tip)
    assert CONFIG.grasp_depth - 0.002 <= depth <= CONFIG.grasp_depth_fraction * height + 0.002
    assert angle_deg(grasp.pose[:3, 1], box.rotation[:, 1]) < 3.0  # narrow side is local y
    assert grasp.width == pytest.approx(2 * box.half[1] + MARGIN, abs=0.003)
    assert grasp.frame_id == 'base_link' and grasp.stamp_ns == 7
    assert result.drops == {}


def test_lying_and_upright_cylinders():
    result, (lying, upright) = plan('cylinder')
    grasp = best_for(result, 0)
    assert angle_deg(grasp.pose[:3, 1], lying.rotation[:, 2]) > 85.0  # closes across the axis
    assert abs(grasp.position[0] - lying.centre[0]) < 0.003
    assert abs(grasp.position[1] - lying.centre[1]) < 0.005
    assert grasp.width == pytest.approx(2 * lying.radius + MARGIN, abs=0.004)
    # rounded: the pads close below the part's centre, not on its curved top, and
    # grasp_depth_fraction of the way to its estimated underside (its visible extent below its
    # deepest visible point)
    tips = grasp.position[2] - CONFIG.gripper.tcp_to_tip
    assert tips <= lying.centre[2] - CONFIG.widest_overlap + 0.002
    extent = np.ptp(result.objects[0].points[:, 2])
    top = lying.centre[2] + lying.radius
    assert tips == pytest.approx(top - CONFIG.grasp_depth_fraction * 2 * extent, abs=0.004)
    assert result.drops == {}
    grasp = best_for(result, 1)  # upright: flat top and straight sides, held at any depth
    tips = grasp.position[2] - CONFIG.gripper.tcp_to_tip
    assert tips <= upright.centre[2] + upright.half_length - CONFIG.grasp_depth + 0.002
    assert np.linalg.norm(grasp.position[:2] - upright.centre[:2]) < 0.002
    assert grasp.width == pytest.approx(2 * upright.radius + MARGIN, abs=0.003)


def test_touching_boxes_are_segmented_apart_and_fingers_avoid_the_neighbour():
    result, (low, high) = plan('touching')
    low_points = result.objects[0].points
    assert low_points[:, 1].max() < 0.0205  # nothing of the neighbour at y >= 0.02
    assert low_points[:, 2].max() < low.centre[2] + low.half[2] + 0.001
    high_points = result.objects[1].points
    assert high_points[:, 1].min() > 0.0195
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 9)] * 3), axis=-1).reshape(-1, 3)
    for index, (box, other) in enumerate(((low, high), (high, low))):
        grasps = [g for g in result.grasps if g.detection_index == index]
        assert grasps, f'no grasp for box {index}'
        solid = other.centre + (grid * other.half) @ other.rotation.T  # the neighbour's volume
        for grasp in grasps:  # closing across the touching faces would put a finger in the other
            in_tool = (solid - grasp.position) @ grasp.pose[:3, :3]
            assert points_clearance(in_tool, CONFIG.gripper, grasp.width) > 0
            assert abs(grasp.pose[1, 1]) < 0.9
            assert np.linalg.norm(grasp.position[:2] - box.centre[:2]) < 0.025


def test_box_against_a_tall_wall_is_grasped_leaning_away_from_it():
    result, (box,) = plan('wall')
    _, _, _, bin_geometry, _ = scene('wall')
    assert result.grasps
    for grasp in result.grasps:  # tilted towards the wall (+y): palm and wrist lean off it
        assert grasp.approach[1] == pytest.approx(np.sin(np.radians(CONFIG.wall_tilt_deg)))
        assert wall_clearance(bin_geometry, grasp.pose, CONFIG.gripper,
                              grasp.width) >= CONFIG.wall_clearance
        assert np.linalg.norm(grasp.position[:2] - box.centre[:2]) < 0.03
    # without the clearance the best grasps come nearer the wall than the descent guard allows
    # (and without part_clearance: the depth points of the wall's rim count as scene points)
    touching, _ = plan('wall', wall_clearance=0.0, part_clearance=0.0)
    assert min(wall_clearance(bin_geometry, grasp.pose, CONFIG.gripper, grasp.width)
               for grasp in touching.grasps) < CONFIG.wall_clearance
    # straight down, the palm or the wrist would hit the wall: no grasp, and the reason
    upright, _ = plan('wall', wall_tilt_deg=0.0)
    assert upright.grasps == ()
    assert upright.drops == {'all_colliding': 1}


def test_box_against_a_low_wall_is_grasped_along_the_wall():
    result, _ = plan('low_wall')
    _, _, _, bin_geometry, _ = scene('low_wall')
    assert result.grasps
    for grasp in result.grasps:
        assert abs(grasp.pose[1, 1]) < 0.5  # not closing towards the wall
        assert wall_clearance(bin_geometry, grasp.pose, CONFIG.gripper, grasp.width) > 0


def test_a_part_boxed_in_across_its_narrow_side_gets_a_fallback_yaw():
    result, (box, *_) = plan('crowded')
    grasps = [g for g in result.grasps if g.detection_index == 0]
    assert grasps
    for grasp in grasps:  # closing at a fallback yaw (35-70 deg) off the narrow axis
        assert 32.0 <= angle_deg(grasp.pose[:3, 1], box.rotation[:, 1]) <= 73.0
    primary_only, _ = plan('crowded', fallback_yaw_offsets_deg=())
    assert not [g for g in primary_only.grasps if g.detection_index == 0]
    assert primary_only.drops['all_colliding'] >= 1


def test_the_coupling_behind_the_palm_is_checked_against_the_walls():
    """Low beside a wall, the palm clears it by 7 mm but the wider coupling above does not."""
    grasp = np.eye(4)
    grasp[:3, :3] = np.column_stack([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], DOWN])  # closing along x
    grasp[:3, 3] = (0.0, BIN.size_y / 2 - 0.032, 0.02)
    assert wall_clearance(BIN, grasp, CONFIG.gripper, 0.05) == 0.0
    slim = GripperGeometry(coupling_diameter=0.04)
    assert wall_clearance(BIN, grasp, slim, 0.05) == pytest.approx(0.007, abs=1e-6)


def test_grasps_are_sorted_and_the_top_of_the_pile_comes_first():
    result, _ = plan('pile')
    scores = [g.score for g in result.grasps]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert result.grasps[0].detection_index == 1  # the taller box
    assert {g.detection_index for g in result.grasps} == {0, 1}
    assert len(result.grasps) == 2 * CONFIG.candidates_per_object
    boxes = scene('pile')[1].boxes  # each grasp carries its detection's box
    assert all(g.box == pytest.approx(tuple(boxes[g.detection_index])) for g in result.grasps)


@pytest.mark.parametrize('kept', [1, 2])
def test_only_objects_that_can_beat_the_best_kept_ones_are_planned(kept):
    everything, _ = plan('row', objects_per_image=0)
    assert len({g.detection_index for g in everything.grasps}) == 5
    assert 'outranked' not in everything.drops
    result, _ = plan('row', objects_per_image=kept)
    best_objects = []
    for grasp in everything.grasps:  # the kept objects of the full plan, by their best grasp
        if grasp.detection_index not in best_objects:
            best_objects.append(grasp.detection_index)
    assert best_objects[:kept] == [4, 3][:kept]  # the tallest boxes top the pile
    assert result.grasps[0].score == everything.grasps[0].score
    assert np.array_equal(result.grasps[0].pose, everything.grasps[0].pose)
    # on free boxes the bound is tight enough that no other box is planned
    assert {g.detection_index for g in result.grasps} == set(best_objects[:kept])
    assert result.drops == {'outranked': 5 - kept}


def test_tilted_face_gets_a_surface_normal_approach():
    # the box rests on a corner off the floor: no centre-of-mass depth rule for this geometry
    result, (box,) = plan('tilted', candidates_per_object=20, min_depth_fraction=0.0)
    normal = box.rotation[:, 2]
    assert angle_deg(result.objects[0].normal, normal) < 2.0
    assert min(angle_deg(g.approach, -normal) for g in result.grasps) < 2.0
    assert min(angle_deg(g.approach, DOWN) for g in result.grasps) < 1.0


def test_oblique_camera_is_handled_through_the_given_transform():
    result, (box,) = plan('oblique_camera')
    grasp = result.grasps[0]
    assert np.linalg.norm(grasp.position[:2] - box.centre[:2]) < 0.003
    assert angle_deg(grasp.pose[:3, 1], box.rotation[:, 1]) < 3.0
    assert grasp.width == pytest.approx(2 * box.half[1] + MARGIN, abs=0.003)


def test_object_wider_than_the_stroke_is_dropped():
    result, _ = plan('wide')
    assert result.grasps == ()
    assert result.drops == {'too_wide': 1}


def test_stroke_limit_is_a_parameter():
    result, _ = plan('wide', gripper=GripperGeometry(stroke=0.14))
    assert result.grasps and max(g.width for g in result.grasps) <= 0.14


def test_opening_is_capped_at_the_stroke_while_the_minimum_margin_fits():
    capped, _ = plan('wide', gripper=GripperGeometry(stroke=0.105))  # 90 mm + 20 > 105 mm
    assert capped.grasps and all(g.width == pytest.approx(0.105) for g in capped.grasps)
    tight, _ = plan('wide', gripper=GripperGeometry(stroke=0.095))  # 90 mm + 10 > 95 mm
    assert tight.grasps == () and tight.drops == {'too_wide': 1}


@pytest.mark.parametrize('count', [1, 2, 457])
@pytest.mark.parametrize('q', [0.0, 1.0, 50.0, 95.0, 99.5, 100.0])
def test_percentile_is_numpys(q, count):
    values = np.random.default_rng(count).normal(size=count)
    assert percentile(values, q) == np.percentile(values, q)


def test_invalid_depth_stripe_does_not_move_the_grasp():
    depth, detections, (box,), _, pose = scene('box')
    holed = depth.copy()
    x1, y1, x2, y2 = detections.boxes[0].astype(int)
    holed[(y1 + y2) // 2 - 2:(y1 + y2) // 2 + 2, x1:x2] = np.nan
    result = GraspPlanner(CONFIG).plan(holed, CAMERA, detections, pose)
    assert np.linalg.norm(result.grasps[0].position[:2] - box.centre[:2]) < 0.002


def test_bad_boxes_are_counted_and_do_not_stop_the_others():
    depth, detections, _, _, pose = scene('box')
    invalid = depth.copy()
    x1, y1, x2, y2 = detections.boxes[0].astype(int)
    invalid[y1:y2, x1:x2] = np.nan
    boxes = np.concatenate([detections.boxes, [[700.0, 10.0, 720.0, 30.0],
                                               [20.0, 20.0, 20.0, 60.0],
                                               [300.0, 300.0, 340.0, 340.0]]])  # bare floor
    many = Detections(boxes, np.ones(4), np.zeros(4), ('part',) * 4, (640, 480))
    result = GraspPlanner(CONFIG).plan(depth, CAMERA, many, pose)
    assert {g.detection_index for g in result.grasps} == {0}
    assert result.drops == {'box_outside_image': 1, 'box_zero_area': 1, 'too_few_points': 1}
    assert result.objects[0] is not None and result.objects[1] is None
    result = GraspPlanner(CONFIG).plan(invalid, CAMERA, detections, pose)
    assert result.grasps == () and result.drops == {'no_valid_depth': 1}


NO_DETECTIONS = Detections(np.zeros((0, 4)), [], [], (), (640, 480), stamp_ns=7)


def test_a_part_the_detector_missed_is_found_in_depth_and_grasped():
    depth, detections, (box,), _, pose = scene('box')
    result = GraspPlanner(CONFIG).plan(depth, CAMERA, NO_DETECTIONS, pose)
    (found,) = result.undetected
    # the depth box holds the part's visible box, give or take a scene cloud cell
    np.testing.assert_allclose(found, detections.boxes[0], atol=CONFIG.scene_stride)
    assert result.grasps and {g.detection_index for g in result.grasps} == {-1}
    assert all(g.box == found for g in result.grasps)
    best = result.grasps[0]
    assert np.linalg.norm(best.position[:2] - box.centre[:2]) < 0.01
    assert angle_deg(best.pose[:3, 1], box.rotation[:, 1]) < 15  # across the narrow side
    off = GraspPlanner(replace(CONFIG, undetected_parts=False)).plan(depth, CAMERA,
                                                                     NO_DETECTIONS, pose)
    assert off.grasps == () and off.objects == () and off.undetected == ()


def test_missed_parts_are_looked_for_only_when_no_detected_part_has_a_grasp():
    depth, detections, (wide, small), _, pose = scene('wide_and_small')
    only_wide = Detections(detections.boxes[:1], [1.0], [0], ('part',), (640, 480))
    result = GraspPlanner(CONFIG).plan(depth, CAMERA, only_wide, pose)
    assert result.drops == {'too_wide': 1} and len(result.undetected) == 1
    assert result.grasps and {g.detection_index for g in result.grasps} == {-1}
    assert np.linalg.norm(result.grasps[0].position[:2] - small.centre[:2]) < 0.01
    assert len(result.objects) == 2 and result.objects[1] is not None
    only_small = Detections(detections.boxes[1:], [1.0], [0], ('part',), (640, 480))
    result = GraspPlanner(CONFIG).plan(depth, CAMERA, only_small, pose)
    assert {g.detection_index for g in result.grasps} == {0} and result.undetected == ()


def test_a_thin_part_seen_edge_on_is_one_missed_part():
    # 6 mm walls are a line of cells one or two wide; the D435 drops depth at their edges:
    # 7x7 pixels without depth across the long wall's middle (on the optical axis) break it in
    # two pieces of fewer cells than a chunky part shows, together one part
    depth, detections, walls, _, pose = scene('thin_l')
    depth = depth.copy()
    depth[237:244, 317:324] = np.nan
    result = GraspPlanner(CONFIG).plan(depth, CAMERA, NO_DETECTIONS, pose)
    (found,) = result.undetected
    whole = np.concatenate([detections.boxes[:, :2].min(axis=0),
                            detections.boxes[:, 2:].max(axis=0)])
    np.testing.assert_allclose(found, whole, atol=CONFIG.scene_stride)
    best = result.grasps[0]

    def across(wall):  # the wall between the open fingers, its length through them
        offset = wall.rotation.T @ (best.position - wall.centre)
        thin = int(np.argmin(wall.half[:2]))
        return (abs(offset[thin]) + wall.half[thin] < best.width / 2
                and abs(offset[1 - thin]) < wall.half[1 - thin]
                and angle_deg(best.pose[:3, 1], wall.rotation[:, thin]) < 45)

    assert across(walls[0]) or across(walls[1])


def test_the_bare_bin_and_a_chip_smaller_than_a_part_are_not_parts():
    depth, _, _, _, pose = scene('bare')
    result = GraspPlanner(CONFIG).plan(depth, CAMERA, NO_DETECTIONS, pose)
    assert result.grasps == () and result.undetected == () and result.pushes == ()


def test_inconsistent_inputs_raise_typed_errors():
    depth, detections, _, _, pose = scene('box')
    planner = GraspPlanner(CONFIG)
    with pytest.raises(InvalidImageError):
        other = Detections(detections.boxes, [1.0], [0], ('part',), (1280, 720))
        planner.plan(depth, CAMERA, other, pose)
    with pytest.raises(InvalidCameraInfoError):
        planner.plan(depth, PinholeCamera(615.0, 615.0, 320.0, 240.0, 320, 240), detections,
                     pose)
    with pytest.raises(InvalidImageError):
        planner.plan(np.zeros(depth.shape, np.uint16), CAMERA, detections, pose)
    for bad in (np.full((4, 4), np.nan), np.eye(3), np.diag([1.0, 1.0, 2.0, 1.0])):
        with pytest.raises(InvalidMessageError):
            planner.plan(depth, CAMERA, detections, bad)


def test_point_clearance_rejects_points_in_the_fingers_only():
    gripper = GripperGeometry()
    width = 0.05
    between_pads = np.array([[0.0, 0.02, 0.0]])
    in_finger = np.array([[0.0, width / 2 + 0.005, 0.0]])
    above_palm_path = np.array([[0.0, 0.0, -(gripper.finger_length + 0.05)]])
    below_tips = np.array([[0.0, width / 2 + 0.005, gripper.tcp_to_tip + 0.01]])
    assert points_clearance(between_pads, gripper, width) > 0
    assert points_clearance(in_finger, gripper, width) == 0
    assert points_clearance(above_palm_path, gripper, width) == 0
    assert points_clearance(below_tips, gripper, width) == pytest.approx(0.01)


def test_finger_tips_keep_bin_clearance_above_the_floor():
    planner = GraspPlanner(CONFIG)
    tip_to_floor = CONFIG.gripper.tcp_to_tip + BIN.pose[2, 3]
    poses = np.repeat(np.eye(4)[None], 2, axis=0)
    poses[:, :3, :3] = np.diag([1.0, -1.0, -1.0])  # straight down, in the middle of the bin
    poses[:, 2, 3] = tip_to_floor + np.array([0.001, 0.004])  # tips 1 and 4 mm above the floor
    clearances = planner._clearances(poses, np.full(2, 0.04), np.empty((0, 3)))
    assert clearances[0] == 0  # inside the motion planner's contact margin: refused
    assert clearances[1] > 0


def test_wall_clearance_is_exact_at_the_wall():
    gripper = GripperGeometry()
    _, half = gripper_boxes(gripper, 0.04)
    pose = np.eye(4)
    pose[:3, :3] = np.diag([1.0, -1.0, -1.0])  # approach straight down
    pose[:3, 3] = (0.0, 0.0, 0.05)
    assert wall_clearance(BIN, pose, gripper, 0.04) == pytest.approx(
        BIN.size_y / 2 - half[2, 1], abs=1e-9)
    pose[1, 3] = BIN.size_y / 2  # palm and a finger in the +y wall
    assert wall_clearance(BIN, pose, gripper, 0.04) == 0
    pose[2, 3] = BIN.wall_height + gripper.finger_length + 0.05  # above the rim
    assert wall_clearance(BIN, pose, gripper, 0.04) > 0


def test_scene_box_points_match_a_brute_force_search_and_drop_the_floor():
    depth, _, _, bin_geometry, pose = scene('pile')
    cloud = SceneCloud.from_depth(depth, CAMERA, pose, 4, bin_geometry, 0.006)
    points = cloud.points
    local = bin_geometry.to_bin(points)
    over_floor = (np.abs(local[:, :2]) < [BIN.size_x / 2, BIN.size_y / 2]).all(axis=1)
    assert over_floor.any() and local[over_floor, 2].min() >= 0.006
    low, high = np.array([0.05, -0.05, 0.0]), np.array([0.15, 0.05, 0.3])
    expected = points[((points >= low) & (points <= high)).all(axis=1)]
    found = cloud.box_points(low, high)
    assert len(found) == len(expected) > 0
    np.testing.assert_allclose(np.sort(found, axis=0), np.sort(expected, axis=0))


def test_compiled_cylinder_test_matches_a_numpy_reference():
    rng = np.random.default_rng(7)
    points = rng.uniform(-0.2, 0.2, (2000, 3))
    points[::50] = np.nan  # invalid depth stays out
    centre, axis = np.array([0.01, -0.02, 0.03]), np.array([0.0, 0.6, -0.8])
    found = planner_module._cylinder_points(points, centre, axis, 0.08, 0.12, 0.05)
    relative = points - centre
    along = relative @ axis
    with np.errstate(invalid='ignore'):
        inside = ((np.einsum('ij,ij->i', relative, relative) - along ** 2 <= 0.08 ** 2)
                  & (along >= -0.12) & (along <= 0.05))
    assert 0 < len(found) < len(points) - 40
    np.testing.assert_array_equal(found, points[inside])


def test_an_occluder_poking_into_the_box_is_not_taken_for_the_object():
    result, (flat, tall) = plan('occluded_corner')
    points = result.objects[0].points
    top = flat.centre[2] + flat.half[2]
    assert np.abs(points[:, 2] - top).max() < 0.002  # the flat part, not the tall one's top
    assert result.objects[1].points[:, 2].min() > top + 0.01


# 1.2 cm of reach: less than min_depth_fraction of the perched can's visible extent (2.3 cm)
SHORT_FINGERS = {'grasp_depth': 0.015, 'gripper': GripperGeometry(finger_length=0.022)}


def test_a_low_rounded_part_is_grasped_as_far_below_its_centre_as_the_floor_allows(
        monkeypatch):
    # fingers kept 8 mm off the floor: no room for widest_overlap below the rod's visible
    # widest section, but the tips still pass it, and its centre (9 mm up)
    result, (rod,) = plan('low_rod', floor_clearance=0.008)
    assert result.grasps and result.drops == {}
    for grasp in result.grasps:
        tips = grasp.position[2] - CONFIG.gripper.tcp_to_tip
        assert tips == pytest.approx(0.008, abs=0.001)
        assert tips < rod.centre[2]
    monkeypatch.setattr(candidates_module, 'MIN_PAST_WIDEST', 1.0)  # the full overlap or none
    strict, _ = plan('low_rod', floor_clearance=0.008)
    assert strict.grasps == () and strict.drops == {'too_low': 1}
    # tips kept above its centre: no grasp
    monkeypatch.undo()
    high, _ = plan('low_rod', floor_clearance=0.01)
    assert high.grasps == () and high.drops == {'too_low': 1}


def test_a_rounded_part_lying_on_others_is_grasped_below_its_centre():
    result, (brick, can) = plan('perched')
    # it rests on the brick, not on the floor 10 cm below its top: the fingers reach below its
    # centre, so it is grasped
    grasps = [g for g in result.grasps if g.detection_index == 1]
    assert grasps
    for grasp in grasps:
        tips = grasp.position[2] - CONFIG.gripper.tcp_to_tip
        assert brick.centre[2] + brick.half[2] < tips <= can.centre[2] - CONFIG.widest_overlap
    # fingers too short to reach min_depth_fraction of the way down reject it
    strict, _ = plan('perched', **SHORT_FINGERS)
    assert not any(g.detection_index == 1 for g in strict.grasps)
    assert strict.drops['too_deep'] >= 1


def random_poses(rng, count, rotation_seed):
    """``float64[count, 4, 4]`` random rigid poses near the origin (positions from ``rng``)."""
    poses = np.tile(np.eye(4), (count, 1, 1))
    poses[:, :3, :3] = Rotation.random(count, random_state=rotation_seed).as_matrix()
    poses[:, :3, 3] = rng.normal(0.0, 0.05, (count, 3))
    return poses


def outside_boxes(points, pose, width, gripper):
    """Per point and gripper box (fingers, palm, coupling), how far outside it along each axis.

    Returns:
        ``(local, outside)``: the points in the tool frame, ``float[N, 3]``, and
        ``float[N, 4, 3]``, <= 0 on every axis where the point is inside a box.
    """
    local = (points - pose[:3, 3]) @ pose[:3, :3]
    centres, half = gripper_boxes(gripper, width)
    return local, np.abs(local[:, None, :] - centres) - half


def test_swept_volume_checks_match_a_box_by_box_reference():
    gripper = GripperGeometry()
    rng = np.random.default_rng(3)
    poses = random_poses(rng, 6, 4)
    widths = rng.uniform(0.02, gripper.stroke, 6)
    # points around the first grasp's gripper, in and out of its boxes
    in_tool = rng.uniform([-0.04, -0.08, -0.2], [0.04, 0.08, 0.04], (400, 3))
    points = in_tool @ poses[0, :3, :3].T + poses[0, :3, 3]
    expected_hit, expected_clearance = [], []
    for pose, width in zip(poses, widths):
        local, outside = outside_boxes(points, pose, width, gripper)
        distance = np.linalg.norm(np.maximum(outside, 0.0), axis=2)
        distance[np.abs(local[:, 1]) < width / 2, :2] = np.inf  # held between the pads
        expected_hit.append((outside <= 0).all(axis=2).any())
        expected_clearance.append(min(distance.min(), 0.02))
    np.testing.assert_array_equal(swept_collisions(points, poses, widths, gripper),
                                  expected_hit)
    assert any(expected_hit) and not all(expected_hit)
    np.testing.assert_allclose(points_clearances(points, poses, widths, gripper, 0.02),
                               expected_clearance, atol=1e-12)


def test_a_grasp_met_by_one_point_between_the_prefilter_samples_collides():
    gripper = GripperGeometry()
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, 0, 3] = [0.0, 1.0, 2.0]  # three grasps 1 m apart, along x
    widths = np.full(3, 0.04)
    centres, _ = gripper_boxes(gripper, 0.04)
    points = np.full((10 * PREFILTER_STRIDE, 3), 5.0)  # far from every grasp
    points[PREFILTER_STRIDE + 1] = centres[0]  # in the first grasp's +y finger, off the sample
    points[3 * PREFILTER_STRIDE] = centres[2] + [2.0, 0.0, 0.0]  # the third grasp's palm
    np.testing.assert_array_equal(swept_collisions(points, poses, widths, gripper),
                                  [True, False, True])


def test_swept_bounds_hold_every_point_a_swept_volume_meets():
    gripper = GripperGeometry()
    rng = np.random.default_rng(5)
    poses = random_poses(rng, 3, 6)
    widths = rng.uniform(0.0, gripper.stroke, 3)
    low, high = swept_bounds(poses, widths, gripper)
    points = rng.uniform(low - 0.05, high + 0.05, (20000, 3))
    hit = np.zeros(len(points), dtype=bool)
    for pose, width in zip(poses, widths):
        hit |= (outside_boxes(points, pose, width, gripper)[1] <= 0).all(axis=2).any(axis=1)
    inside = ((points >= low) & (points <= high)).all(axis=1)
    assert hit.sum() > 100 and inside[hit].all()
    # tight: each face touches a corner of one of the boxes
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    corners = np.concatenate([
        (centres[:, None] + signs * half[:, None]).reshape(-1, 3) @ pose[:3, :3].T + pose[:3, 3]
        for pose, (centres, half) in zip(poses, (gripper_boxes(gripper, w) for w in widths))])
    np.testing.assert_allclose(low, corners.min(axis=0), atol=1e-12)
    np.testing.assert_allclose(high, corners.max(axis=0), atol=1e-12)


def test_yaw_variants_score_their_alignment_with_the_narrow_axis():
    result, (box,) = plan('box')
    found, _ = generate_candidates(result.objects[0], CONFIG)
    narrow = box.rotation[:, 1]  # the box's 0.04 m side
    aligned = found.aligned
    errors = np.array([angle_deg(pose[:3, 1], narrow) for pose in found.poses])
    np.testing.assert_allclose(aligned, 1 - errors / 90, atol=1 / 90)
    assert aligned.max() == 1.0 and aligned.min() == 0.0  # yaw 0 and 90 are among them
    assert angle_deg(best_for(result, 0).pose[:3, 1], narrow) < 2.0
    # an upright can's round footprint has no narrow axis: no yaw is preferred
    cylinders, _ = plan('cylinder')
    found, _ = generate_candidates(cylinders.objects[1], CONFIG)
    assert len(found) and (found.aligned == 1.0).all()


def test_compiled_slab_sections_match_a_numpy_reference():
    rng = np.random.default_rng(5)
    along_long, along_short = rng.uniform(-0.05, 0.05, (2, 300))
    along = rng.uniform(0.5, 0.6, 300)
    yaws = np.radians([0.0, 10.0, -35.0, 70.0, 0.0, 90.0])
    centres = np.array([0.0, 0.01, -0.02, 0.0, 0.09, 0.0])  # the fifth: past the points, empty
    half = 0.011
    sections = candidates_module._slab_sections(along_long, along_short, along, centres, 0.002,
                                                np.cos(yaws), np.sin(yaws), half)
    # the same, as variants x points arrays
    cos, sin = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    rel_long, rel_short = along_long - centres[:, None], along_short - 0.002
    in_slab = np.abs(cos * rel_long + sin * rel_short) <= half
    across = cos * rel_short - sin * rel_long
    high = np.where(in_slab, across, -np.inf).max(axis=1)
    low = np.where(in_slab, across, np.inf).min(axis=1)
    first = np.where(in_slab, along, np.inf).min(axis=1)
    sides = np.stack([across >= high[:, None] - candidates_module.SIDE_BAND,
                      across <= low[:, None] + candidates_module.SIDE_BAND]) & in_slab
    side_depth = ((sides * along).sum(axis=2) / np.maximum(sides.sum(axis=2), 1)).mean(axis=0)
    empty = ~in_slab.any(axis=1)
    assert empty.tolist() == [False, False, False, False, True, False]
    expected = [in_slab.sum(axis=1), high, low, first, side_depth]
    for got, want in zip(sections, expected):
        np.testing.assert_allclose(got, np.where(empty, 0.0, want), rtol=0, atol=1e-12)


@pytest.mark.filterwarnings('error')
def test_variants_whose_slab_holds_no_point_are_rejected_quietly():
    # two 2 cm blocks 8 cm apart: the variants centred between them see no point (their
    # infinities once made NaN arithmetic that numpy warned about)
    grid = np.stack(np.meshgrid(np.linspace(-0.01, 0.01, 9), np.linspace(-0.01, 0.01, 9)),
                    axis=-1).reshape(-1, 2)
    blocks = np.concatenate([grid + (-0.04, 0.0), grid + (0.04, 0.0)])
    points = np.column_stack([blocks, np.full(len(blocks), 0.03)])
    estimate = estimate_object(points, np.array([0.0, 0.0, 0.6]), np.array([0.0, 0.0, 1.0]), 0)
    found, rejected = generate_candidates(estimate, PlannerConfig())
    assert rejected['empty_slab'] > 0 and len(found)  # the others, across one block, stay
    assert np.isfinite(found.poses).all()


def test_a_can_lying_on_the_floor_needs_min_depth_fraction_within_reach():
    # three quarters of the way to the floor (5.25 cm) or to the underside estimated from the
    # visible extent is beyond the 4.5 cm reach; the default 0.6 of it (4.2 cm) is not
    strict, _ = plan('big_can', min_depth_fraction=0.75)
    assert strict.grasps == () and strict.drops == {'too_deep': 1}
    loose, (can,) = plan('big_can')
    assert loose.grasps and loose.drops == {}
    reach = CONFIG.gripper.finger_length - candidates_module.PALM_CLEARANCE
    for grasp in loose.grasps:
        tips = grasp.position[2] - CONFIG.gripper.tcp_to_tip
        assert tips == pytest.approx(0.07 - reach, abs=0.002)  # as deep as the fingers go
        assert tips < can.centre[2] - 0.008


def test_a_rounded_part_out_of_reach_is_rejected_without_measuring_its_variants(monkeypatch):
    result, _ = plan('perched')
    can = result.objects[1]
    config = replace(CONFIG, **SHORT_FINGERS)
    found, rejected = generate_candidates(can, config)
    assert not len(found) and set(rejected) == {'too_deep'}
    monkeypatch.setattr(candidates_module, '_out_of_reach', lambda *args: False)
    found, rejected = generate_candidates(can, config)  # the full check agrees
    assert not len(found) and rejected['too_deep'] > 0


def test_fingers_keep_part_clearance_from_a_neighbour():
    result, (box, neighbour) = plan('narrow_gap')
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 21)] * 3), axis=-1).reshape(-1, 3)
    solid = neighbour.centre + (grid * neighbour.half) @ neighbour.rotation.T

    def clearance(grasp):
        return points_clearance((solid - grasp.position) @ grasp.pose[:3, :3], CONFIG.gripper,
                                grasp.width)

    grasps = [g for g in result.grasps if g.detection_index == 0]
    assert grasps, 'no grasp for the flat box'
    assert min(clearance(g) for g in grasps) >= CONFIG.part_clearance
    # without it, the best grasp closes across the box with a finger 2 mm from the neighbour
    near = best_for(plan('narrow_gap', part_clearance=0.0)[0], 0)
    assert clearance(near) < CONFIG.part_clearance
