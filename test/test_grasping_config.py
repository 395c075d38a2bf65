"""Planner and node parameters: validation, frames; benchmark ground-truth helpers."""

from pathlib import Path

import numpy as np
import pytest

from litedet_ros.description import CAMERA_FRAME, TCP_FRAME, workcell_urdf
from litedet_ros.grasping.bench import narrow_axis, workcell_bin
from litedet_ros.grasping.config import (
    BinGeometry,
    GraspConfigError,
    GripperGeometry,
    PlannerConfig,
    ScoreWeights,
)
from litedet_ros.grasping.frames import FrameLookupError, static_transform
from litedet_ros.grasping.node_config import DESCRIPTIONS, GraspNodeConfig
from litedet_ros.grasping.synthetic import rotation_z

DOWN = np.array([0.0, 0.0, -1.0])


@pytest.mark.parametrize('make', [
    lambda: GripperGeometry(stroke=0.0),
    lambda: GripperGeometry(tcp_to_tip=0.2),
    lambda: GripperGeometry(width_margin=float('nan')),
    lambda: BinGeometry(size_x=-0.1),
    lambda: BinGeometry(pose=np.diag([1.0, 1.0, -1.0, 1.0])),  # a reflection
    lambda: ScoreWeights(top=0, exposed=0, flat=0, central=0, vertical=0, narrow=0,
                         aligned=0),
    lambda: ScoreWeights(aligned=-1.0),
    lambda: PlannerConfig(up=(0.0, 0.0, 2.0)),
    lambda: PlannerConfig(min_grasp_depth=0.05),
    lambda: PlannerConfig(center_offsets=(1.5,)),
    lambda: GraspNodeConfig(depth_image_units_divisor=0.0),
    lambda: GraspNodeConfig(camera_pose=(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0)),
    lambda: GraspNodeConfig(camera_pose=(0.0, 0.0, 1.0)),
    lambda: GraspNodeConfig(bin_size=(0.4,)),
    lambda: GraspNodeConfig(gripper_stroke=-1.0),
    lambda: GraspNodeConfig(target_frame=''),
    lambda: GraspNodeConfig(sync_queue_duration=0.0),
])
def test_invalid_parameters_are_refused_with_a_typed_error(make):
    with pytest.raises(GraspConfigError):
        make()


def test_bin_interior_excludes_walls_and_floor():
    pose = np.eye(4)
    pose[:3, :3] = rotation_z(np.pi / 2)  # bin x along planning y
    pose[:3, 3] = (0.5, 0.0, 0.01)
    bin_geometry = BinGeometry(pose=pose, size_x=0.4, size_y=0.3)
    points = np.array([[0.5, 0.0, 0.05],     # inside
                       [0.5, 0.0, 0.012],    # on the floor
                       [0.5, 0.195, 0.05],   # at the +x wall of the bin (planning +y)
                       [0.645, 0.0, 0.05]])  # near the -y wall (bin y is planning -x)
    assert bin_geometry.interior_mask(points, 0.008, 0.006).tolist() == [True, False, False,
                                                                        False]


def test_node_config_describes_every_parameter_and_builds_the_planner():
    config = GraspNodeConfig()
    assert set(DESCRIPTIONS) == set(GraspNodeConfig.field_names())
    transform = config.camera_transform(CAMERA_FRAME)
    np.testing.assert_allclose(transform[:3, 2], DOWN, atol=1e-6)  # looking down
    planner = config.planner_config()
    assert planner.bin is not None and planner.bin.size_x == pytest.approx(0.4)
    assert GraspNodeConfig(bin_enabled=False).planner_config().bin is None


def test_camera_pose_without_tf_comes_from_the_urdf_unless_calibrated(monkeypatch):
    monkeypatch.setenv('MUJOCO_GL', 'egl')
    workcell = pytest.importorskip('litedet_ros.sim.workcell', reason='MuJoCo is not installed')
    simulated = workcell.Workcell(num_objects=0).camera_pose()  # world = base_link
    np.testing.assert_allclose(GraspNodeConfig().camera_transform(CAMERA_FRAME), simulated,
                               atol=1e-9)
    calibrated = GraspNodeConfig(camera_pose=(0.1, 0.2, 0.9, 1.0, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(calibrated.camera_transform(CAMERA_FRAME),
                               [[1, 0, 0, 0.1], [0, -1, 0, 0.2], [0, 0, -1, 0.9], [0, 0, 0, 1]],
                               atol=1e-12)
    # the inverse lookup, and frames that are missing or move with the arm
    urdf = workcell_urdf()
    np.testing.assert_allclose(static_transform(urdf, CAMERA_FRAME, 'base_link'),
                               np.linalg.inv(simulated), atol=1e-9)
    with pytest.raises(FrameLookupError, match='not in the robot description'):
        GraspNodeConfig().camera_transform('camera_depth_frame_typo')
    with pytest.raises(FrameLookupError, match='moves with a joint'):
        static_transform(urdf, 'base_link', TCP_FRAME)


def test_workcell_bin_matches_the_xacro_layout():
    layout = {'bin_x': 0.5, 'bin_y': 0.1, 'bin_length': 0.4, 'bin_width': 0.3,
              'bin_height': 0.15, 'bin_wall': 0.01}
    bin_geometry = workcell_bin(layout)
    np.testing.assert_allclose(bin_geometry.pose[:3, 3], [0.5, 0.1, 0.01])
    assert bin_geometry.wall_height == pytest.approx(0.14)


@pytest.mark.parametrize('finger_length', [None, 0.08])
def test_the_planner_gripper_matches_the_fingers_of_the_cell(finger_length):
    import xml.etree.ElementTree as ElementTree

    args = {} if finger_length is None else {'finger_length': finger_length}
    robot = ElementTree.fromstring(workcell_urdf(**args))
    length = finger_length or GraspNodeConfig().gripper_finger_length  # the defaults agree
    finger = robot.find("link[@name='left_finger']/collision/geometry/box")
    assert float(finger.get('size').split()[2]) == pytest.approx(length)

    def z(joint):
        return float(robot.find(f"joint[@name='{joint}']/origin").get('xyz').split()[2])

    # the fingers' roots and the tcp, out of the gripper base: the tcp is tcp_to_tip above the tips
    assert z('gripper_base-tcp') == pytest.approx(
        z('finger_joint') + length - GraspNodeConfig().gripper_tcp_to_tip)


def test_narrow_axis_of_boxes_and_cans():
    yaw = rotation_z(0.3)
    axis = narrow_axis('box', (0.08, 0.05, 0.04), yaw, DOWN)
    assert abs(axis @ yaw[:, 1]) == pytest.approx(1.0)
    assert narrow_axis('box', (0.05, 0.05, 0.04), yaw, DOWN) is None  # square top
    lying = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # axis along x
    assert abs(narrow_axis('cylinder', (), lying, DOWN) @ [0.0, 1.0, 0.0]) == pytest.approx(1)
    assert narrow_axis('cylinder', (), np.eye(3), DOWN) is None  # standing can
    assert narrow_axis('ring', (), np.eye(3), DOWN) is None


def test_the_shipped_parameter_file_holds_the_node_defaults():
    yaml = pytest.importorskip('yaml', reason='PyYAML is not installed')
    path = Path(__file__).resolve().parents[1] / 'config' / 'grasp_planner_node.yaml'
    parameters = yaml.safe_load(path.read_text())['/**/grasp_planner_node']['ros__parameters']
    assert set(parameters) == set(GraspNodeConfig.field_names())
    defaults = GraspNodeConfig()
    for name, value in parameters.items():
        default = getattr(defaults, name)
        expected = list(default) if isinstance(default, tuple) else [default]
        value = value if isinstance(value, list) else [value]
        assert value == expected, name
        # ROS refuses an integer for a double parameter: the YAML types must match too
        assert [type(v) for v in value] == [type(v) for v in expected], name
