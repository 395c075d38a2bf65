"""``litedet-ros bench grasp``: the grasp planner on held-out simulated bins.

Three measurements on MuJoCo workcell scenes (seeds from :data:`HELD_OUT_SEED`, disjoint from the
dataset splits):

* geometric accuracy of each detection's best grasp against ground truth, over detections
  matched to an exposed object (>= 90% of its silhouette visible; with detector boxes, IoU
  >= 0.5 with its ground-truth box, so a duplicate detection counts again): the distance
  between the TCP and the object's centre of mass across the approach (mm), and the angle
  between the closing axis and the object's true narrow axis (degrees, see
  :func:`narrow_axis`). The narrow axis is only defined where the object's outline seen along
  the approach has a distinct short side: a box-like part (``BOX_LIKE``: boxes, and toy bricks
  as their mesh's bounding box) whose two sides facing sideways differ by ``DISTINCT_SIZES``
  or more (its shorter side), and a can lying at least 60 degrees from the approach (across
  its axis). Rotationally symmetric outlines (upright cans, rings, a square face) and the
  irregular classes (L-shaped bracket, mug, duck) have no single true narrow axis and are not
  in the axis figure (``axis_evaluated`` counts those that are);
* physical success: the best grasp of each object executed by a free-floating gripper of the
  planner's geometry (moved kinematically to the pre-grasp pose, straight in, close with the
  cell's grip force, lift 20 cm, hold 2 s); success when an object is held 15 cm higher;
* planner latency for 1, 10 and 25 detections at 640x480 (wall clock and CPU time), and the
  grasp planner node's frame -> grasps latency over DDS where rclpy is installed.

Each failed attempt is recorded (``failures``: class, tilt, opening, finger depth in the
object) so that failure modes can be told apart.

Boxes come from the simulated segmentation (``gt``) or from a detector model (``detector``).
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace
import json
import os
from pathlib import Path
import time

import numpy as np

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.detection.types import Detections, box_iou
from litedet_ros.grasping.camera import decode_depth
from litedet_ros.grasping.config import BinGeometry, GripperGeometry, PlannerConfig
from litedet_ros.grasping.planner import GraspPlanner, PlanResult
from litedet_ros.grasping.types import Grasp

HELD_OUT_SEED = 300_000
EXPOSED_FRACTION = 0.9
LIFT_HEIGHT = 0.20
HOLD_TIME = 2.0
SUCCESS_RISE = 0.15
NODE_LATENCY_FRAMES = 100  # frames timed through the node at least
DISTINCT_SIZES = 1.15  # box sides closer than this ratio have no defined narrow axis
BOX_LIKE = ('box', 'toy_brick')  # classes whose narrow axis is their geometry's bounding box's


def workcell_bin(layout: dict[str, float]) -> BinGeometry:
    """The workcell's bin (``bin_floor`` frame) from its xacro layout arguments."""
    pose = np.eye(4)
    pose[:3, 3] = (layout['bin_x'], layout['bin_y'], layout['bin_wall'])
    return BinGeometry(pose=pose, size_x=layout['bin_length'], size_y=layout['bin_width'],
                       wall_height=layout['bin_height'] - layout['bin_wall'],
                       wall_thickness=layout['bin_wall'])


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _line_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(np.degrees(np.arccos(np.clip(abs(a @ b), 0.0, 1.0))))


def narrow_axis(shape: str, size: tuple[float, ...], rotation: np.ndarray,
                approach: np.ndarray) -> np.ndarray | None:
    """True axis a grasp should close along, in the plane normal to the approach, or None.

    Args:
        shape: object class shape (``'box'`` or ``'cylinder'``; others have none).
        size: class dimensions (box x, y, z; unused for a cylinder), any common scale.
        rotation: ``float[3, 3]`` world <- object rotation.
        approach: ``float[3]`` unit approach direction.

    Returns:
        ``float64[3]`` unit axis, or None where no narrow axis is defined (upright cans,
        square box faces, other shapes).
    """
    project = np.eye(3) - np.outer(approach, approach)
    if shape == 'box':
        across = np.argsort(np.abs(rotation.T @ approach))[:2]  # the two sides facing sideways
        sides = np.array(size)[across]
        if max(sides) < DISTINCT_SIZES * min(sides):
            return None
        return project @ rotation[:, across[np.argmin(sides)]]
    if shape == 'cylinder':
        axis = project @ rotation[:, 2]
        if np.linalg.norm(axis) < np.cos(np.radians(30)):  # standing: every side is alike
            return None
        return np.cross(approach, axis / np.linalg.norm(axis))
    return None


class FreeGripper:
    """A kinematically moved parallel-jaw gripper of the planner's geometry in a copy of the bin.

    Args:
        cell: the workcell whose bin and current object poses are copied.
        gripper: gripper geometry (fingers, palm, TCP) as used by the planner.
        grip_force: closing force limit, N.
    """

    def __init__(self, cell, gripper: GripperGeometry, grip_force: float) -> None:
        import mujoco  # noqa: PLC0415 - only the physical benchmark needs MuJoCo

        from litedet_ros.sim.objects import add_object  # noqa: PLC0415

        self._mujoco = mujoco
        self.gripper = gripper
        spec = mujoco.MjSpec()
        spec.option.timestep = 0.002
        spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        spec.option.impratio = 10
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        world = spec.worldbody
        world.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.1])
        bin_geometry = workcell_bin(cell.layout)
        origin = bin_geometry.pose[:3, 3]
        t = bin_geometry.wall_thickness
        world.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(origin - [0, 0, t / 2]),
                       size=[bin_geometry.size_x / 2 + t, bin_geometry.size_y / 2 + t, t / 2])
        for centre, half in bin_geometry.wall_boxes:
            world.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(origin + centre),
                           size=list(half))
        self.bodies = []
        for state, instance in zip(cell.object_states(), cell.objects):
            quaternion = np.zeros(4)
            mujoco.mju_mat2Quat(quaternion, state.pose[:3, :3].ravel())
            add_object(spec, instance, state.pose[:3, 3], quaternion)
            self.bodies.append(instance.body_name)
        # A mocap target drags the free hand through a stiff weld, so that the hand has a real
        # velocity and friction can carry the part (a teleported mocap body has none).
        world.add_body(name='target', mocap=True)
        hand = world.add_body(name='hand', gravcomp=1.0)
        hand.add_freejoint(name='hand_joint')
        g = gripper
        palm_z = g.tcp_to_tip - g.finger_length - g.palm_height / 2
        hand.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, palm_z], mass=0.8,
                      size=[g.palm_width / 2, g.palm_length / 2, g.palm_height / 2])
        root = g.tcp_to_tip - g.finger_length
        for name, side in (('left', 1), ('right', -1)):
            finger = hand.add_body(name=f'{name}_finger', pos=[0, 0, root])
            finger.add_joint(name=f'{name}_slide', type=mujoco.mjtJoint.mjJNT_SLIDE,
                             axis=[0, side, 0], range=[0, g.stroke / 2 + 0.002], armature=0.01)
            finger.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, mass=0.05,
                            pos=[0, side * g.finger_thickness / 2, g.finger_length / 2],
                            size=[g.finger_width / 2, g.finger_thickness / 2,
                                  g.finger_length / 2],
                            condim=4, friction=[1.0, 0.005, 0.0001], priority=1,
                            solref=[0.004, 1.0], solimp=[0.95, 0.99, 0.001, 0.5, 2.0])
        spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1='right_slide', name2='left_slide',
                          solref=[0.004, 1.0])
        weld = spec.add_equality(type=mujoco.mjtEq.mjEQ_WELD, name1='hand', name2='target',
                                 objtype=mujoco.mjtObj.mjOBJ_BODY, solref=[0.01, 1.0])
        weld.data[:11] = [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]  # anchor, identity relpose, torque
        actuator = spec.add_actuator(name='jaw', target='left_slide',
                                     trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.set_to_position(kp=3000.0, kv=60.0)
        actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.forcerange = [-grip_force, grip_force]
        self.model = spec.compile()
        self._object_ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, b)
                            for b in self.bodies]
        self._slides = [self.model.jnt_qposadr[mujoco.mj_name2id(
            self.model, mujoco.mjtObj.mjOBJ_JOINT, f'{n}_slide')] for n in ('left', 'right')]
        self._hand_qpos = self.model.jnt_qposadr[mujoco.mj_name2id(
            self.model, mujoco.mjtObj.mjOBJ_JOINT, 'hand_joint')]

    def attempt(self, grasp: Grasp) -> int | None:
        """Execute one grasp from a fresh copy of the scene.

        Returns:
            Index (into the cell's objects) of the object held ``SUCCESS_RISE`` higher after
            the lift and hold, or None when nothing was held.
        """
        mujoco = self._mujoco
        model = self.model
        data = mujoco.MjData(model)
        approach = grasp.approach
        quaternion = np.zeros(4)
        mujoco.mju_mat2Quat(quaternion, grasp.pose[:3, :3].ravel())
        start = grasp.position - self.gripper.approach_distance * approach
        half_open = min(grasp.width, self.gripper.stroke) / 2
        data.qpos[self._slides] = half_open
        data.ctrl[0] = half_open
        data.mocap_quat[0] = quaternion
        data.mocap_pos[0] = start
        data.qpos[self._hand_qpos:self._hand_qpos + 7] = [*start, *quaternion]
        mujoco.mj_forward(model, data)
        start_heights = data.xipos[self._object_ids, 2].copy()
        dt = model.opt.timestep

        def move(target: np.ndarray, duration: float, jaw: float | None = None) -> None:
            origin, jaw0 = data.mocap_pos[0].copy(), data.ctrl[0]
            steps = int(round(duration / dt))
            for k in range(1, steps + 1):
                s = k / steps
                data.mocap_pos[0] = origin + s * (target - origin)
                if jaw is not None:
                    data.ctrl[0] = jaw0 + s * (jaw - jaw0)
                mujoco.mj_step(model, data)

        move(grasp.position, 0.5)
        move(grasp.position, 0.6, jaw=0.0)
        move(grasp.position, 0.2)
        move(grasp.position + [0.0, 0.0, LIFT_HEIGHT], 1.0)
        move(data.mocap_pos[0].copy(), HOLD_TIME)
        rise = data.xipos[self._object_ids, 2] - start_heights
        best = int(np.argmax(rise)) if len(rise) else -1
        return best if best >= 0 and rise[best] >= SUCCESS_RISE else None


def true_narrow_axis(cell, k: int, approach: np.ndarray) -> np.ndarray | None:
    """Object ``k``'s true narrow axis across ``approach`` (see :func:`narrow_axis`), or None.

    A ``BOX_LIKE`` object is the bounding box of its (single) geom in the geom's frame; a can
    is its cylinder geom.
    """
    from litedet_ros.sim.objects import OBJECT_CLASSES  # noqa: PLC0415

    cls = OBJECT_CLASSES[cell.objects[k].class_id]
    if cls.name not in BOX_LIKE and cls.shape != 'cylinder':
        return None
    body = cell.model.body(cell.objects[k].body_name).id
    geom = int(np.flatnonzero(cell.model.geom_bodyid == body)[0])
    rotation = cell.data.geom_xmat[geom].reshape(3, 3)
    if cls.name in BOX_LIKE:
        return narrow_axis('box', tuple(2 * cell.model.geom_aabb[geom, 3:]), rotation, approach)
    return narrow_axis(cls.shape, cls.size, rotation, approach)


def object_height_range(cell, k: int) -> tuple[float, float]:
    """World z range (m) of object ``k``'s geoms' bounding boxes (a mesh's may be larger)."""
    model, data = cell.model, cell.data
    body = model.body(cell.objects[k].body_name).id
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    heights = []
    for geom in np.flatnonzero(model.geom_bodyid == body):
        centre, half = model.geom_aabb[geom, :3], model.geom_aabb[geom, 3:]
        corners = (centre + signs * half) @ data.geom_xmat[geom].reshape(3, 3).T
        heights.extend(corners[:, 2] + data.geom_xpos[geom, 2])
    return float(min(heights)), float(max(heights))


def _failure_record(cell, k: int | None, grasp: Grasp, gripper: GripperGeometry,
                    seed: int) -> dict:
    """What a failed attempt looked like: class, approach tilt, opening, finger-tip depth.

    Depths are fractions of the object's height from its top (bounding boxes, see
    :func:`object_height_range`); ``pad_above_com_mm`` is the height of the middle of the pads'
    overlap with the object above its centre of mass.
    """
    tilt = float(np.degrees(np.arccos(np.clip(-grasp.approach[2], -1.0, 1.0))))
    record = {'seed': seed, 'class': None if k is None else cell.objects[k].label,
              'tilt_deg': round(tilt, 1), 'width_mm': round(grasp.width * 1e3, 1),
              'stroke_left_mm': round((gripper.stroke - grasp.width) * 1e3, 1)}
    if k is not None:
        bottom, top = object_height_range(cell, k)
        tip = (grasp.position + gripper.tcp_to_tip * grasp.approach)[2]
        pad_centre = tip + 0.5 * min(gripper.finger_length, top - tip) * -grasp.approach[2]
        com = float(cell.data.xipos[cell.model.body(cell.objects[k].body_name).id][2])
        record.update(height_mm=round((top - bottom) * 1e3, 1),
                      tip_depth_fraction=round((top - tip) / max(top - bottom, 1e-6), 2),
                      com_fraction=round((top - com) / max(top - bottom, 1e-6), 2),
                      pad_above_com_mm=round((pad_centre - com) * 1e3, 1))
    return record


def _best_per_detection(result: PlanResult) -> dict[int, Grasp]:
    best: dict[int, Grasp] = {}
    for grasp in result.grasps:
        best.setdefault(grasp.detection_index, grasp)
    return best


def run_benchmark(scenes: int, objects: int, boxes: str = 'gt', detector_path: str = '',
                  physical: bool = True, latency_repeats: int = 30,
                  log=print) -> dict:
    """Run the benchmark and return its figures (see the module docstring).

    Args:
        scenes: held-out scenes to evaluate.
        objects: objects per scene (1-25).
        boxes: ``'gt'`` (simulated segmentation) or ``'detector'``.
        detector_path: ONNX model for ``boxes='detector'``.
        physical: run the free-gripper physical trials.
        latency_repeats: planner runs per latency measurement.
        log: progress printer.
    """
    os.environ.setdefault('MUJOCO_GL', 'egl')
    import mujoco  # noqa: PLC0415

    from litedet_ros.sim.dataset import silhouette_pixels  # noqa: PLC0415
    from litedet_ros.sim.workcell import Workcell  # noqa: PLC0415

    detector = None
    if boxes == 'detector':
        from litedet_ros.detection.detector import Detector  # noqa: PLC0415

        detector = Detector.from_files(detector_path)
    cell = Workcell(seed=HELD_OUT_SEED, num_objects=objects)
    intr = cell.config.intrinsics
    camera = intr
    # every detection's best grasp is scored, so every detection is planned, and only
    # detections (no parts found in depth: the figures are per detection)
    config = PlannerConfig(bin=workcell_bin(cell.layout), objects_per_image=0,
                           undetected_parts=False)
    planner = GraspPlanner(config)
    amodal = mujoco.Renderer(cell.model, intr.height // 4, intr.width // 4)
    centre_errors, axis_errors, latencies = [], [], []
    drops: Counter = Counter()
    per_class: dict[str, Counter] = {}
    detected = planned = attempts = successes = intended = empty_scenes = 0
    failures: list[dict] = []
    for scene in range(scenes):
        seed = HELD_OUT_SEED + scene
        cell.reset(seed=seed, num_objects=objects)
        frame = cell.capture()
        amodal.close()
        amodal = mujoco.Renderer(cell.model, intr.height // 4, intr.width // 4)
        exposed = frame.visible_pixels >= EXPOSED_FRACTION * silhouette_pixels(cell, amodal)
        depth = decode_depth(frame.depth, '32FC1')
        pose = cell.camera_pose()
        visible = np.flatnonzero(frame.visible_pixels > 0)
        if detector is None:
            n = len(visible)
            detections = Detections(frame.boxes[visible], np.ones(n), np.zeros(n),
                                    ('part',) * n, (intr.width, intr.height))
            target = {i: int(k) for i, k in enumerate(visible)}
        else:
            detections, _ = detector.detect(frame.rgb)
            target = {}
            for i, box in enumerate(detections.boxes):
                ious = [box_iou(box, frame.boxes[k]) for k in visible]
                if ious and max(ious) >= 0.5:
                    target[i] = int(visible[int(np.argmax(ious))])
        t0 = time.perf_counter()
        result = planner.plan(depth, camera, detections, pose, 'base_link')
        latencies.append((time.perf_counter() - t0) * 1e3)
        drops.update(result.drops)
        best = _best_per_detection(result)
        detected += len(detections)
        planned += len(best)
        empty_scenes += not best
        for index, grasp in best.items():
            k = target.get(index)
            if k is None or not exposed[k]:
                continue
            model_body = mujoco.mj_name2id(cell.model, mujoco.mjtObj.mjOBJ_BODY,
                                           cell.objects[k].body_name)
            com = cell.data.xipos[model_body]
            offset = grasp.position - com
            offset -= (offset @ grasp.approach) * grasp.approach
            centre_errors.append(float(np.linalg.norm(offset)) * 1e3)
            axis = true_narrow_axis(cell, k, grasp.approach)
            if axis is not None:
                axis_errors.append(_line_angle_deg(grasp.pose[:3, 1], axis))
        if physical and best:
            free = FreeGripper(cell, config.gripper, cell.config.grip_force)
            for index, grasp in best.items():
                held = free.attempt(grasp)
                attempts += 1
                if held is None:
                    failures.append(_failure_record(cell, target.get(index), grasp,
                                                    config.gripper, seed))
                successes += held is not None
                intended += held is not None and held == target.get(index)
                if index in target:
                    tally = per_class.setdefault(cell.objects[target[index]].label, Counter())
                    tally['attempts'] += 1
                    tally['successes'] += held is not None
        log(f'scene {scene + 1}/{scenes} (seed {seed}): {len(detections)} boxes, '
            f'{len(best)} planned, success {successes}/{attempts}')
    amodal.close()
    report = {
        'boxes': boxes, 'scenes': scenes, 'objects_per_scene': objects,
        'held_out_seeds': [HELD_OUT_SEED, HELD_OUT_SEED + scenes - 1],
        'detections': detected, 'planned_objects': planned,
        'planned_fraction': planned / detected if detected else None,
        'drops': dict(drops),
        'scenes_without_grasp': empty_scenes,
        'attempts': attempts, 'successes': successes,
        'success_rate': successes / attempts if attempts else None,
        'intended_object_rate': intended / attempts if attempts else None,
        'per_class': {label: dict(tally) for label, tally in sorted(per_class.items())},
        'exposed_evaluated': len(centre_errors),
        'center_error_mm_median': _percentile(centre_errors, 50),
        'center_error_mm_p90': _percentile(centre_errors, 90),
        'axis_evaluated': len(axis_errors),
        'axis_error_deg_median': _percentile(axis_errors, 50),
        'axis_error_deg_p90': _percentile(axis_errors, 90),
        'scene_plan_ms_median': _percentile(latencies, 50),
        'failures': failures,
    }
    report.update(measure_latency(cell, PlannerConfig(bin=config.bin), camera,
                                  latency_repeats))
    return report


def _latency_frame(cell, camera: PinholeCamera, seed: int, objects: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Depth (m) and the visible objects' boxes, most visible first, of one held-out bin."""
    cell.reset(seed=seed, num_objects=objects)
    frame = cell.capture()
    visible = np.flatnonzero(frame.visible_pixels > 0)
    order = visible[np.argsort(-frame.visible_pixels[visible])]
    return decode_depth(frame.depth, '32FC1'), frame.boxes[order]


def _time_planner(planner: GraspPlanner, depth: np.ndarray, camera: PinholeCamera,
                  detections: Detections, pose: np.ndarray, repeats: int, suffix: str
                  ) -> dict[str, float]:
    times, cpu_times = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = planner.plan(depth, camera, detections, pose)
        times.append((time.perf_counter() - t0) * 1e3)
        cpu_times.append((time.process_time() - c0) * 1e3)
    return {f'p50_ms_{suffix}': float(np.percentile(times, 50)),
            f'p99_ms_{suffix}': float(np.percentile(times, 99)),
            f'cpu_p50_ms_{suffix}': float(np.percentile(cpu_times, 50)),
            f'grasps_{suffix}': len(result.grasps), f'boxes_{suffix}': len(detections)}


def measure_latency(cell, config: PlannerConfig, camera: PinholeCamera,
                    repeats: int) -> dict[str, float]:
    """Planner and node latency on held-out bins, milliseconds.

    Planner wall-clock p50/p99 and process CPU time p50 (the wall clock of a shared machine
    includes waiting for a core), with the number of grasps planned: for 1, 10 and 25 boxes of
    a 25-object bin (suffixes ``1``, ``10``, ``25``; its objects mostly lie too high for a
    grasp), and for the 10 most visible boxes of the first 12-object bin of the physical trial
    (suffix ``10_scene``); each with ``config`` and, side by side, with every object planned
    (``objects_per_image`` 0, suffix ``_all``). With rclpy installed, the grasp planner node's
    frame -> grasps latency on that frame over real DDS (``node_p50_ms_10``,
    ``node_p99_ms_10``; see :func:`litedet_ros.grasp_planner_node.frame_to_grasps_latency`).
    """
    pose = cell.camera_pose()
    planners = {'': GraspPlanner(config),
                '_all': GraspPlanner(replace(config, objects_per_image=0))}
    frames = []
    depth, boxes = _latency_frame(cell, camera, HELD_OUT_SEED - 1, 25)
    for count in (1, 10, 25):
        chosen = boxes[:count]
        frames.append((depth, Detections(chosen, np.ones(len(chosen)), np.zeros(len(chosen)),
                                         ('part',) * len(chosen), (camera.width, camera.height)),
                       str(count)))
    depth, boxes = _latency_frame(cell, camera, HELD_OUT_SEED, 12)
    chosen = boxes[:10]
    detections = Detections(chosen, np.ones(len(chosen)), np.zeros(len(chosen)),
                            ('part',) * len(chosen), (camera.width, camera.height), 0,
                            'camera_color_optical_frame')
    frames.append((depth, detections, '10_scene'))
    figures = {}
    for frame_depth, frame_detections, name in frames:
        for suffix, planner in planners.items():
            figures.update(_time_planner(planner, frame_depth, camera, frame_detections, pose,
                                         repeats, name + suffix))
    figures.update(_node_latency(cell, depth, camera, detections, config,
                                 max(repeats, NODE_LATENCY_FRAMES)))
    return figures


def _node_latency(cell, depth: np.ndarray, camera: PinholeCamera, detections: Detections,
                  config: PlannerConfig, repeats: int) -> dict[str, float | None]:
    try:
        from litedet_ros.grasp_planner_node import frame_to_grasps_latency  # noqa: PLC0415
    except ImportError:  # no rclpy: the core's figures only
        return {'node_p50_ms_10': None, 'node_p99_ms_10': None}
    bin_geometry = config.bin
    parameters = {  # the camera pose: the robot description's, as in the simulation
        'use_tf': False,
        'bin_pose': [*bin_geometry.pose[:3, 3], 0.0],
        'bin_size': [bin_geometry.size_x, bin_geometry.size_y],
        'bin_wall_height': bin_geometry.wall_height,
        'bin_wall_thickness': bin_geometry.wall_thickness}
    latencies = frame_to_grasps_latency(depth, camera, detections, parameters, repeats,
                                        domain_id=100 + os.getpid() % 100)
    return {'node_p50_ms_10': float(np.percentile(latencies, 50)),
            'node_p99_ms_10': float(np.percentile(latencies, 99))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``litedet-ros bench grasp``."""
    parser.add_argument('--json', metavar='FILE', help='write the figures to this JSON file')
    parser.add_argument('--scenes', type=int, default=20, help='held-out bins (default 20)')
    parser.add_argument('--objects', type=int, default=12, help='objects per bin (1-25)')
    parser.add_argument('--boxes', choices=('gt', 'detector'), default='gt',
                        help='boxes from the simulated segmentation or from a detector')
    parser.add_argument('--model', default='', help='detector ONNX model for --boxes detector')
    parser.add_argument('--no-physics', action='store_true',
                        help='skip the free-gripper physical trials')
    parser.add_argument('--latency-repeats', type=int, default=30)


def run(args: argparse.Namespace) -> int:
    """Run ``litedet-ros bench grasp``; print the figures; return the exit code."""
    if args.boxes == 'detector' and not args.model:
        print('--boxes detector needs --model MODEL.onnx')
        return 2
    report = run_benchmark(args.scenes, args.objects, args.boxes, args.model,
                           not args.no_physics, args.latency_repeats)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + '\n')
    return 0
