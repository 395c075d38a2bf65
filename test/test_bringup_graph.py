"""The node graph description: arguments, node sets per mode, parameter merging, refusals."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from litedet_ros.bringup.graph import (
    FASTDDS_PROFILE_VARIABLES,
    LAUNCH_ARGUMENTS,
    BringupError,
    NodeSpec,
    build_graph,
    check_graph,
    middleware_environment,
    options_from_arguments,
    resolve_parameters,
    select,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'config'


def names(arguments, config_dir=CONFIG):
    return [node.name for node in build_graph(options_from_arguments(arguments), config_dir)]


def test_defaults_are_the_launch_argument_table():
    options = options_from_arguments({})
    assert (options.use_sim, options.use_sim_time, options.use_rviz) == (False, False, False)
    assert (options.backend, options.precision, options.camera) == ('onnxruntime', 'int8', 'own')
    assert options.namespace == '/'
    assert set(LAUNCH_ARGUMENTS) == {'use_sim', 'use_sim_time', 'use_rviz', 'rviz_config',
                                     'params_file', 'namespace', 'backend', 'precision',
                                     'camera', 'finger_length'}
    assert options.finger_length is None


@pytest.mark.parametrize(('arguments', 'expected'), [
    ({}, ['camera_node', 'detector_node', 'grasp_planner_node', 'controller_node']),
    ({'use_sim': 'true'}, ['sim_node', 'detector_node', 'grasp_planner_node',
                           'controller_node']),
    ({'use_sim': 'True', 'camera': 'realsense2_camera'},  # the sim renders the camera
     ['sim_node', 'detector_node', 'grasp_planner_node', 'controller_node']),
    ({'camera': 'realsense2_camera'}, ['camera', 'detector_node', 'grasp_planner_node',
                                       'controller_node']),
    ({'camera': 'none', 'use_rviz': '1'}, ['detector_node', 'grasp_planner_node',
                                           'controller_node', 'rviz2']),
    ({'use_sim': 'yes', 'use_rviz': 'on'}, ['sim_node', 'detector_node', 'grasp_planner_node',
                                            'controller_node', 'robot_state_publisher',
                                            'rviz2']),
])
def test_node_set_per_mode(arguments, expected):
    assert names(arguments) == expected


def test_namespace_sim_time_and_detector_overrides():
    nodes = build_graph(options_from_arguments(
        {'use_sim': 'true', 'namespace': 'cell_1/', 'backend': 'torch', 'precision': 'fp32',
         'params_file': '/tmp/extra.yaml'}), CONFIG)
    by_name = {node.name: node for node in nodes}
    assert {node.namespace for node in nodes} == {'/cell_1'}
    assert by_name['detector_node'].full_name == '/cell_1/detector_node'
    assert by_name['detector_node'].overrides == {'backend': 'torch', 'precision': 'fp32',
                                                  'use_sim_time': True}
    assert by_name['sim_node'].overrides == {}  # the sim is the clock
    assert by_name['controller_node'].parameter_files == (
        str(CONFIG / 'controller_node.yaml'), '/tmp/extra.yaml')
    assert all(node.required for node in nodes)


def test_finger_length_sets_every_model_of_the_gripper_alike(tmp_path):
    nodes = build_graph(options_from_arguments(
        {'use_sim': 'true', 'use_rviz': 'true', 'finger_length': '0.08'}), CONFIG)
    values = {node.name: resolve_parameters(node) for node in nodes}
    assert values['sim_node']['finger_length'] == 0.08
    assert values['controller_node']['finger_length'] == 0.08
    assert values['grasp_planner_node']['gripper_finger_length'] == 0.08
    urdf = values['robot_state_publisher']['robot_description']
    assert '0.022 0.012 0.08' in urdf  # the finger boxes
    check_graph(tuple(node for node in nodes if node.name != 'rviz2'))
    # without the argument, the shipped files agree; a params file setting one model is refused
    shipped = build_graph(options_from_arguments({'use_sim': 'true'}), CONFIG)
    assert {resolve_parameters(n).get('finger_length', resolve_parameters(n).get(
        'gripper_finger_length')) for n in shipped if n.name != 'detector_node'} == {0.055}
    extra = write(tmp_path / 'long.yaml', '/**/grasp_planner_node:\n  ros__parameters:\n'
                  '    gripper_finger_length: 0.08\n')
    one = build_graph(options_from_arguments({'use_sim': 'true', 'params_file': extra}), CONFIG)
    with pytest.raises(BringupError, match='fingers of different lengths'):
        check_graph(one)


def test_use_sim_time_can_differ_from_use_sim():
    assert options_from_arguments({'use_sim': 'true', 'use_sim_time': 'false'}).use_sim_time \
        is False
    assert options_from_arguments({'use_sim_time': 'true'}).use_sim_time is True


def test_realsense_driver_node_lives_where_its_topics_are_expected():
    camera = build_graph(options_from_arguments(
        {'camera': 'realsense2_camera', 'namespace': 'cell'}), CONFIG)[0]
    assert (camera.package, camera.executable) == ('realsense2_camera', 'realsense2_camera_node')
    assert camera.full_name == '/cell/camera/camera'  # topics /cell/camera/camera/color/...
    assert camera.overrides['align_depth.enable'] is True


@pytest.mark.parametrize(('arguments', 'message'), [
    ({'backend': 'openvino'}, 'unknown backend'),
    ({'precision': 'fp16'}, 'unknown precision'),
    ({'camera': 'kinect'}, 'unknown camera'),
    ({'use_sim': 'maybe'}, 'use_sim must be true or false'),
    ({'namespace': 'bad-name'}, 'invalid namespace'),
    ({'use_gpu': 'true'}, 'unknown launch arguments'),
    ({'finger_length': '8cm'}, 'finger_length must be a number'),
    ({'finger_length': '80'}, r'finger_length must be a length in m in \(0, 1\)'),
])
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(BringupError, match=message):
        options_from_arguments(arguments)


def test_overrides_must_follow_files():
    with pytest.raises(BringupError, match='one dict after the files'):
        NodeSpec('p', 'e', 'n', '/', parameters=({'a': 1}, 'file.yaml'))


def write(path, text):
    path.write_text(text)
    return str(path)


def test_resolve_parameters_merges_in_launch_order(tmp_path):
    own = write(tmp_path / 'detector_node.yaml',
                '/**/detector_node:\n  ros__parameters:\n    a: 1\n    b: {c: 2}\n    d: x\n')
    extra = write(tmp_path / 'extra.yaml', '/**:\n  ros__parameters:\n    a: 5\n'
                  'other_node:\n  ros__parameters:\n    d: never\n')
    node = NodeSpec('litedet_ros', 'detector_node', 'detector_node', '/cell',
                    parameters=(own, extra, {'d': 'y'}))
    assert resolve_parameters(node) == {'a': 5, 'b.c': 2, 'd': 'y'}


@pytest.mark.parametrize(('text', 'message'), [
    (None, 'parameters file not found'),
    ('camera_node: [unclosed', 'not valid YAML'),
    ('- a\n- b\n', 'must map node names'),
    ('camera_node:\n  a: 1\n', 'has no ros__parameters'),
    ('grasp_planner_node:\n  ros__parameters:\n    a: 1\n', 'has no section for /camera_node'),
    ('camera_node:\n  ros__parameters:\n    playback_file: /no/such/run.bag\n',
     'playback_file names a file that does not exist'),
])
def test_check_graph_refuses_bad_parameter_files(tmp_path, text, message):
    path = tmp_path / 'camera_node.yaml'
    if text is not None:
        path.write_text(text)
    node = NodeSpec('litedet_ros', 'camera_node', 'camera_node', '/',
                    parameters=(str(path), {}), path_parameters=('playback_file',))
    with pytest.raises(BringupError, match=message):
        check_graph((node,))


def detector(tmp_path, parameters):
    path = tmp_path / 'detector_node.yaml'
    path.write_text(yaml.safe_dump({'/**/detector_node': {'ros__parameters': parameters}}))
    return NodeSpec('litedet_ros', 'detector_node', 'detector_node', '/',
                    parameters=(str(path), {'backend': 'onnxruntime', 'precision': 'int8'}))


def test_detector_preflight_finds_the_model_and_labels_the_node_will_load(tmp_path):
    model = tmp_path / 'model.onnx'
    with pytest.raises(BringupError, match=f'model file not found: {model}'):
        check_graph((detector(tmp_path, {'model_file_path': str(model)}),))
    model.write_bytes(b'onnx')
    with pytest.raises(BringupError, match='labels file not found: .*labels.txt'):
        check_graph((detector(tmp_path, {'model_file_path': str(model)}),))
    (tmp_path / 'labels.txt').write_text('box\n')
    check_graph((detector(tmp_path, {'model_file_path': str(model)}),))
    with pytest.raises(BringupError, match='detector_node: .*nms'):
        check_graph((detector(tmp_path, {'model_file_path': str(model),
                                         'nms_threshold': 2.0}),))


def test_check_graph_accepts_the_shipped_files_it_has():
    present = [node for node in build_graph(options_from_arguments({'use_sim': 'true'}), CONFIG)
               if Path(node.parameter_files[0]).is_file()]
    assert 'sim_node' in [node.name for node in present]
    check_graph(tuple(present))


def test_parameters_a_node_does_not_declare_are_refused(tmp_path):
    # a node ignores them: a misspelt name would leave the default in force unnoticed
    extra = write(tmp_path / 'extra.yaml',
                  '/**/grasp_planner_node:\n  ros__parameters:\n    min_depth_fraction: 0.5\n'
                  '    wall_tilt_distance: 0.09\n')
    nodes = build_graph(options_from_arguments({'use_sim': 'true', 'params_file': extra}),
                        CONFIG)
    with pytest.raises(BringupError, match=r"extra.yaml: section /\*\*/grasp_planner_node sets "
                       r"parameters grasp_planner_node does not have: \['wall_tilt_distance'\] "
                       r'\(wall_tilt_distance: did you mean wall_tilt_deg or wall_clearance\?\)'):
        check_graph(nodes)
    # sections for every node carry parameters for those that declare them; rclpy's own pass
    shared = write(tmp_path / 'shared.yaml',
                   '/**:\n  ros__parameters:\n    backend: torch\n    use_sim_time: true\n'
                   '/**/sim_node:\n  ros__parameters:\n    num_objects: 12\n'
                   '    qos_overrides./clock.publisher.depth: 5\n')
    check_graph(build_graph(options_from_arguments({'use_sim': 'true', 'params_file': shared}),
                            CONFIG))


def test_select_refuses_unknown_nodes():
    nodes = build_graph(options_from_arguments({'use_sim': 'true'}), CONFIG)
    assert [n.name for n in select(nodes, ['controller_node', 'sim_node'])] == [
        'sim_node', 'controller_node']
    with pytest.raises(BringupError, match='camera_node'):
        select(nodes, ['camera_node'])


def test_missing_rviz_config_is_refused(tmp_path):
    nodes = build_graph(options_from_arguments(
        {'camera': 'none', 'use_rviz': 'true', 'rviz_config': str(tmp_path / 'x.rviz')}), CONFIG)
    with pytest.raises(BringupError, match='RViz config not found'):
        check_graph(select(nodes, ['rviz2']))
    shipped = build_graph(options_from_arguments({'camera': 'none', 'use_rviz': 'true'}), CONFIG)
    check_graph(select(shipped, ['rviz2']))


def test_plain_node_keys_apply_in_the_root_namespace_only(tmp_path):
    path = write(tmp_path / 'camera_node.yaml',
                 'camera_node:\n  ros__parameters:\n    frame_timeout: 2.0\n')
    root = NodeSpec('litedet_ros', 'camera_node', 'camera_node', '/', parameters=(path,))
    check_graph((root,))
    with pytest.raises(BringupError, match=r'/\*\*/camera_node: applies in any'):
        check_graph((replace(root, namespace='/cell'),))


def test_shipped_own_config_files_work_in_a_namespace():
    nodes = build_graph(options_from_arguments({'use_sim': 'true', 'namespace': 'cell'}), CONFIG)
    check_graph(select(nodes, ['sim_node']))
    assert resolve_parameters(nodes[0])['num_objects'] == 10


def test_every_node_gets_the_fast_dds_profile_unless_the_user_chose(monkeypatch):
    for name in (*FASTDDS_PROFILE_VARIABLES, 'RMW_IMPLEMENTATION'):
        monkeypatch.delenv(name, raising=False)
    nodes = build_graph(options_from_arguments({'use_sim': 'true', 'use_rviz': 'true'}), CONFIG)
    profile = (('FASTRTPS_DEFAULT_PROFILES_FILE', str(CONFIG / 'fastdds.xml')),)
    assert all(node.additional_env == profile for node in nodes)
    assert (CONFIG / 'fastdds.xml').is_file()
    assert middleware_environment(CONFIG, {'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}) == profile
    for environ in ({'FASTDDS_DEFAULT_PROFILES_FILE': '/etc/mine.xml'},
                    {'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/mine.xml'},
                    {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}):
        assert middleware_environment(CONFIG, environ) == ()
