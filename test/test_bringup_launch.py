"""The launch file and the runner start the same nodes with the same parameters and remappings.

``launch``/``launch_ros`` cannot be installed here, so the launch file is checked by reading its
syntax tree (it must build every ``Node`` from a graph NodeSpec, passing every field through, and
nothing else), and the runner by handing its ``--ros-args`` to real rcl: the node must come up
with the spec's name, namespace, merged parameters and remappings.
"""

import ast
from dataclasses import fields, replace
from pathlib import Path

import pytest

from litedet_ros.bringup.graph import (
    NodeSpec,
    build_graph,
    options_from_arguments,
    resolve_parameters,
)
from litedet_ros.bringup.runner import node_commands, parameter_value, ros_arguments

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'bin_picking.launch.py'
SIM_LAUNCH = ROOT / 'launch' / 'sim.launch.py'
# NodeSpec fields the launch file must hand to launch_ros' Node (required -> on_exit)
NODE_FIELDS = ('package', 'executable', 'name', 'namespace', 'parameters', 'remappings',
               'arguments', 'additional_env')
ARGUMENT_SETS = [
    {},
    {'use_sim': 'true', 'namespace': 'cell', 'backend': 'torch', 'precision': 'fp32'},
    {'camera': 'realsense2_camera', 'use_sim_time': 'true'},
    {'use_sim': 'true', 'use_rviz': 'true', 'camera': 'none'},
]


def tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def calls(node, name):
    return [c for c in ast.walk(node) if isinstance(c, ast.Call)
            and getattr(c.func, 'id', getattr(c.func, 'attr', None)) == name]


def function(module, name):
    return next(f for f in module.body if isinstance(f, ast.FunctionDef) and f.name == name)


def test_launch_file_builds_its_nodes_from_the_graph_only():
    module = tree(LAUNCH)
    imported = {alias.name for node in ast.walk(module) if isinstance(node, ast.ImportFrom)
                and node.module == 'litedet_ros.bringup.graph' for alias in node.names}
    assert {'LAUNCH_ARGUMENTS', 'build_graph', 'check_graph', 'options_from_arguments'} <= imported
    node_calls = calls(module, 'Node')
    assert len(node_calls) == 1, 'every Node must come from the graph'
    action = function(module, 'node_action')
    spec = action.args.args[0].arg
    keywords = {k.arg: k.value for k in node_calls[0].keywords}
    for name in NODE_FIELDS:
        value = keywords[name]
        if isinstance(value, ast.Call):  # list(spec.field), dict(spec.additional_env)
            assert value.func.id in ('list', 'dict') and len(value.args) == 1
            value = value.args[0]
        assert isinstance(value, ast.Attribute) and value.attr == name, name
        assert value.value.id == spec, name
    assert set(NODE_FIELDS) | {'required', 'path_parameters'} == {
        f.name for f in fields(NodeSpec)}, 'a new NodeSpec field must reach the launch file'
    on_exit = keywords['on_exit']
    assert isinstance(on_exit, ast.IfExp) and ast.unparse(on_exit.test) == f'{spec}.required'
    assert calls(on_exit.body, 'Shutdown')


def test_launch_file_declares_the_graph_arguments_and_passes_them_all():
    module = tree(LAUNCH)
    declares = calls(function(module, 'generate_launch_description'), 'DeclareLaunchArgument')
    assert len(declares) == 1
    comprehension = next(n for n in ast.walk(function(module, 'generate_launch_description'))
                         if isinstance(n, ast.GeneratorExp))
    assert ast.unparse(comprehension.generators[0].iter) == 'LAUNCH_ARGUMENTS.items()'
    keywords = {k.arg: ast.unparse(k.value) for k in declares[0].keywords}
    assert keywords == {'default_value': 'default', 'description': 'description'}
    assert calls(function(module, 'generate_launch_description'), 'OpaqueFunction')

    setup = function(module, 'launch_setup')
    source = ast.unparse(setup)
    assert 'for name in LAUNCH_ARGUMENTS' in source
    assert 'LaunchConfiguration(name).perform(context)' in source
    assert 'build_graph(options_from_arguments(arguments), config_dir)' in source
    assert 'check_graph(nodes)' in source
    assert '[node_action(spec) for spec in nodes]' in source


def test_sim_launch_file_is_bin_picking_with_use_sim():
    module = tree(SIM_LAUNCH)
    include = calls(module, 'IncludeLaunchDescription')
    assert len(include) == 1 and 'bin_picking.launch.py' in ast.unparse(include[0])
    assert "{'use_sim': 'true'}" in ast.unparse(include[0])
    assert not calls(module, 'Node')


def parse_ros_arguments(args):
    """Read a runner's --ros-args back into NodeSpec terms (rcl's grammar, the parts used)."""
    assert args[0] == '--ros-args'
    name = namespace = None
    files, overrides, remaps = [], {}, []
    i = 1
    while i < len(args):
        flag, value = args[i], args[i + 1]
        i += 2
        if flag == '--params-file':
            files.append(value)
        elif flag == '-p':
            key, _, text = value.partition(':=')
            overrides[key] = text
        else:
            assert flag == '-r'
            source, _, target = value.partition(':=')
            if source == '__node':
                name = target
            elif source == '__ns':
                namespace = target
            else:
                remaps.append((source, target))
    return name, namespace, tuple(files), overrides, tuple(remaps)


@pytest.mark.parametrize('arguments', ARGUMENT_SETS)
def test_runner_command_lines_carry_every_spec_field(arguments):
    nodes = build_graph(options_from_arguments(arguments), ROOT / 'config')
    for node in nodes:
        node = replace(node, remappings=(('detections', 'detector/detections'),))
        name, namespace, files, overrides, remaps = parse_ros_arguments(ros_arguments(node))
        assert (name, namespace) == (node.name, node.namespace)
        assert files == node.parameter_files
        assert overrides == {k: parameter_value(v) for k, v in node.overrides.items()}
        assert remaps == node.remappings


def test_runner_runs_litedet_nodes_from_this_environment_with_extra_arguments():
    nodes = tuple(node for node in build_graph(options_from_arguments({'use_sim': 'true'}),
                                               ROOT / 'config')
                  if (ROOT / 'litedet_ros' / f'{node.executable}.py').is_file())
    assert 'sim_node' in [node.name for node in nodes]
    commands = node_commands(nodes)
    assert [c.name for c in commands] == [n.name for n in nodes]
    for command, node in zip(commands, nodes):
        assert f'from litedet_ros.{node.executable} import main' in command.argv[2]
        assert command.argv[3:] == (*node.arguments, *ros_arguments(node))
        assert command.required == node.required
        assert command.env == node.additional_env


@pytest.fixture
def config_dir(tmp_path):
    """A config directory with a parameters file for every litedet_ros node."""
    for name in ('sim_node', 'camera_node', 'detector_node', 'grasp_planner_node',
                 'controller_node'):
        (tmp_path / f'{name}.yaml').write_text(
            f'/**/{name}:\n  ros__parameters:\n    rate: 15.0\n    label: "{name}"\n'
            '    nested: {flag: true, values: [0.05, 0.5, 0.12]}\n'
            '/**:\n  ros__parameters:\n    shared: 3\n')
    (tmp_path / 'bin_picking.rviz').write_text('Panels: []\n')
    return tmp_path


def plain(value):
    """Parameter value as YAML would load it (rclpy gives arrays for lists)."""
    return list(value) if hasattr(value, 'tolist') or isinstance(value, tuple) else value


@pytest.mark.parametrize('arguments', ARGUMENT_SETS)
def test_rcl_gives_each_node_the_spec_it_was_built_from(ros_context, config_dir, arguments):
    """Hand the runner's --ros-args to real rcl: name, namespace, parameters, remappings."""
    import rclpy
    from rclpy.node import Node

    for node in build_graph(options_from_arguments(arguments), config_dir):
        node = replace(node, remappings=(('detections', 'detector/detections'),))
        context = rclpy.context.Context()
        rclpy.init(context=context, args=['node', *node.arguments, *ros_arguments(node)])
        try:
            probe = Node('probe', context=context, start_parameter_services=False,
                         automatically_declare_parameters_from_overrides=True)
            assert (probe.get_name(), probe.get_namespace()) == (node.name, node.namespace)
            got = {name: plain(parameter.value)
                   for name, parameter in probe._parameters.items()}
            expected = resolve_parameters(node)
            assert {name: got.get(name) for name in expected} == expected, node.name
            assert probe.resolve_topic_name('detections') == (
                f'{node.namespace.rstrip("/")}/detector/detections')
            probe.destroy_node()
        finally:
            context.try_shutdown()
