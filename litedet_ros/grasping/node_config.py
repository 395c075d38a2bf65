"""Flat, validated parameters of the grasp planner node (ROS-free, one field per ROS parameter)."""

from __future__ import annotations

from dataclasses import dataclass, fields
import math

import numpy as np
from scipy.spatial.transform import Rotation

from litedet_ros.grasping.config import (
    BinGeometry,
    GraspConfigError,
    GripperGeometry,
    PlannerConfig,
    ScoreWeights,
)
from litedet_ros.grasping.frames import workcell_transform

_GRIPPER = GripperGeometry()
_WEIGHTS = ScoreWeights()
_PLANNER = PlannerConfig()


@dataclass(frozen=True)
class GraspNodeConfig:
    """Every parameter of ``grasp_planner_node``; see ``DESCRIPTIONS`` for their meaning.

    Without tf2 and without a calibrated ``camera_pose``, the camera pose comes from the shipped
    workcell description (``urdf/workcell.urdf.xacro``). The bin defaults to that workcell's
    (0.40 x 0.30 x 0.15 m at x = 0.5 m, floor 0.01 m thick).
    """

    target_frame: str = 'base_link'
    depth_image_units_divisor: float = 1000.0
    time_sync_slop: float = 0.02
    sync_queue_duration: float = 2.0
    plan_while_picking: bool = False
    use_tf: bool = True
    camera_pose: tuple[float, ...] = ()
    bin_enabled: bool = True
    bin_pose: tuple[float, ...] = (0.5, 0.0, 0.01, 0.0)
    bin_size: tuple[float, ...] = (0.40, 0.30)
    bin_wall_height: float = 0.14
    bin_wall_thickness: float = 0.01
    gripper_stroke: float = _GRIPPER.stroke
    gripper_finger_width: float = _GRIPPER.finger_width
    gripper_finger_thickness: float = _GRIPPER.finger_thickness
    gripper_finger_length: float = _GRIPPER.finger_length
    gripper_tcp_to_tip: float = _GRIPPER.tcp_to_tip
    gripper_palm_width: float = _GRIPPER.palm_width
    gripper_palm_length: float = _GRIPPER.palm_length
    gripper_palm_height: float = _GRIPPER.palm_height
    gripper_coupling_diameter: float = _GRIPPER.coupling_diameter
    gripper_coupling_height: float = _GRIPPER.coupling_height
    gripper_approach_distance: float = _GRIPPER.approach_distance
    gripper_width_margin: float = _GRIPPER.width_margin
    gripper_min_width_margin: float = _GRIPPER.min_width_margin
    weight_top: float = _WEIGHTS.top
    weight_exposed: float = _WEIGHTS.exposed
    weight_flat: float = _WEIGHTS.flat
    weight_central: float = _WEIGHTS.central
    weight_vertical: float = _WEIGHTS.vertical
    weight_narrow: float = _WEIGHTS.narrow
    weight_aligned: float = _WEIGHTS.aligned
    grasp_depth: float = _PLANNER.grasp_depth
    grasp_depth_fraction: float = _PLANNER.grasp_depth_fraction
    min_depth_fraction: float = _PLANNER.min_depth_fraction
    widest_overlap: float = _PLANNER.widest_overlap
    wall_tilt_deg: float = _PLANNER.wall_tilt_deg
    wall_clearance: float = _PLANNER.wall_clearance
    part_clearance: float = _PLANNER.part_clearance
    candidates_per_object: int = _PLANNER.candidates_per_object
    objects_per_image: int = _PLANNER.objects_per_image
    push_distance: float = _PLANNER.push_distance
    rim_grasps: bool = _PLANNER.rim_grasps
    wall_drags: bool = _PLANNER.wall_drags
    undetected_parts: bool = _PLANNER.undetected_parts
    max_candidates: int = _PLANNER.max_grasps
    marker_grasps: int = 10
    stats_period: float = 5.0

    def __post_init__(self) -> None:
        if not self.target_frame:
            raise GraspConfigError('target_frame must not be empty')
        if not (math.isfinite(self.depth_image_units_divisor)
                and self.depth_image_units_divisor > 0):
            raise GraspConfigError('depth_image_units_divisor must be > 0')
        if not (math.isfinite(self.time_sync_slop) and self.time_sync_slop >= 0):
            raise GraspConfigError('time_sync_slop must be >= 0 s')
        if not (math.isfinite(self.sync_queue_duration) and self.sync_queue_duration > 0):
            raise GraspConfigError('sync_queue_duration must be > 0 s')
        if self.marker_grasps < 0:
            raise GraspConfigError('marker_grasps must be >= 0')
        if not (math.isfinite(self.stats_period) and self.stats_period > 0):
            raise GraspConfigError('stats_period must be > 0 s')
        for name, lengths in (('camera_pose', (0, 7)), ('bin_pose', (4,)), ('bin_size', (2,))):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) not in lengths or not np.isfinite(value).all():
                raise GraspConfigError(f'{name} needs {" or ".join(map(str, lengths))} finite '
                                       f'numbers, got {value}')
            object.__setattr__(self, name, value)
        if self.camera_pose and abs(np.linalg.norm(self.camera_pose[3:]) - 1) > 1e-3:
            raise GraspConfigError('camera_pose quaternion (qx, qy, qz, qw) must be unit length')
        self.planner_config()  # validates the planner parameters

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all parameters, in declaration order."""
        return tuple(f.name for f in fields(cls))

    def camera_transform(self, camera_frame: str) -> np.ndarray:
        """Camera pose without tf2: the calibrated ``camera_pose``, else the robot description's.

        Args:
            camera_frame: the images' frame (their ``header.frame_id``), looked up in the
                workcell description when ``camera_pose`` is empty.

        Returns:
            ``float64[4, 4]`` target_frame <- camera optical frame, metres.

        Raises:
            FrameLookupError: no ``camera_pose`` and a frame is missing from the description
                or moves with a joint.
        """
        if not self.camera_pose:
            return workcell_transform(self.target_frame, camera_frame).copy()
        transform = np.eye(4)
        transform[:3, :3] = Rotation.from_quat(self.camera_pose[3:]).as_matrix()
        transform[:3, 3] = self.camera_pose[:3]
        return transform

    def planner_config(self) -> PlannerConfig:
        """The core planner configuration these parameters describe.

        Raises:
            GraspConfigError: a value is out of range or inconsistent.
        """
        gripper = GripperGeometry(
            stroke=self.gripper_stroke, finger_width=self.gripper_finger_width,
            finger_thickness=self.gripper_finger_thickness,
            finger_length=self.gripper_finger_length, tcp_to_tip=self.gripper_tcp_to_tip,
            palm_width=self.gripper_palm_width, palm_length=self.gripper_palm_length,
            palm_height=self.gripper_palm_height,
            coupling_diameter=self.gripper_coupling_diameter,
            coupling_height=self.gripper_coupling_height,
            approach_distance=self.gripper_approach_distance,
            width_margin=self.gripper_width_margin,
            min_width_margin=self.gripper_min_width_margin)
        weights = ScoreWeights(top=self.weight_top, exposed=self.weight_exposed,
                               flat=self.weight_flat, central=self.weight_central,
                               vertical=self.weight_vertical, narrow=self.weight_narrow,
                               aligned=self.weight_aligned)
        bin_geometry = None
        if self.bin_enabled:
            x, y, z, yaw = self.bin_pose
            pose = np.eye(4)
            pose[:3, :3] = Rotation.from_euler('z', yaw).as_matrix()
            pose[:3, 3] = (x, y, z)
            bin_geometry = BinGeometry(pose=pose, size_x=self.bin_size[0],
                                       size_y=self.bin_size[1],
                                       wall_height=self.bin_wall_height,
                                       wall_thickness=self.bin_wall_thickness)
        return PlannerConfig(gripper=gripper, bin=bin_geometry, weights=weights,
                             grasp_depth=self.grasp_depth,
                             grasp_depth_fraction=self.grasp_depth_fraction,
                             min_depth_fraction=self.min_depth_fraction,
                             widest_overlap=self.widest_overlap,
                             wall_tilt_deg=self.wall_tilt_deg,
                             wall_clearance=self.wall_clearance,
                             part_clearance=self.part_clearance,
                             candidates_per_object=self.candidates_per_object,
                             objects_per_image=self.objects_per_image,
                             push_distance=self.push_distance,
                             rim_grasps=self.rim_grasps,
                             wall_drags=self.wall_drags,
                             undetected_parts=self.undetected_parts,
                             max_grasps=self.max_candidates)


#: One-line description of every parameter (for ParameterDescriptor and the README).
DESCRIPTIONS: dict[str, str] = {
    'target_frame': 'Planning frame of the published grasps.',
    'depth_image_units_divisor': 'Depth units per metre of 16UC1 depth (RealSense: 1000).',
    'time_sync_slop': 'Largest stamp spread of matched detections, depth and camera_info, s.',
    'sync_queue_duration': 'Inputs are kept this long (stamps) while waiting for a match, s; '
                           'longer than the detector latency.',
    'plan_while_picking': 'Also plan images taken while the pick_status of the controller says '
                          'a pick is under way (planning ... retreating, recovering), and '
                          'before it ended: the controller only takes grasps of images after '
                          'its attempt. Without pick_status every image is planned.',
    'use_tf': 'Look the camera up in tf2 at the image stamp when tf2_ros is installed; '
              'otherwise camera_pose is used.',
    'camera_pose': 'Calibrated camera optical frame in target_frame: [x, y, z, qx, qy, qz, qw] '
                   "(m), used without tf2; unset or empty: the images' frame in the robot "
                   'description (urdf/workcell.urdf.xacro).',
    'bin_enabled': 'Remove the bin floor and walls and check the walls for collisions.',
    'bin_pose': 'Centre of the bin inner floor in target_frame: [x, y, z, yaw] (m, rad).',
    'bin_size': 'Inner bin size [x, y] in the bin frame, m.',
    'bin_wall_height': 'Wall height above the inner floor, m.',
    'bin_wall_thickness': 'Wall thickness, m.',
    'gripper_stroke': 'Largest finger opening, m; wider objects get no grasp.',
    'gripper_finger_width': 'Finger size along the tool x axis, m.',
    'gripper_finger_thickness': 'Finger size along the closing (tool y) axis, m.',
    'gripper_finger_length': 'Finger length from the palm to the tips, m.',
    'gripper_tcp_to_tip': 'Distance from the TCP to the finger tips along the approach, m.',
    'gripper_palm_width': 'Palm size along the tool x axis, m.',
    'gripper_palm_length': 'Palm size along the closing axis, m.',
    'gripper_palm_height': 'Palm size along the approach, m.',
    'gripper_coupling_diameter': 'Coupling diameter behind the palm (checked as a square), m.',
    'gripper_coupling_height': 'Coupling size along the approach, m.',
    'gripper_approach_distance': 'Straight approach from the pre-grasp pose, m.',
    'gripper_width_margin': 'Added to the measured object width to get the opening (at most '
                            'the stroke), m.',
    'gripper_min_width_margin': 'Objects whose measured width plus this exceeds the stroke '
                                'get no grasp, m.',
    'weight_top': 'Score weight: object on top of the pile.',
    'weight_exposed': 'Score weight: free space around the fingers.',
    'weight_flat': 'Score weight: flat grasped surface.',
    'weight_central': 'Score weight: grasp near the object centre.',
    'weight_vertical': 'Score weight: approach close to straight down.',
    'weight_narrow': 'Score weight: small opening (closing across the narrow side).',
    'weight_aligned': 'Score weight: closing axis along the measured narrow axis (yaw offset 0).',
    'grasp_depth': 'Finger-tip depth below the top surface of flat-topped parts, m.',
    'grasp_depth_fraction': 'Preferred finger-tip depth as a fraction of the way from the top '
                            'surface to the bin floor (as far as the fingers reach); the only '
                            'depth tried on rounded parts, whose way ends at the floor or their '
                            'estimated underside, whichever is nearer.',
    'min_depth_fraction': 'Rounded parts get no grasp when this fraction of the way from '
                          'their top to what they rest on is beyond the reach of the fingers.',
    'widest_overlap': 'The tips go at least this far below the widest visible section, m.',
    'wall_tilt_deg': 'Parts near a bin wall are also approached tilted by this angle towards '
                     'the wall (palm and wrist lean off it); 0 disables, degrees.',
    'wall_clearance': 'The gripper keeps this far from the bin walls, m: more than the '
                      "controller's descent_guard.",
    'part_clearance': 'The gripper keeps this far from the depth points around the object, m: '
                      'fingers landing on a neighbour stop the descent short of the grasp.',
    'candidates_per_object': 'Best collision-free grasps kept per detection.',
    'objects_per_image': 'Objects planned exactly, best grasps first; parts that cannot beat '
                         'them are skipped (outranked), which saves planning them; 0 plans '
                         'every part.',
    'push_distance': 'With a bin, an image whose detected parts all lack a grasp offers a '
                     'push of one part this far instead (the controller makes it); 0 '
                     'disables, m.',
    'rim_grasps': 'A part with no grasp that shows a hole a finger fits in (a ring lying flat, '
                  'an upright mug) is grasped across its rim, one finger in the hole.',
    'wall_drags': 'With pushes on, a part against a bin wall whose grasps all collide may be '
                  'dragged away from the wall instead, the closed finger tips pressing on its '
                  'top.',
    'undetected_parts': 'With a bin, when no detected part has a grasp, the parts standing in '
                        'the bin outside every detection box (found in depth: the detector '
                        'missed them) are planned too; their grasps have no detection (-1).',
    'max_candidates': 'Grasps published per image at most.',
    'marker_grasps': 'Best grasps drawn as gripper markers.',
    'stats_period': 'Seconds between latency statistics logs and messages, > 0.',
}
