"""Conversions between ROS 2 messages and the core types: the only module that knows both.

Every ``*_to_msg`` has a ``msg_to_*`` inverse; malformed messages raise the typed errors of
:mod:`litedet_ros.errors`, never return partial data.
"""

from __future__ import annotations

from collections.abc import Iterable
import sys
from typing import TYPE_CHECKING

from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Pose, PoseStamped, Vector3
import numpy as np
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo as CameraInfoMsg
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg
from trajectory_msgs.msg import JointTrajectoryPoint

from litedet_ros.camera.types import CameraInfo
from litedet_ros.detection.types import Detections
from litedet_ros.errors import InvalidImageError, InvalidMessageError
from litedet_ros.grasping.types import Grasp, Push
from litedet_ros.motion.status import PickOutcome, PickResult, PickState, PickStatus
from litedet_ros.msg import Detection as DetectionMsg
from litedet_ros.msg import DetectionArray as DetectionArrayMsg
from litedet_ros.msg import Grasp as GraspMsg
from litedet_ros.msg import GraspArray as GraspArrayMsg
from litedet_ros.msg import ObjectState as ObjectStateMsg
from litedet_ros.msg import ObjectStateArray as ObjectStateArrayMsg
from litedet_ros.msg import PickStatus as PickStatusMsg
from litedet_ros.msg import Push as PushMsg
from litedet_ros.trajectory import JointTrajectory

if TYPE_CHECKING:  # the simulator (MuJoCo) is not loaded just to convert its ground truth
    from litedet_ros.sim.workcell import ObjectState

NS_PER_S = 1_000_000_000
#: Label of the detection a grasp of a part the detector missed carries (its depth box).
UNDETECTED_LABEL = 'undetected'

# encoding -> (numpy dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'mono8': (np.dtype(np.uint8), 1),
    '16UC1': (np.dtype(np.uint16), 1),
    'mono16': (np.dtype(np.uint16), 1),
    '32FC1': (np.dtype(np.float32), 1),
}


def stamp_to_ns(stamp: Time) -> int:
    """Return a ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Time:
    """Return integer nanoseconds (>= 0) as a ``builtin_interfaces/Time``."""
    if stamp_ns < 0:
        raise InvalidMessageError(f'time stamps must not be negative, got {stamp_ns} ns')
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def duration_to_s(duration: Duration) -> float:
    """Return a ``builtin_interfaces/Duration`` in seconds."""
    return int(duration.sec) + int(duration.nanosec) / NS_PER_S


def s_to_duration(seconds: float) -> Duration:
    """Return seconds (>= 0) as a ``builtin_interfaces/Duration``."""
    sec, nanosec = divmod(int(round(float(seconds) * NS_PER_S)), NS_PER_S)
    return Duration(sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str) -> Header:
    """Return a ``std_msgs/Header`` for a stamp in nanoseconds and a frame id."""
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


def image_to_numpy(msg: Image) -> np.ndarray:
    """Return the pixels of a ``sensor_msgs/Image`` as a numpy array (a copy).

    Rows padded beyond ``width * channels * itemsize`` (a larger ``step``) are accepted and the
    padding dropped. Big-endian data is byte-swapped to native order.

    Returns:
        ``uint8[H, W, 3]`` for rgb8/bgr8 (channel order as encoded), ``uint8[H, W]`` for mono8,
        ``uint16[H, W]`` for 16UC1/mono16, ``float32[H, W]`` for 32FC1.

    Raises:
        InvalidImageError: unsupported encoding, zero size, a step shorter than one row, or
            fewer bytes than ``step * height``.
    """
    if msg.encoding not in IMAGE_ENCODINGS:
        raise InvalidImageError(
            f'unsupported image encoding {msg.encoding!r}; supported: '
            f'{", ".join(IMAGE_ENCODINGS)}')
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise InvalidImageError(f'image has zero size ({width}x{height})')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise InvalidImageError(
            f'image step {step} is shorter than one {msg.encoding} row of {width} px '
            f'({row_bytes} bytes)')
    data = bytes(msg.data)
    if len(data) < step * height:
        raise InvalidImageError(
            f'image data truncated: {len(data)} bytes, expected step*height = {step * height}')
    rows = np.frombuffer(data, dtype=np.uint8, count=step * height).reshape(height, step)
    pixels = rows[:, :row_bytes].copy().view(dtype.newbyteorder('>' if msg.is_bigendian else '<'))
    pixels = pixels.astype(dtype, copy=False)
    return pixels.reshape((height, width, channels) if channels > 1 else (height, width))


def numpy_to_image(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    """Return a ``sensor_msgs/Image`` holding ``pixels`` (native byte order, unpadded rows).

    Args:
        pixels: ``[H, W, 3]`` for rgb8/bgr8, ``[H, W]`` for single-channel encodings; its dtype
            must match the encoding (uint8, uint16 or float32).
        encoding: one of :data:`IMAGE_ENCODINGS`.
        stamp_ns: acquisition time, nanoseconds.
        frame_id: optical frame of the camera.

    Raises:
        InvalidImageError: unknown encoding, zero size, or shape/dtype not matching the encoding.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise InvalidImageError(f'unsupported image encoding {encoding!r}')
    dtype, channels = IMAGE_ENCODINGS[encoding]
    pixels = np.asarray(pixels)
    expected_ndim = 3 if channels > 1 else 2
    if pixels.ndim != expected_ndim or (channels > 1 and pixels.shape[2] != channels):
        raise InvalidImageError(f'{encoding} needs shape [H, W{", 3" if channels > 1 else ""}], '
                                f'got {pixels.shape}')
    if pixels.dtype != dtype:
        raise InvalidImageError(f'{encoding} needs dtype {dtype}, got {pixels.dtype}')
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise InvalidImageError(f'image has zero size ({width}x{height})')
    msg = Image(header=make_header(stamp_ns, frame_id), height=height, width=width,
                encoding=encoding, is_bigendian=int(sys.byteorder == 'big'),
                step=width * channels * dtype.itemsize)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg


def matrix_to_pose(matrix: np.ndarray) -> Pose:
    """Return a ``geometry_msgs/Pose`` from a ``float64[4, 4]`` homogeneous transform (m)."""
    pose = Pose()
    x, y, z = (float(v) for v in matrix[:3, 3])
    pose.position.x, pose.position.y, pose.position.z = x, y, z
    qx, qy, qz, qw = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    pose.orientation.x, pose.orientation.y = float(qx), float(qy)
    pose.orientation.z, pose.orientation.w = float(qz), float(qw)
    return pose


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """Return a ``float64[4, 4]`` homogeneous transform from a ``geometry_msgs/Pose``.

    Raises:
        InvalidMessageError: non-finite values or a quaternion whose norm is not close to 1.
    """
    q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
    t = np.array([pose.position.x, pose.position.y, pose.position.z])
    if not (np.isfinite(q).all() and np.isfinite(t).all()):
        raise InvalidMessageError('pose holds NaN or inf')
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise InvalidMessageError(f'pose quaternion is not unit length (norm {np.linalg.norm(q)})')
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(q).as_matrix()
    matrix[:3, 3] = t
    return matrix


def detections_to_msg(detections: Detections) -> DetectionArrayMsg:
    """Return a ``litedet_ros/DetectionArray`` for core detections."""
    width, height = detections.image_size
    msg = DetectionArrayMsg(header=make_header(detections.stamp_ns, detections.frame_id),
                            image_width=width, image_height=height)
    msg.detections = [
        DetectionMsg(class_id=int(class_id), label=label, score=float(score),
                     x_min=float(box[0]), y_min=float(box[1]),
                     x_max=float(box[2]), y_max=float(box[3]))
        for box, score, class_id, label in zip(
            detections.boxes, detections.scores, detections.class_ids, detections.labels)]
    return msg


def msg_to_detections(msg: DetectionArrayMsg) -> Detections:
    """Return core detections from a ``litedet_ros/DetectionArray``.

    Raises:
        InvalidMessageError: zero image size, non-finite values, or a box that is empty or
            reaches outside the image.
    """
    boxes = np.array([[d.x_min, d.y_min, d.x_max, d.y_max] for d in msg.detections],
                     dtype=np.float32).reshape(-1, 4)
    detections = Detections(
        boxes=boxes,
        scores=[d.score for d in msg.detections],
        class_ids=[d.class_id for d in msg.detections],
        labels=tuple(d.label for d in msg.detections),
        image_size=(msg.image_width, msg.image_height),
        stamp_ns=stamp_to_ns(msg.header.stamp),
        frame_id=msg.header.frame_id)
    width, height = detections.image_size
    bad = ((boxes[:, 0] >= boxes[:, 2]) | (boxes[:, 1] >= boxes[:, 3]) | (boxes[:, 0] < 0)
           | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height))
    if bad.any():
        raise InvalidMessageError(
            f'{int(bad.sum())} detection box(es) empty or outside the {width}x{height} image, '
            f'first: {boxes[bad][0].tolist()}')
    return detections


def grasp_to_msg(grasp: Grasp, detection: DetectionMsg | None = None) -> GraspMsg:
    """Return a ``litedet_ros/Grasp`` for a core grasp, with a copy of its source detection.

    Without a detection, a grasp with a box (of a part the detector missed) carries that box in
    an :data:`UNDETECTED_LABEL` detection of class -1 and score 0.
    """
    approach = grasp.approach
    if detection is None and grasp.box is not None:
        x_min, y_min, x_max, y_max = map(float, grasp.box)
        detection = DetectionMsg(class_id=-1, label=UNDETECTED_LABEL, score=0.0, x_min=x_min,
                                 y_min=y_min, x_max=x_max, y_max=y_max)
    return GraspMsg(
        pose=PoseStamped(header=make_header(grasp.stamp_ns, grasp.frame_id),
                         pose=matrix_to_pose(grasp.pose)),
        width=float(grasp.width),
        approach=Vector3(x=float(approach[0]), y=float(approach[1]), z=float(approach[2])),
        score=float(grasp.score),
        detection_index=int(grasp.detection_index),
        detection=detection if detection is not None else DetectionMsg())


def msg_to_grasp(msg: GraspMsg) -> Grasp:
    """Return a core grasp from a ``litedet_ros/Grasp`` (the approach field is derived data).

    Its box is that of the copied source detection, None when the copy is empty.

    Raises:
        InvalidMessageError: malformed pose, width or score, or an approach vector that
            disagrees with the pose's tool z axis.
    """
    source = msg.detection
    box = (source.x_min, source.y_min, source.x_max, source.y_max)
    grasp = Grasp(pose=pose_to_matrix(msg.pose.pose), width=msg.width, score=msg.score,
                  detection_index=msg.detection_index, frame_id=msg.pose.header.frame_id,
                  stamp_ns=stamp_to_ns(msg.pose.header.stamp),
                  box=box if box[2] > box[0] and box[3] > box[1] else None)
    approach = np.array([msg.approach.x, msg.approach.y, msg.approach.z])
    if not np.allclose(approach, grasp.approach, atol=1e-3):
        raise InvalidMessageError(
            f'grasp approach {approach.tolist()} disagrees with the pose z axis '
            f'{grasp.approach.round(4).tolist()}')
    return grasp


def grasps_to_msg(grasps: list[Grasp], detections: DetectionArrayMsg | None,
                  stamp_ns: int, frame_id: str, pushes: tuple[Push, ...] = (),
                  undetected: int = 0) -> GraspArrayMsg:
    """Return a ranked ``litedet_ros/GraspArray`` (best score first).

    Args:
        grasps: grasps in any order; they are sorted by descending score.
        detections: the detection array the grasps came from, to copy each source detection
            and to count them (``num_detections``; 0 without it).
        stamp_ns: stamp of the source image, nanoseconds.
        frame_id: planning frame of the grasp poses (and of the pushes).
        pushes: the pushes offered instead of grasps, best first.
        undetected: parts found in depth only (the planner's ``undetected_parts``), counted in
            ``num_detections`` with the detections.
    """
    source = list(detections.detections) if detections is not None else []
    ranked = sorted(grasps, key=lambda g: g.score, reverse=True)
    return GraspArrayMsg(
        header=make_header(stamp_ns, frame_id), num_detections=len(source) + undetected,
        grasps=[grasp_to_msg(g, source[g.detection_index]
                             if 0 <= g.detection_index < len(source) else None)
                for g in ranked],
        pushes=[PushMsg(start=matrix_to_pose(p.start), end=matrix_to_pose(p.end),
                        detection_index=int(p.detection_index)) for p in pushes])


def msg_to_grasps(msg: GraspArrayMsg) -> list[Grasp]:
    """Return the core grasps of a ``litedet_ros/GraspArray``, in message order."""
    return [msg_to_grasp(g) for g in msg.grasps]


def msg_to_pushes(msg: GraspArrayMsg) -> tuple[Push, ...]:
    """Return the pushes of a ``litedet_ros/GraspArray``, in message order.

    Raises:
        InvalidMessageError: a malformed start or end pose.
    """
    stamp_ns = stamp_to_ns(msg.header.stamp)
    return tuple(Push(pose_to_matrix(p.start), pose_to_matrix(p.end), p.detection_index,
                      msg.header.frame_id, stamp_ns) for p in msg.pushes)


def pick_status_to_msg(status: PickStatus) -> PickStatusMsg:
    """Return a ``litedet_ros/PickStatus`` for a core status snapshot."""
    return PickStatusMsg(
        header=make_header(status.stamp_ns, ''), state=int(status.state),
        enabled=status.enabled, attempts=status.attempts, successes=status.successes,
        failures=status.failures, consecutive_failures=status.consecutive_failures,
        last_result=int(status.last_result.outcome), last_reason=status.last_result.reason,
        last_cycle_time=float(status.last_result.cycle_time))


def msg_to_pick_status(msg: PickStatusMsg) -> PickStatus:
    """Return a core status snapshot from a ``litedet_ros/PickStatus``.

    Raises:
        InvalidMessageError: an unknown state or result code.
    """
    try:
        state, outcome = PickState(msg.state), PickOutcome(msg.last_result)
    except ValueError as error:
        raise InvalidMessageError(f'unknown pick status code: {error}') from error
    return PickStatus(
        state=state, enabled=msg.enabled, attempts=msg.attempts, successes=msg.successes,
        failures=msg.failures, consecutive_failures=msg.consecutive_failures,
        last_result=PickResult(outcome, msg.last_reason, msg.last_cycle_time),
        stamp_ns=stamp_to_ns(msg.header.stamp))


def camera_info_to_msg(info: CameraInfo, stamp_ns: int) -> CameraInfoMsg:
    """Return a ``sensor_msgs/CameraInfo`` (monocular: R = I, P = [K | 0]) for a calibration."""
    return CameraInfoMsg(
        header=make_header(stamp_ns, info.frame_id), width=info.width, height=info.height,
        distortion_model=info.distortion_model, d=[float(v) for v in info.d],
        k=info.k.reshape(-1).tolist(), r=info.r.reshape(-1).tolist(),
        p=info.p.reshape(-1).tolist())


def msg_to_camera_info(msg: CameraInfoMsg) -> CameraInfo:
    """Return the calibration held by a ``sensor_msgs/CameraInfo``.

    Raises:
        InvalidCameraInfoError: zero or non-finite intrinsics, or a zero image size (an
            uncalibrated camera publishes all zeros).
    """
    return CameraInfo(width=msg.width, height=msg.height, k=np.array(msg.k), d=np.array(msg.d),
                      distortion_model=msg.distortion_model, frame_id=msg.header.frame_id)


def msg_to_joint_trajectory(msg: JointTrajectoryMsg) -> JointTrajectory:
    """Return a core joint trajectory from a ``trajectory_msgs/JointTrajectory``.

    Velocities are kept only when every point has one per joint (positions are then
    interpolated as cubic Hermite splines, else linearly). Limits, NaN and time order are checked
    by :func:`litedet_ros.trajectory.validate_trajectory`.

    Raises:
        InvalidMessageError: a point whose positions (or non-empty velocities) do not have one
            value per joint name.
    """
    names = tuple(msg.joint_names)
    for k, point in enumerate(msg.points):
        if len(point.positions) != len(names) or len(point.velocities) not in (0, len(names)):
            raise InvalidMessageError(
                f'trajectory point {k} has {len(point.positions)} positions and '
                f'{len(point.velocities)} velocities for {len(names)} joints')
    count = len(msg.points)
    times = np.array([duration_to_s(p.time_from_start) for p in msg.points], dtype=np.float64)
    positions = np.array([list(p.positions) for p in msg.points],
                         dtype=np.float64).reshape(count, len(names))
    velocities = None
    if count and all(len(p.velocities) == len(names) for p in msg.points):
        velocities = np.array([list(p.velocities) for p in msg.points], dtype=np.float64)
    return JointTrajectory(names, times, positions, velocities)


def joint_trajectory_to_msg(trajectory: JointTrajectory, stamp_ns: int = 0) -> JointTrajectoryMsg:
    """Return a ``trajectory_msgs/JointTrajectory`` (stamp 0: start on receipt)."""
    msg = JointTrajectoryMsg(header=make_header(stamp_ns, ''),
                             joint_names=list(trajectory.joint_names))
    for k, t in enumerate(trajectory.times):
        point = JointTrajectoryPoint(positions=trajectory.positions[k].tolist(),
                                     time_from_start=s_to_duration(t))
        if trajectory.velocities is not None:
            point.velocities = trajectory.velocities[k].tolist()
        msg.points.append(point)
    return msg


def object_states_to_msg(states: Iterable[ObjectState], stamp_ns: int,
                         frame_id: str, robot_collisions: int = 0) -> ObjectStateArrayMsg:
    """Return a ``litedet_ros/ObjectStateArray`` for the simulator's ground truth."""
    return ObjectStateArrayMsg(
        header=make_header(stamp_ns, frame_id), robot_collisions=int(robot_collisions),
        objects=[ObjectStateMsg(id=int(s.id), class_id=int(s.class_id), label=s.label,
                                pose=matrix_to_pose(s.pose), location=int(s.location))
                 for s in states])
