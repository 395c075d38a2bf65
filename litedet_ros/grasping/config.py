"""Frozen, validated configuration of the grasp planner: gripper, bin, score weights, planner."""

from __future__ import annotations

from dataclasses import dataclass, field
import functools

import numpy as np

from litedet_ros.errors import LitedetError


class GraspConfigError(LitedetError):
    """A grasp planner parameter is out of range or inconsistent with another one."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise GraspConfigError(message)


@dataclass(frozen=True)
class GripperGeometry:
    """Parallel-jaw gripper, described in the tool (TCP) frame of :class:`~.types.Grasp`.

    Tool axes: +z approach, +y closing axis, +x = y cross z. The TCP lies on the centre line
    between the finger pads, ``tcp_to_tip`` behind the finger tips. Each finger is a box
    ``finger_width`` (x) by ``finger_thickness`` (y) by ``finger_length`` (z) whose inner face is
    at ``|y| = width / 2``; the palm is a box ``palm_width`` (x) by ``palm_length`` (y, at least
    the opened span) by ``palm_height`` (z) behind the fingers, and behind the palm the coupling
    to the flange, a cylinder modelled by its square bounding box ``coupling_diameter`` (x, y) by
    ``coupling_height`` (z): wider than the palm, it is what meets a bin wall first when the
    hand reaches low beside it. The defaults are the gripper of
    the shipped workcell (``urdf/ur5e_gripper.xacro``, a 2F-85 class gripper) with the stroke
    kept at 85 mm. All lengths in metres.

    Attributes:
        stroke: largest finger opening, m.
        finger_width: finger size along tool x, m.
        finger_thickness: finger size along tool y, m.
        finger_length: finger size along tool z (tips to palm), m.
        tcp_to_tip: distance from the TCP to the finger tips along +z, m.
        palm_width: palm size along tool x, m.
        palm_length: palm size along tool y, m.
        palm_height: palm size along tool z, m.
        coupling_diameter: coupling size along tool x and y, m.
        coupling_height: coupling size along tool z, m.
        approach_distance: straight-line approach from the pre-grasp pose, along +z, m.
        width_margin: added to the measured object extent to get the preferred opening, m
            (both sides); the opening is at most the stroke.
        min_width_margin: objects whose measured extent plus this (m, both sides) exceeds the
            stroke are too wide.
    """

    stroke: float = 0.085
    finger_width: float = 0.022
    finger_thickness: float = 0.012
    finger_length: float = 0.055
    tcp_to_tip: float = 0.02
    palm_width: float = 0.05
    palm_length: float = 0.13
    palm_height: float = 0.06
    coupling_diameter: float = 0.076
    coupling_height: float = 0.03
    approach_distance: float = 0.10
    width_margin: float = 0.02
    min_width_margin: float = 0.01

    def __post_init__(self) -> None:
        for name in ('stroke', 'finger_width', 'finger_thickness', 'finger_length',
                     'palm_width', 'palm_length', 'palm_height', 'coupling_diameter',
                     'coupling_height'):
            value = getattr(self, name)
            _require(np.isfinite(value) and value > 0, f'gripper {name} must be > 0, got {value}')
        for name in ('tcp_to_tip', 'approach_distance', 'width_margin', 'min_width_margin'):
            value = getattr(self, name)
            _require(np.isfinite(value) and value >= 0,
                     f'gripper {name} must be >= 0, got {value}')
        _require(self.tcp_to_tip < self.finger_length,
                 'gripper tcp_to_tip must be shorter than finger_length')
        _require(self.min_width_margin <= self.width_margin < self.stroke,
                 'gripper needs min_width_margin <= width_margin < stroke')


@dataclass(frozen=True, eq=False)
class BinGeometry:
    """An open box in the planning frame; its walls are obstacles, its floor is not an object.

    The bin frame has its origin at the centre of the inner floor, +z up, x and y along the walls.

    Attributes:
        pose: ``float64[4, 4]`` planning <- bin transform, metres.
        size_x: inner length along bin x, m.
        size_y: inner length along bin y, m.
        wall_height: wall height above the inner floor, m.
        wall_thickness: wall thickness, m.
    """

    pose: np.ndarray = field(default_factory=lambda: np.eye(4))
    size_x: float = 0.40
    size_y: float = 0.30
    wall_height: float = 0.12
    wall_thickness: float = 0.01

    def __post_init__(self) -> None:
        pose = np.asarray(self.pose, dtype=np.float64)
        _require(pose.shape == (4, 4) and np.isfinite(pose).all(),
                 'bin pose must be a finite 4x4 matrix')
        rotation = pose[:3, :3]
        _require(np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
                 and np.linalg.det(rotation) > 0, 'bin pose rotation is not a rotation')
        for name in ('size_x', 'size_y', 'wall_height', 'wall_thickness'):
            value = getattr(self, name)
            _require(np.isfinite(value) and value > 0, f'bin {name} must be > 0, got {value}')
        object.__setattr__(self, 'pose', pose)

    def to_bin(self, points: np.ndarray) -> np.ndarray:
        """Express ``float[N, 3]`` planning-frame points in the bin frame (``float64[N, 3]``)."""
        rotation, origin = self.pose[:3, :3], self.pose[:3, 3]
        return (np.asarray(points, dtype=np.float64) - origin) @ rotation

    def interior_mask(self, points: np.ndarray, wall_margin: float,
                      floor_margin: float) -> np.ndarray:
        """Tell which planning-frame points lie inside the bin, off its walls and floor.

        Args:
            points: ``float[N, 3]`` points, planning frame, m.
            wall_margin: distance kept from the inner wall faces, m.
            floor_margin: height kept above the inner floor, m.

        Returns:
            ``bool[N]``, True for points that may belong to objects.
        """
        local = self.to_bin(points)
        return ((np.abs(local[:, 0]) < self.size_x / 2 - wall_margin)
                & (np.abs(local[:, 1]) < self.size_y / 2 - wall_margin)
                & (local[:, 2] > floor_margin))

    @functools.cached_property
    def wall_boxes(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The four walls as ``(centre float64[3], half_extents float64[3])`` in the bin frame."""
        hx, hy, t, h = self.size_x / 2, self.size_y / 2, self.wall_thickness, self.wall_height
        return tuple((np.array(c, dtype=np.float64), np.array(e, dtype=np.float64)) for c, e in (
            ((hx + t / 2, 0.0, h / 2), (t / 2, hy + t, h / 2)),
            ((-hx - t / 2, 0.0, h / 2), (t / 2, hy + t, h / 2)),
            ((0.0, hy + t / 2, h / 2), (hx + t, t / 2, h / 2)),
            ((0.0, -hy - t / 2, h / 2), (hx + t, t / 2, h / 2))))


@dataclass(frozen=True)
class ScoreWeights:
    """Relative weights of the grasp score terms (normalised to sum to one).

    Attributes:
        top: object top height relative to the highest surface in the bin (top of the pile).
        exposed: free space around the fingers' swept volumes.
        flat: planarity of the grasped surface.
        central: closeness of the grasp centre to the object's centre.
        vertical: alignment of the approach with straight down.
        narrow: small opening relative to the stroke (closing across the narrow extent).
        aligned: closing axis along the measured narrow axis (``1 - |yaw offset| / 90 deg``):
            off-axis yaw variants close on a box's edges and slip; they should win only where
            the aligned grasps collide.
    """

    top: float = 0.3
    exposed: float = 0.15
    flat: float = 0.1
    central: float = 0.4
    vertical: float = 0.1
    narrow: float = 0.1
    aligned: float = 1.0

    def __post_init__(self) -> None:
        values = self.as_array()
        _require(np.isfinite(values).all() and (values >= 0).all() and values.sum() > 0,
                 'score weights must be >= 0 and not all zero')

    def as_array(self) -> np.ndarray:
        """Return the ``float64[7]`` weights in field order (top ... aligned)."""
        return np.array([self.top, self.exposed, self.flat, self.central, self.vertical,
                         self.narrow, self.aligned])


@dataclass(frozen=True)
class PlannerConfig:
    """Parameters of :class:`~.planner.GraspPlanner`.

    Attributes:
        gripper: gripper geometry.
        bin: bin in the planning frame, or None when there is no known bin.
        weights: score weights.
        up: ``(3,)`` unit "up" direction of the planning frame (against gravity).
        grasp_depth: depth of the finger tips below the first surface met along the approach,
            m; the shallowest depth tried on flat-topped objects (straight sides hold anywhere).
        grasp_depth_fraction: with a known bin, the preferred tip depth as a fraction of the
            way from the first surface to the floor, as far as the fingers allow; the only depth
            tried on rounded (not flat-topped) objects, whose centre of mass may lie low, and
            whose way ends at the floor or at their estimated underside in a pile, whichever
            is nearer (see :func:`~.candidates.generate_candidates`).
        min_depth_fraction: with a known bin, a rounded object gets no grasp when this
            fraction of the way from its first surface to what it rests on is beyond the
            fingers' reach (it stands tall: the pads would close above its centre of mass and
            it would slip). 0.6: the pads reach a tenth of the way past the middle of its
            height. With the shipped fingers' 4.5 cm of reach, 0.6 takes rounded parts up to
            7.5 cm tall on the floor (cans lying down), 0.75 only up to 6 cm (README, grasp
            planner: 0.6 clears more of the bins at the same success).
        widest_overlap: the finger tips reach at least this far (m) past the object's widest
            visible section across the closing axis (the mean depth of the points at its two
            extremes), so that the pads close below it rather than slipping off a rounded top.
        min_grasp_depth: shallowest acceptable finger-tip depth once the floor clearance is
            kept, m.
        floor_clearance: finger tips stay this far above the bin floor, m.
        bin_clearance: the finger tips stay this far above the bin floor at least, m (the motion
            planner keeps its 2 mm contact margin there; a grasp nearer than that is refused by
            its IK). At most ``floor_clearance``.
        wall_clearance: the gripper's swept volume stays this far from the bin walls, m. More
            than the controller's ``descent_guard`` (3 mm): a part pushing the hand towards a
            wall stops the descent before the palm reaches the wall; and fingers closing on a
            part tilt and lift the hand a little (1.4 deg and 7 mm brought a palm planned
            beside a wall onto its rim).
        part_clearance: the gripper's swept volume stays this far from the depth points around
            the object (its neighbours), m: a finger planned to pass a neighbour closer than
            this lands on it often enough (depth noise, edges between the scene's samples) to
            stop the guarded descent short of the grasp, where the close mostly fails.
        wall_margin: points closer than this to a wall face are wall, m.
        floor_margin: points lower than this above the floor are floor, m.
        depth_noise: depth step (m) between neighbouring sampled pixels of one surface that
            noise alone may cause.
        max_surface_slope_deg: steepest surface (angle from facing the camera, degrees) whose
            neighbouring pixels still join one cluster; steeper steps split clusters.
        max_object_points: pixels sampled per detection box at most.
        max_hole_pixels: invalid-depth holes up to this many sampled pixels from valid depth do
            not split a surface.
        min_object_points: fewer object points than this drop the detection.
        scene_stride: pixel stride of the scene cloud used for collision checks.
        max_tilt_deg: largest angle of a surface-normal approach from straight down, degrees.
        wall_tilt_deg: with a known bin, objects whose centroid lies within
            ``wall_tilt_distance`` of a wall are also approached tilted by this angle towards
            that wall, so that the palm and wrist lean away from it; 0 disables, degrees.
        wall_tilt_distance: see ``wall_tilt_deg``, m.
        yaw_offsets_deg: rotations of the closing axis about the approach, degrees.
        fallback_yaw_offsets_deg: rotations tried for an object only when every candidate of
            ``yaw_offsets_deg`` collides (a neighbour lies across its narrow side), degrees;
            empty disables.
        center_offsets: shifts of the grasp centre along the object's long axis, as fractions
            of its half length.
        clearance_scale: free space (m) around the fingers that earns the full exposure score.
        candidates_per_object: best collision-free grasps kept per detection.
        objects_per_image: the objects with the best grasps that are planned exactly; once
            that many objects have grasps, objects (and candidates) whose score bound cannot
            beat the worst of them are not checked (counted as ``outranked``); 0 plans every
            object.
        max_grasps: grasps returned per image at most.
        push_distance: with a known bin, an image whose detected parts all lack a grasp gets
            pushes instead (:func:`~.push.plan_pushes`), each of one part this far, m; 0
            disables.
        min_push_distance: shortest push worth making (a wall nearer than this ahead of the
            part rules the direction out), m.
        push_gap: the pushing fingers start this far behind the part's outline, m.
        push_depth: the pushing finger tips run this far below the part's top, m.
        push_floor_clearance: ... and at least this far above the bin floor, m.
        rim_grasps: a part with no grasp that shows a hole a finger fits in is grasped across
            its rim (:mod:`~.rims`).
        wall_drags: with pushes on, a part against a bin wall whose grasps all collide may also
            be dragged away from the wall, the finger tips pressing on its top
            (:func:`~.push.plan_pushes`).
        undetected_parts: with a known bin, when no detected part has a grasp, the parts
            standing in the bin outside every detection box are planned too
            (:func:`~.undetected.undetected_boxes`).
    """

    gripper: GripperGeometry = field(default_factory=GripperGeometry)
    bin: BinGeometry | None = None
    weights: ScoreWeights = field(default_factory=ScoreWeights)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    grasp_depth: float = 0.03
    grasp_depth_fraction: float = 0.85
    min_depth_fraction: float = 0.6
    widest_overlap: float = 0.008
    min_grasp_depth: float = 0.01
    floor_clearance: float = 0.003
    bin_clearance: float = 0.0025
    wall_clearance: float = 0.006
    part_clearance: float = 0.003
    wall_margin: float = 0.008
    floor_margin: float = 0.006
    depth_noise: float = 0.003
    max_surface_slope_deg: float = 75.0
    max_object_points: int = 1200
    max_hole_pixels: int = 4
    min_object_points: int = 30
    scene_stride: int = 5
    max_tilt_deg: float = 35.0
    wall_tilt_deg: float = 20.0
    wall_tilt_distance: float = 0.06
    yaw_offsets_deg: tuple[float, ...] = (0.0, -10.0, 10.0, -20.0, 20.0, 90.0)
    fallback_yaw_offsets_deg: tuple[float, ...] = (-35.0, 35.0, -55.0, 55.0, -70.0, 70.0)
    center_offsets: tuple[float, ...] = (0.0, -0.35, 0.35)
    clearance_scale: float = 0.02
    candidates_per_object: int = 3
    objects_per_image: int = 2
    max_grasps: int = 100
    push_distance: float = 0.12
    min_push_distance: float = 0.02
    push_gap: float = 0.01
    push_depth: float = 0.025
    push_floor_clearance: float = 0.01
    rim_grasps: bool = True
    wall_drags: bool = True
    undetected_parts: bool = True

    def __post_init__(self) -> None:
        up = np.asarray(self.up, dtype=np.float64)
        _require(up.shape == (3,) and np.isfinite(up).all() and abs(np.linalg.norm(up) - 1) < 1e-6,
                 f'up must be a unit 3-vector, got {self.up}')
        _require(0 < self.min_grasp_depth <= self.grasp_depth,
                 'need 0 < min_grasp_depth <= grasp_depth')
        _require(self.grasp_depth < self.gripper.finger_length,
                 'grasp_depth must be shorter than the fingers')
        _require(0 <= self.min_depth_fraction <= self.grasp_depth_fraction <= 1,
                 'need 0 <= min_depth_fraction <= grasp_depth_fraction <= 1')
        for name in ('floor_clearance', 'bin_clearance', 'wall_clearance', 'part_clearance',
                     'wall_margin', 'floor_margin', 'widest_overlap'):
            _require(getattr(self, name) >= 0, f'{name} must be >= 0')
        _require(self.bin_clearance <= self.floor_clearance,
                 'bin_clearance must be <= floor_clearance')
        _require(self.part_clearance < self.clearance_scale,
                 'part_clearance must be < clearance_scale')
        for name in ('push_distance', 'min_push_distance', 'push_gap', 'push_depth',
                     'push_floor_clearance'):
            _require(getattr(self, name) >= 0, f'{name} must be >= 0')
        for name in ('depth_noise', 'clearance_scale'):
            _require(getattr(self, name) > 0, f'{name} must be > 0')
        _require(0 < self.max_surface_slope_deg < 90, 'max_surface_slope_deg must be in (0, 90)')
        _require(self.min_object_points >= 3, 'min_object_points must be >= 3')
        _require(self.max_object_points >= self.min_object_points,
                 'max_object_points must be >= min_object_points')
        _require(self.scene_stride >= 1, 'scene_stride must be >= 1')
        _require(self.max_hole_pixels >= 0, 'max_hole_pixels must be >= 0')
        _require(0 <= self.max_tilt_deg < 90, 'max_tilt_deg must be in [0, 90)')
        _require(0 <= self.wall_tilt_deg < 90 and self.wall_tilt_distance >= 0,
                 'need wall_tilt_deg in [0, 90) and wall_tilt_distance >= 0')
        _require(len(self.yaw_offsets_deg) > 0 and len(self.center_offsets) > 0,
                 'yaw_offsets_deg and center_offsets must not be empty')
        _require(all(abs(f) < 1 for f in self.center_offsets),
                 'center_offsets are fractions of the half length, in (-1, 1)')
        _require(self.candidates_per_object >= 1 and self.max_grasps >= 1,
                 'candidates_per_object and max_grasps must be >= 1')
        _require(self.objects_per_image >= 0, 'objects_per_image must be >= 0')
        object.__setattr__(self, 'up', tuple(float(x) for x in up))
        for name in ('yaw_offsets_deg', 'fallback_yaw_offsets_deg'):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        object.__setattr__(self, 'center_offsets', tuple(float(x) for x in self.center_offsets))
