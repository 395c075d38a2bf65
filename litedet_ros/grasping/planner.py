"""Grasp planner: detections + aligned depth -> ranked, collision-free 6-DOF grasps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
import heapq

import numba
import numpy as np

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.detection.types import Detections
from litedet_ros.errors import InvalidImageError, InvalidMessageError
from litedet_ros.grasping.candidates import generate_candidates
from litedet_ros.grasping.collision import (
    finger_tip_corners,
    points_clearances,
    swept_collisions,
    wall_clearances,
)
from litedet_ros.grasping.config import PlannerConfig
from litedet_ros.grasping.estimation import ObjectEstimate, estimate_object, percentile
from litedet_ros.grasping.push import plan_pushes
from litedet_ros.grasping.rims import rim_sections
from litedet_ros.grasping.scene import SceneCloud
from litedet_ros.grasping.segmentation import GraspDropError, object_points
from litedet_ros.grasping.types import Grasp, Push
from litedet_ros.grasping.undetected import undetected_boxes

#: Collision-free candidates whose clearances are measured together, in the order of their score
#: bound; the batch doubles after a batch that all collides (a buried object's candidates mostly
#: all collide).
CLEARANCE_BATCH = 8


@dataclass(frozen=True)
class PlanResult:
    """Output of :meth:`GraspPlanner.plan` for one image.

    Attributes:
        grasps: collision-free grasps of the planned parts, best first; those of undetected
            parts have ``detection_index`` -1 and their depth box.
        objects: one estimate per detection, then one per undetected part; None where the part
            was dropped.
        drops: parts that yielded no grasp, counted by reason (``outranked``: not planned, as
            ``objects_per_image`` others have better grasps); undetected parts under
            ``undetected_`` + reason.
        pushes: when parts were seen but none has a grasp, pushes that may free one, best
            first (see :func:`~.push.plan_pushes`); else empty.
        undetected: boxes ``(x1, y1, x2, y2)`` (pixels) of the parts found in depth outside
            every detection (:func:`~.undetected.undetected_boxes`): looked for only when no
            detected part has a grasp.
    """

    grasps: tuple[Grasp, ...]
    objects: tuple[ObjectEstimate | None, ...]
    drops: Counter
    pushes: tuple[Push, ...] = ()
    undetected: tuple[tuple[float, float, float, float], ...] = ()


@dataclass
class _Look:
    """One image's planning under way.

    Its inputs, and what :meth:`GraspPlanner._plan_parts` found so far: per part index, the
    estimates and drop reasons; the grasps as (score, pose, width, part index).
    """

    depth: np.ndarray
    camera: PinholeCamera
    transform: np.ndarray
    scene: SceneCloud
    floor: float
    pile_top: float
    objects: list[ObjectEstimate | None] = field(default_factory=list)
    scored: list[tuple[float, np.ndarray, float, int]] = field(default_factory=list)
    drops: Counter = field(default_factory=Counter)
    reasons: dict[int, str] = field(default_factory=dict)


@numba.njit('float64[:, :](float64[:, :], float64[:], float64[:], float64, float64, float64)',
            cache=True)
def _cylinder_points(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, radius: float,
                     back: float, front: float) -> np.ndarray:
    """The points of a capped cylinder, compiled (one pass over the points).

    The cylinder: within ``radius`` of ``axis`` (unit) through ``centre``, from ``back`` behind
    to ``front`` ahead of ``centre`` along it, m. NaN points are outside.
    """
    kept = np.empty(len(points), dtype=np.bool_)
    for i in range(len(points)):
        dx, dy, dz = points[i, 0] - centre[0], points[i, 1] - centre[1], points[i, 2] - centre[2]
        along = dx * axis[0] + dy * axis[1] + dz * axis[2]
        kept[i] = (dx * dx + dy * dy + dz * dz - along * along <= radius * radius
                   and -back <= along <= front)
    return points[kept]


def check_transform(transform: np.ndarray) -> np.ndarray:
    """Return ``transform`` as ``float64[4, 4]`` if it is a finite rigid transform.

    Raises:
        InvalidMessageError: wrong shape, NaN/inf, or a rotation block that is not a rotation.
    """
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape != (4, 4) or not np.isfinite(transform).all():
        raise InvalidMessageError('planning <- camera transform must be a finite 4x4 matrix')
    rotation = transform[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) or \
            np.linalg.det(rotation) <= 0 or not np.allclose(transform[3], [0, 0, 0, 1]):
        raise InvalidMessageError('planning <- camera transform is not rigid')
    return transform


class GraspPlanner:
    """Plan parallel-jaw grasps for detected objects from aligned depth, without object models.

    Per detection: object points inside the box (bin floor and walls removed, nearest coherent
    surface kept), a shape estimate, candidates from straight-down and surface-normal approaches
    (see :func:`~.candidates.generate_candidates`), then collision checks of the fingers' and
    palm's swept volumes against the depth scene, and their clearances from it and the bin
    walls measured in the order of an upper bound of the score so that only the promising
    candidates are measured; objects likewise go
    in the order of their bound, and once ``objects_per_image`` have grasps, objects that cannot
    beat them are skipped. The score in
    ``[0, 1]`` is the weighted mean of: top of the pile, free space around the fingers, surface
    flatness, grasp centrality, approach verticality, a small opening and a closing axis along
    the measured narrow axis. When no detected part has a grasp, the parts standing in the bin
    outside every detection box (``undetected_parts``) are planned the same way.
    """

    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        weights = self.config.weights.as_array()
        self._weights = weights / weights.sum()
        if self.config.bin is not None:
            self._bin_from_planning = np.linalg.inv(self.config.bin.pose)

    def plan(self, depth: np.ndarray, camera: PinholeCamera, detections: Detections,
             planning_from_camera: np.ndarray, frame_id: str = 'base_link') -> PlanResult:
        """Plan ranked grasps for every detection of one image (and undetected parts).

        Args:
            depth: ``float32[H, W]`` depth aligned to the colour image the detections come
                from, metres along the optical axis, NaN where invalid (see
                :func:`~.camera.decode_depth`).
            camera: intrinsics of ``depth`` (and of the colour image).
            detections: boxes in pixels of the same image size.
            planning_from_camera: ``float64[4, 4]`` planning <- camera optical transform at the
                image's stamp.
            frame_id: name of the planning frame, copied into the grasps.

        Returns:
            Grasps sorted by score (best first), at most ``candidates_per_object`` per
            detection and ``max_grasps`` in all: those of the ``objects_per_image`` objects
            with the best grasps, exactly, and of any object planned before they were known.

        Raises:
            InvalidImageError: depth is not a 2D float image, or its size differs from the
                detections' image size.
            InvalidCameraInfoError: the camera model does not match the depth image size.
            InvalidMessageError: the transform is not a finite rigid transform.
        """
        depth = np.asarray(depth)
        if depth.ndim != 2 or depth.dtype.kind != 'f':
            raise InvalidImageError(f'depth must be a 2D float image, got {depth.dtype} '
                                    f'{depth.shape}')
        camera.check_image(depth)
        if tuple(detections.image_size) != (depth.shape[1], depth.shape[0]):
            raise InvalidImageError(
                f'detections are for a {detections.image_size[0]}x{detections.image_size[1]} '
                f'image but depth is {depth.shape[1]}x{depth.shape[0]}')
        transform = check_transform(planning_from_camera)
        boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
        detected = len(boxes)
        # missed parts are told from the floor and the walls by the bin
        look_for_missed = self.config.undetected_parts and self.config.bin is not None
        if not detected and not look_for_missed:
            return PlanResult((), (), Counter())
        scene = SceneCloud.from_depth(depth, camera, transform, self.config.scene_stride,
                                      self.config.bin, self.config.floor_margin)
        look = _Look(depth, camera, transform, scene, *self._height_range(scene.points))
        self._plan_parts(look, boxes)
        undetected = np.zeros((0, 4))
        if not look.scored and look_for_missed:
            undetected = undetected_boxes(scene, boxes, self.config)
            self._plan_parts(look, undetected, drop_prefix='undetected_')
        boxes = np.concatenate([boxes, undetected])

        def source(index: int) -> int:  # parts found in depth only have no detection
            return index if index < detected else -1

        look.scored.sort(key=lambda item: -item[0])
        grasps = tuple(
            Grasp(pose=pose, width=width, score=score, detection_index=source(index),
                  frame_id=frame_id, stamp_ns=detections.stamp_ns, box=tuple(boxes[index]))
            for score, pose, width, index in look.scored[:self.config.max_grasps])
        pushes = () if grasps else tuple(
            replace(push, detection_index=source(push.detection_index))
            for push in plan_pushes([o for o in look.objects if o is not None], look.reasons,
                                    scene, self.config, frame_id, detections.stamp_ns))
        return PlanResult(grasps, tuple(look.objects), look.drops, pushes,
                          tuple(tuple(map(float, box)) for box in undetected))

    def _plan_parts(self, look: _Look, boxes: np.ndarray, drop_prefix: str = '') -> None:
        """Plan the parts in ``boxes`` into ``look``, best bound first, skipping the outranked.

        Per part: the bound of its score (the terms known before its candidates at their best),
        then parts in the order of that bound until ``objects_per_image`` have grasps that no
        further part can beat. The parts take the indices that follow ``look.objects``.

        Args:
            look: the image's planning so far; its objects, grasps, drops and reasons grow.
            boxes: ``float[N, 4]`` boxes of the parts, pixels.
            drop_prefix: put before the reasons the parts are counted under in ``look.drops``.
        """
        floor, pile_top = look.floor, look.pile_top
        w_top, _, w_flat = self._weights[:3]
        queue = []
        for box in boxes:
            index = len(look.objects)
            look.objects.append(None)
            try:
                points, neighbours = object_points(look.depth, look.camera, box, look.transform,
                                                   self.config)
                estimate = estimate_object(points, look.transform[:3, 3],
                                           np.asarray(self.config.up), index)
            except GraspDropError as error:
                look.drops[drop_prefix + error.reason] += 1
                continue
            look.objects[index] = estimate
            top = float(np.clip((estimate.top_height - floor) / max(pile_top - floor, 1e-3),
                                0.0, 1.0))
            bound = 1.0 - w_top * (1.0 - top) - w_flat * (1.0 - estimate.flatness)
            queue.append((bound, index, top, neighbours))
        queue.sort(key=lambda item: -item[0])
        kept = self.config.objects_per_image
        best_of_objects: list[float] = []  # min-heap of the kept objects' best scores
        for bound, index, top, neighbours in queue:
            limit = best_of_objects[0] if kept and len(best_of_objects) == kept else -np.inf
            if bound <= limit:
                look.drops[drop_prefix + 'outranked'] += 1
                continue
            try:
                found = self._grasps_of(look.objects[index], look.scene, top, neighbours, limit)
            except GraspDropError as error:
                look.drops[drop_prefix + error.reason] += 1
                look.reasons[index] = error.reason
                continue
            if not found:
                look.drops[drop_prefix + 'outranked'] += 1
                continue
            look.scored.extend((score, pose, width, index) for score, pose, width in found)
            if kept:
                heapq.heappush(best_of_objects, found[0][0])
                if len(best_of_objects) > kept:
                    heapq.heappop(best_of_objects)

    def _height_range(self, scene: np.ndarray) -> tuple[float, float]:
        """Floor height and the top of the pile along the up axis, metres."""
        up = np.asarray(self.config.up)
        heights = scene @ up if len(scene) else np.zeros(1)
        bin_geometry = self.config.bin
        if bin_geometry is None:
            floor = percentile(heights, 1)
        else:
            floor = float(bin_geometry.pose[:3, 3] @ up)
            inside = bin_geometry.interior_mask(scene, self.config.wall_margin,
                                                self.config.floor_margin)
            heights = heights[inside] if inside.any() else np.array([floor])
        return floor, percentile(heights, 99.5)

    def _grasps_of(self, estimate: ObjectEstimate, scene: SceneCloud, top: float,
                   neighbours: np.ndarray, limit: float
                   ) -> list[tuple[float, np.ndarray, float]]:
        """The best grasps of one object, trying more only where all others are refused.

        First the primary yaw offsets; when all of those collide, the fallback yaw offsets;
        when still none is found and ``rim_grasps`` is on, grasps across the rim of a hole
        (:mod:`~.rims`).

        Raises:
            GraspDropError: as :meth:`_best_grasps` with the primary yaw offsets.
        """
        try:
            return self._best_grasps(estimate, scene, top, neighbours, limit, fallback=True)
        except GraspDropError as error:
            first_error = error
        found: list[tuple[float, np.ndarray, float]] = []
        outranked = False  # a section had free grasps, none above the limit
        up = np.asarray(self.config.up)
        sections = rim_sections(estimate, up, self.config.grasp_depth) \
            if self.config.rim_grasps else []
        for section in sections:
            try:
                best = self._best_grasps(section, scene, top, neighbours, limit)
            except GraspDropError:
                continue
            found += best
            outranked = outranked or not best
        if not found and not outranked:
            raise first_error
        found.sort(key=lambda item: -item[0])
        return found[:self.config.candidates_per_object]

    def _best_grasps(self, estimate: ObjectEstimate, scene: SceneCloud, top: float,
                     neighbours: np.ndarray, limit: float, fallback: bool = False
                     ) -> list[tuple[float, np.ndarray, float]]:
        """Check candidates in the order of their score bound; keep the best collision-free ones.

        The obstacles are the scene cloud near the candidates plus ``neighbours`` (``float[M,
        3]``: the box's other surfaces at its finer sampling, so that a thin rim of a part
        showing around the object is not missed between the scene cloud's samples).
        Candidates whose bound does not exceed ``limit`` are not checked. With ``fallback``,
        the candidates of the fallback yaw offsets are generated and swept with the primary
        ones (one pass costs less than two), and ranked only if every primary one collides.

        Returns:
            Up to ``candidates_per_object`` (score, pose, width), best first; empty when no
            candidate above ``limit`` is free.

        Raises:
            GraspDropError: no kinematically valid primary candidate (reason: most frequent
                rejection) or all candidates collide (``all_colliding``).
        """
        config = self.config
        candidates, rejected = generate_candidates(estimate, config, fallback)
        fallbacks = candidates.fallback
        if fallbacks.all():
            reason = rejected.most_common(1)[0][0] if rejected else 'no_candidates'
            raise GraspDropError(reason, f'no candidate grasp ({dict(rejected)})')
        w_top, w_exposed, w_flat, w_central, w_vertical, w_narrow, w_aligned = self._weights
        base = w_top * top + w_flat * estimate.flatness + w_exposed
        poses, widths = candidates.poses, candidates.widths
        bounds = (base + w_central * candidates.central + w_vertical * candidates.vertical
                  + w_narrow * (1 - widths / config.gripper.stroke)
                  + w_aligned * candidates.aligned)
        local = {approach: self._local_scene(scene, poses[candidates.approach == approach])
                 for approach in range(len(candidates.kinds))}
        scene_points = np.concatenate([*local.values(), neighbours])
        # every candidate above the limit at once (cheap: see swept_collisions); clearances
        # only as needed
        collides = np.zeros(len(candidates), dtype=bool)
        for approach, points in local.items():
            mine = (candidates.approach == approach) & (bounds > limit)
            if not mine.any():
                continue
            collides[mine] = swept_collisions(np.concatenate([points, neighbours]), poses[mine],
                                              widths[mine], config.gripper)
        for tier in (False, True):
            members = np.flatnonzero(fallbacks == tier)
            if not len(members):
                break
            order = members[np.argsort(-bounds[members], kind='stable')]
            best, exhausted = self._rank_free(order, bounds, collides, poses, widths,
                                              scene_points, limit)
            if best or not exhausted:
                return best
        raise GraspDropError('all_colliding',
                             f'all {len(candidates) - fallbacks.sum()} candidates collide')

    def _rank_free(self, order: np.ndarray, bounds: np.ndarray, collides: np.ndarray,
                   poses: np.ndarray, widths: np.ndarray, scene_points: np.ndarray,
                   limit: float) -> tuple[list[tuple[float, np.ndarray, float]], bool]:
        """The best free candidates, clearances measured a batch at a time in ``order``.

        Stops once no further candidate can beat the kept ones or reach above ``limit``.

        Returns:
            ``(best, exhausted)``: up to ``candidates_per_object`` (score, pose, width), best
            first, and whether every candidate in ``order`` was looked at.
        """
        w_exposed, scale = self._weights[1], self.config.clearance_scale
        kept = self.config.candidates_per_object
        best: list[tuple[float, int, int]] = []  # min-heap of (score, -rank, candidate)
        rank = 0  # among the collision-free candidates, in the order of their bound
        start, size = 0, CLEARANCE_BATCH
        while start < len(order):
            chunk = order[start:start + size]
            if bounds[chunk[0]] <= limit:
                break
            start += size
            if len(best) == kept and best[0][0] >= bounds[chunk[0]]:
                break
            chunk = chunk[~collides[chunk]]
            if not len(chunk):
                size *= 2
                continue
            clearances = self._clearances(poses[chunk], widths[chunk], scene_points)
            for i, clearance in zip(chunk, clearances):
                rank += 1
                if clearance <= 0:
                    continue
                score = bounds[i] - w_exposed * (1 - min(clearance / scale, 1))
                item = (float(score), -rank, int(i))
                if len(best) < kept:
                    heapq.heappush(best, item)
                elif item > best[0]:
                    heapq.heapreplace(best, item)
        ranked = sorted(best, reverse=True)
        return [(score, poses[i], float(widths[i])) for score, _, i in ranked], \
            start >= len(order)

    def _local_scene(self, scene: SceneCloud, poses: np.ndarray) -> np.ndarray:
        """Scene points within ``clearance_scale`` of the swept volumes of grasps.

        The volumes lie in a cylinder along the approach around the grasps' centres, from
        the palm's far end to the finger tips.

        Args:
            scene: the depth scene.
            poses: ``float64[K, 4, 4]`` planning <- tool transforms of grasps sharing one
                approach direction.

        Returns:
            ``float64[M, 3]`` scene points, planning frame.
        """
        gripper = self.config.gripper
        approach = poses[0, :3, 2]
        centres = poses[:, :3, 3]
        axis_point = centres.mean(axis=0)
        margin = self.config.clearance_scale
        radius = (np.linalg.norm(centres - axis_point, axis=1).max() + margin
                  + np.hypot(max(gripper.palm_width, gripper.finger_width,
                                 gripper.coupling_diameter) / 2,
                             max(gripper.palm_length / 2, gripper.coupling_diameter / 2,
                                 gripper.stroke / 2 + gripper.finger_thickness)))
        back = (gripper.finger_length + gripper.palm_height + gripper.coupling_height
                + gripper.approach_distance - gripper.tcp_to_tip + margin)
        tips = float(((centres - axis_point) @ approach).max()) + gripper.tcp_to_tip + margin
        ends = axis_point + np.outer([-back, tips], approach)
        # the box around the cylinder holds it: the points under its footprint go straight to
        # the cylinder test
        window = scene.window(ends.min(axis=0) - radius, ends.max(axis=0) + radius)
        return _cylinder_points(window, axis_point, approach, radius, back, tips)

    def _clearances(self, poses: np.ndarray, widths: np.ndarray, scene: np.ndarray
                    ) -> np.ndarray:
        """Free distance (up to ``clearance_scale``) around each swept volume, 0 on collision.

        Measured to the scene points and the bin walls and floor, metres; nearer than
        ``part_clearance`` to a scene point, ``wall_clearance`` to a wall or ``bin_clearance`` to
        the floor counts as a collision.

        Args:
            poses: ``float64[K, 4, 4]`` planning <- tool transforms of grasps.
            widths: ``float64[K]`` finger openings, m.
            scene: ``float64[N, 3]`` scene points, planning frame.

        Returns:
            ``float64[K]`` clearances, m.
        """
        gripper = self.config.gripper
        clearance = points_clearances(scene, poses, widths, gripper, self.config.clearance_scale)
        clearance[clearance < self.config.part_clearance] = 0.0
        bin_geometry = self.config.bin
        if bin_geometry is not None:
            bin_from_tool = self._bin_from_planning @ poses
            tips = (np.einsum('kij,knj->kni', bin_from_tool[:, :3, :3],
                              finger_tip_corners(gripper, widths))
                    + bin_from_tool[:, None, :3, 3])
            clearance[tips[..., 2].min(axis=1) < self.config.bin_clearance] = 0.0
            near = np.flatnonzero(clearance > 0)
            if len(near):
                walls = wall_clearances(bin_geometry, bin_from_tool[near], gripper, widths[near])
                walls[walls < self.config.wall_clearance] = 0.0
                clearance[near] = np.minimum(clearance[near], walls)
        return clearance
