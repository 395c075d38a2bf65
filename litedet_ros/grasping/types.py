"""Core grasp and push types shared by the grasp planner, the motion task and the nodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from litedet_ros.errors import InvalidMessageError


def rigid_pose(pose: np.ndarray, what: str) -> np.ndarray:
    """Return ``pose`` as ``float64[4, 4]`` if it is finite with a proper rotation block.

    Raises:
        InvalidMessageError: naming ``what``: wrong shape, NaN/inf, or not a rotation.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise InvalidMessageError(f'{what} must be a finite 4x4 matrix, got {pose.shape}')
    rotation = pose[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) or \
            np.linalg.det(rotation) <= 0:
        raise InvalidMessageError(f'{what} rotation is not a proper rotation matrix')
    return pose


def tool_down_pose(position: Sequence[float], yaw: float = 0.0) -> np.ndarray:
    """TCP pose pointing straight down (tool +z = world -z), ``float64[4, 4]``."""
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:3, :3] = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
    pose[:3, 3] = position
    return pose


@dataclass(frozen=True)
class Grasp:
    """One parallel-jaw grasp.

    The pose is that of the tool centre point (TCP) at the moment the fingers close, expressed in
    ``frame_id`` (the planning frame, e.g. ``base_link``). Tool axes: +z is the approach direction
    (pointing from the gripper into the object), +y the closing axis (the line the fingers move
    along), +x completes the right-handed frame.

    Attributes:
        pose: ``float64[4, 4]`` homogeneous transform frame_id <- tcp, metres.
        width: finger opening before closing, metres (measured object extent plus margin).
        score: quality in ``[0, 1]``; higher is better.
        detection_index: index of the source detection in its detection array, -1 if none.
        frame_id: frame the pose is expressed in.
        stamp_ns: time of the source image, nanoseconds (ROS clock).
        box: the source detection's box ``(x_min, y_min, x_max, y_max)``, pixels of the
            source image; None if unknown.
    """

    pose: np.ndarray
    width: float
    score: float
    detection_index: int = -1
    frame_id: str = 'base_link'
    stamp_ns: int = 0
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        pose = rigid_pose(self.pose, 'grasp pose')
        if self.box is not None:
            box = tuple(map(float, self.box))
            if len(box) != 4 or not np.isfinite(box).all():
                raise InvalidMessageError(f'grasp box must be 4 finite values, got {self.box}')
            object.__setattr__(self, 'box', box)
        if not np.isfinite(self.width) or self.width <= 0:
            raise InvalidMessageError(f'grasp width must be positive, got {self.width}')
        if not np.isfinite(self.score):
            raise InvalidMessageError('grasp score must be finite')
        object.__setattr__(self, 'pose', pose)

    @property
    def position(self) -> np.ndarray:
        """TCP position in ``frame_id``, ``float64[3]``, metres."""
        return self.pose[:3, 3]

    @property
    def approach(self) -> np.ndarray:
        """Unit approach direction (tool +z) in ``frame_id``, ``float64[3]``."""
        return self.pose[:3, 2]


@dataclass(frozen=True)
class Push:
    """A straight push of the closed hand through the bin, to free parts no grasp can take.

    Tool axes as for :class:`Grasp`: the hand descends to ``start`` along +z (straight down, or
    leaning towards the wall behind a part it drags off that wall), then moves in a straight
    line to ``end``, its +x along the push (or +y: turned a quarter, the palm's length along the
    push fits beside a wall).

    Attributes:
        start: ``float64[4, 4]`` frame_id <- tcp where the push starts, metres.
        end: ``float64[4, 4]`` frame_id <- tcp where it ends (same orientation), metres.
        detection_index: index of the detection pushed, -1 if none.
        frame_id: frame the poses are expressed in.
        stamp_ns: time of the source image, nanoseconds (ROS clock).
    """

    start: np.ndarray
    end: np.ndarray
    detection_index: int = -1
    frame_id: str = 'base_link'
    stamp_ns: int = 0

    def __post_init__(self) -> None:
        for name in ('start', 'end'):
            object.__setattr__(self, name, rigid_pose(getattr(self, name), f'push {name}'))

    @property
    def length(self) -> float:
        """Length of the straight push, metres."""
        return float(np.linalg.norm(self.end[:3, 3] - self.start[:3, 3]))
