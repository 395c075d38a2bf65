"""Fixed frames of the robot description: the camera pose where tf2 is not available."""

from __future__ import annotations

import functools

import numpy as np

from litedet_ros.errors import LitedetError


class FrameLookupError(LitedetError):
    """A frame is missing from the robot description or is not fixed in the world."""


def static_transform(urdf: str, target_frame: str, source_frame: str) -> np.ndarray:
    """Transform between two frames that no joint moves, from a URDF (pinocchio).

    Args:
        urdf: URDF XML text.
        target_frame: frame the result maps into (e.g. ``base_link``).
        source_frame: frame the result maps from (e.g. ``camera_color_optical_frame``).

    Returns:
        ``float64[4, 4]`` target_frame <- source_frame transform, metres.

    Raises:
        FrameLookupError: a frame is not in the URDF, or a movable joint lies between it and
            the world (its pose then depends on the joint state: use tf2).
    """
    import pinocchio as pin  # noqa: PLC0415 - only needed without tf2

    model = pin.buildModelFromXML(urdf)
    data = model.createData()
    pin.framesForwardKinematics(model, data, pin.neutral(model))
    world_from = []
    for name in (target_frame, source_frame):
        if not model.existFrame(name):
            raise FrameLookupError(f'frame {name!r} is not in the robot description')
        frame_id = model.getFrameId(name)
        if model.frames[frame_id].parentJoint != 0:
            raise FrameLookupError(f'frame {name!r} moves with a joint of the robot '
                                   'description: its pose needs tf2')
        world_from.append(data.oMf[frame_id].homogeneous)
    return np.linalg.inv(world_from[0]) @ world_from[1]


@functools.lru_cache(maxsize=8)
def workcell_transform(target_frame: str, source_frame: str) -> np.ndarray:
    """:func:`static_transform` in the shipped workcell (``urdf/workcell.urdf.xacro`` defaults).

    The result is cached per frame pair and must not be modified.

    Raises:
        FrameLookupError: see :func:`static_transform`.
        DescriptionError: the workcell description cannot be expanded.
    """
    from litedet_ros.description import workcell_urdf  # noqa: PLC0415 - runs xacro

    transform = static_transform(workcell_urdf(), target_frame, source_frame)
    transform.flags.writeable = False
    return transform
