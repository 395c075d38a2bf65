"""The workcell description: locate ``urdf/`` and expand its xacro into URDF text.

``urdf/workcell.urdf.xacro`` is the single description of the cell (arm, gripper, camera, table,
bin, place zone). The simulation (MuJoCo), the built-in motion planner (pinocchio) and, on a full
ROS install, robot_state_publisher all consume the URDF returned by :func:`workcell_urdf`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
import re
import sys

from litedet_ros.errors import LitedetError

WORKCELL_XACRO = 'workcell.urdf.xacro'

ARM_JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
              'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
GRIPPER_JOINT = 'finger_joint'  # distance of each pad from the centre line, m (opening / 2)
GRIPPER_MIMIC_JOINT = 'right_finger_joint'
BASE_FRAME = 'base_link'
TCP_FRAME = 'tcp'
CAMERA_FRAME = 'camera_color_optical_frame'
#: The arm's home (``ARM_JOINTS``, rad): the TCP 0.40 m above the table beside the bin, elbow up,
#: wrist down; the sim starts each bin here and the built-in planner's IK prefers its branch.
HOME_JOINTS = (0.528, -1.86, 1.72, -1.431, -1.571, -1.043)


class DescriptionError(LitedetError):
    """The workcell description cannot be found or expanded with the given arguments."""


def urdf_dir() -> Path:
    """Return the directory holding the xacro files.

    Looks in the source tree first (``<repo>/urdf``), then in the install spaces
    (``<prefix>/share/litedet_ros/urdf`` for ``sys.prefix`` and every ``AMENT_PREFIX_PATH``
    entry).

    Raises:
        DescriptionError: no candidate directory holds ``workcell.urdf.xacro``.
    """
    prefixes = [sys.prefix, *filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(':'))]
    candidates = [Path(__file__).resolve().parent.parent / 'urdf',
                  *(Path(p) / 'share' / 'litedet_ros' / 'urdf' for p in prefixes)]
    for candidate in candidates:
        if (candidate / WORKCELL_XACRO).is_file():
            return candidate
    raise DescriptionError(f'{WORKCELL_XACRO} not found in any of {[str(c) for c in candidates]}')


def workcell_args() -> dict[str, str]:
    """Return the xacro arguments of the workcell and their default values (as strings)."""
    text = (urdf_dir() / WORKCELL_XACRO).read_text()
    return dict(re.findall(r'<xacro:arg name="(\w+)" default="([^"]*)"', text))


def default_finger_length() -> float:
    """The gripper's finger length of the workcell description by default (xacro), m."""
    return float(workcell_args()['finger_length'])


def workcell_urdf(**args: float | str) -> str:
    """Expand ``urdf/workcell.urdf.xacro`` into URDF XML.

    Args:
        **args: xacro arguments, e.g. ``bin_x=0.55, camera_z=0.8`` (metres, radians); see
            :func:`workcell_args` for the names and defaults.

    Returns:
        The URDF document as a string.

    Raises:
        DescriptionError: an argument name the xacro does not declare, or xacro failed.
    """
    unknown = sorted(set(args) - set(workcell_args()))
    if unknown:
        raise DescriptionError(f'unknown workcell argument(s) {unknown}; '
                               f'known: {sorted(workcell_args())}')
    return _expand(tuple(sorted((name, str(value)) for name, value in args.items())))


@functools.lru_cache(maxsize=16)
def _expand(mappings: tuple[tuple[str, str], ...]) -> str:
    import xacro  # noqa: PLC0415 - heavy import only when a description is needed

    try:
        document = xacro.process_file(str(urdf_dir() / WORKCELL_XACRO), mappings=dict(mappings))
    except xacro.XacroException as error:
        raise DescriptionError(f'xacro failed: {error}') from error
    return document.toprettyxml(indent='  ')


def joint_limits(urdf: str) -> dict[str, tuple[float, float, float, float]]:
    """Read the limits of the movable joints of a URDF.

    Args:
        urdf: URDF XML text.

    Returns:
        joint name -> (lower, upper, velocity, effort) in rad or m, rad/s or m/s, Nm or N.
    """
    import xml.etree.ElementTree as ElementTree  # noqa: PLC0415

    limits = {}
    for joint in ElementTree.fromstring(urdf).iter('joint'):
        limit = joint.find('limit')
        if joint.get('type') in ('revolute', 'prismatic') and limit is not None:
            limits[joint.get('name')] = tuple(float(limit.get(key, 0.0)) for key in
                                              ('lower', 'upper', 'velocity', 'effort'))
    return limits
