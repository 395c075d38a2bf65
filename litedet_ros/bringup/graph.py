"""The node graph of the bin-picking system, described once.

``launch/bin_picking.launch.py`` turns these specifications into ``launch_ros`` ``Node``
actions; ``litedet-ros bringup`` (:mod:`litedet_ros.bringup.runner`) turns them into
``--ros-args`` command lines. Both take the same arguments (:data:`LAUNCH_ARGUMENTS`, strings, as
``ros2 launch`` passes them) through :func:`options_from_arguments` and :func:`build_graph`, so
node set, names, namespaces, parameter files, parameter overrides and remappings cannot drift.

Graph (all topic names relative, so ``namespace`` moves the whole cell)::

    sim_node (use_sim)  |  camera_node (camera=own)  |  camera (realsense2_camera)
        -> detector_node -> grasp_planner_node -> controller_node -> sim_node / robot driver
    robot_state_publisher (use_rviz and use_sim: the workcell URDF for RViz), rviz2 (use_rviz)

Parameters of a node, later entries winning, as in ``launch_ros``: ``config/<node>.yaml``, the
``params_file`` argument (if any), then the overrides made from the arguments (``use_sim_time``;
``backend`` and ``precision`` for the detector; ``finger_length`` for the sim, the grasp planner
and the controller, and in the URDF of robot_state_publisher). Every node except the
visualisation ones (``robot_state_publisher``, ``rviz2``) is *required*: when it exits, the whole
bringup shuts down (``on_exit=Shutdown()`` in the launch file, the same rule in the runner).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import difflib
import os
from pathlib import Path
import re

import yaml

from litedet_ros.description import workcell_urdf
from litedet_ros.detection.backends import BACKENDS, PRECISIONS
from litedet_ros.errors import LitedetError

PACKAGE = 'litedet_ros'
CAMERAS = ('own', 'realsense2_camera', 'none')
TRUE_WORDS = ('true', '1', 'yes', 'on')
FALSE_WORDS = ('false', '0', 'no', 'off')
RVIZ_CONFIG = 'bin_picking.rviz'
#: Fast DDS profile of the graph's processes (shared memory large enough for camera images)
FASTDDS_PROFILE = 'fastdds.xml'
FASTDDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')

#: Launch arguments: name -> (default, description). Values are strings, as ``ros2 launch``
#: passes them; ``use_sim_time`` empty means "same as use_sim", ``rviz_config`` empty means
#: ``<config>/bin_picking.rviz``.
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    'use_sim': ('false', 'Run the simulated MuJoCo workcell (sim_node) instead of a camera '
                         'and a robot driver.'),
    'use_sim_time': ('', 'Nodes follow /clock (true/false); empty: the value of use_sim.'),
    'use_rviz': ('false', 'Start RViz 2 with rviz_config.'),
    'rviz_config': ('', 'RViz 2 config file; empty: config/bin_picking.rviz of this package.'),
    'params_file': ('', 'Extra ROS 2 parameters YAML applied after config/<node>.yaml '
                        '(keys: node names or /**).'),
    'namespace': ('', 'Namespace of every node (and so of every relative topic).'),
    'backend': ('onnxruntime', 'Detector inference backend: onnxruntime, tensorrt or torch.'),
    'precision': ('int8', 'Detector precision (which shipped model): int8 or fp32.'),
    'camera': ('own', "Camera when use_sim is false: 'own' (litedet_ros camera_node), "
                      "'realsense2_camera' (the official driver) or 'none' (topics come from "
                      'elsewhere).'),
    'finger_length': ('', "Length of the gripper's fingers, m: the grasp planner's "
                          "gripper_finger_length, the built-in motion backend's and the "
                          "simulated cell's model; empty: as their parameter files say."),
}

#: Parameters given to the official realsense2_camera driver: the same streams rs_launch.py
#: starts with ``align_depth.enable:=true``, at the resolution the detector expects.
REALSENSE_PARAMETERS: dict[str, object] = {
    'align_depth.enable': True,
    'enable_sync': True,
    'rgb_camera.color_profile': '640x480x30',
    'depth_module.depth_profile': '640x480x30',
    'pointcloud.enable': False,
}

#: Parameters that name files which must exist before a node starts (empty = not used).
PATH_PARAMETERS: dict[str, tuple[str, ...]] = {
    'camera_node': ('playback_file',),
}

#: The parameter holding the gripper's finger length, per node that models the gripper.
FINGER_PARAMETERS: dict[str, str] = {'sim_node': 'finger_length',
                                     'grasp_planner_node': 'gripper_finger_length',
                                     'controller_node': 'finger_length'}

_NAMESPACE = re.compile(r'^(/[A-Za-z_][A-Za-z0-9_]*)*$')


class BringupError(LitedetError):
    """A launch argument, parameters file or node of the graph is unusable; nothing started."""


@dataclass(frozen=True)
class GraphOptions:
    """Validated launch arguments (see :data:`LAUNCH_ARGUMENTS`).

    ``namespace`` is stored absolute (``''`` -> ``'/'``, ``'cell'`` -> ``'/cell'``).
    """

    use_sim: bool = False
    use_sim_time: bool = False
    use_rviz: bool = False
    rviz_config: str = ''
    params_file: str = ''
    namespace: str = '/'
    backend: str = 'onnxruntime'
    precision: str = 'int8'
    camera: str = 'own'
    finger_length: float | None = None

    def __post_init__(self) -> None:
        if not _NAMESPACE.match(self.namespace.rstrip('/')):
            raise BringupError(f'invalid namespace {self.namespace!r}: expected names of '
                               'letters, digits and underscores separated by /')
        for name, value, allowed in (('camera', self.camera, CAMERAS),
                                     ('backend', self.backend, BACKENDS),
                                     ('precision', self.precision, PRECISIONS)):
            if value not in allowed:
                raise BringupError(f'unknown {name} {value!r}, expected one of {allowed}')
        if self.finger_length is not None and not 0 < self.finger_length < 1:
            raise BringupError(f'finger_length must be a length in m in (0, 1), got '
                               f'{self.finger_length}')


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: what ``launch_ros.actions.Node`` and ``ros2 run`` need.

    Attributes:
        package: ROS package of the executable.
        executable: executable name (for litedet_ros nodes also the module and node name).
        name: node name.
        namespace: absolute namespace.
        parameters: parameter files (str paths) first, then at most one dict of overrides,
            later entries winning (``launch_ros`` ``parameters=`` form).
        remappings: ``(from, to)`` topic or service remappings.
        arguments: extra command-line arguments before ``--ros-args``.
        additional_env: ``(name, value)`` environment variables added for the process.
        required: the whole graph stops when this node exits.
    """

    package: str
    executable: str
    name: str
    namespace: str
    parameters: tuple[str | dict, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()
    additional_env: tuple[tuple[str, str], ...] = ()
    required: bool = True
    path_parameters: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        dicts = [i for i, entry in enumerate(self.parameters) if isinstance(entry, dict)]
        if dicts and dicts != [len(self.parameters) - 1]:
            raise BringupError(f'{self.name}: parameter overrides must be one dict after the '
                               'files')

    @property
    def full_name(self) -> str:
        """Fully qualified node name, e.g. ``/cell/detector_node``."""
        return f'{self.namespace.rstrip("/")}/{self.name}'

    @property
    def parameter_files(self) -> tuple[str, ...]:
        """The parameter files, in order."""
        return tuple(entry for entry in self.parameters if isinstance(entry, str))

    @property
    def overrides(self) -> dict:
        """The parameter overrides (applied after every file)."""
        return next((entry for entry in self.parameters if isinstance(entry, dict)), {})


def parse_bool(name: str, value: str) -> bool:
    """Parse a launch-argument boolean (``true/false/1/0/yes/no/on/off``, any case)."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BringupError(f'{name} must be true or false, got {value!r}')


def options_from_arguments(arguments: Mapping[str, str]) -> GraphOptions:
    """Validate launch arguments (names of :data:`LAUNCH_ARGUMENTS`; missing ones default).

    Raises:
        BringupError: an unknown argument name or an invalid value.
    """
    unknown = sorted(set(arguments) - set(LAUNCH_ARGUMENTS))
    if unknown:
        raise BringupError(f'unknown launch arguments {unknown}; known: '
                           f'{sorted(LAUNCH_ARGUMENTS)}')
    values = {name: str(arguments.get(name, default))
              for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    use_sim = parse_bool('use_sim', values['use_sim'])
    sim_time = values['use_sim_time'].strip()
    namespace = values['namespace'].strip().strip('/')
    fingers = values['finger_length'].strip()
    try:
        finger_length = float(fingers) if fingers else None
    except ValueError:
        raise BringupError(f'finger_length must be a number (m), got {fingers!r}') from None
    return GraphOptions(
        use_sim=use_sim,
        use_sim_time=use_sim if not sim_time else parse_bool('use_sim_time', sim_time),
        use_rviz=parse_bool('use_rviz', values['use_rviz']),
        rviz_config=values['rviz_config'].strip(),
        params_file=values['params_file'].strip(),
        namespace=f'/{namespace}',
        backend=values['backend'].strip(),
        precision=values['precision'].strip(),
        camera=values['camera'].strip(),
        finger_length=finger_length)


def middleware_environment(config_dir: str | Path,
                           environ: Mapping[str, str] = os.environ) -> tuple[tuple[str, str], ...]:
    """Environment of the graph's processes: ``config/fastdds.xml`` as the Fast DDS profile.

    Nothing when ``environ`` (the user's) already names a Fast DDS profile or another
    middleware than Fast DDS (``RMW_IMPLEMENTATION``): their choice stands.
    """
    if any(name in environ for name in FASTDDS_PROFILE_VARIABLES) or \
            environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp':
        return ()
    return ((FASTDDS_PROFILE_VARIABLES[0], str(Path(config_dir) / FASTDDS_PROFILE)),)


def build_graph(options: GraphOptions, config_dir: str | Path) -> tuple[NodeSpec, ...]:
    """Return the nodes to start for ``options``, in start order.

    Args:
        options: validated launch arguments.
        config_dir: directory holding ``<node>.yaml``, ``bin_picking.rviz`` and ``fastdds.xml``
            (the package's ``share/litedet_ros/config`` on a ROS 2 install, ``config/`` in a
            checkout).
    """
    config_dir = Path(config_dir)
    extra = (options.params_file,) if options.params_file else ()
    sim_time = {'use_sim_time': options.use_sim_time}

    def fingers(node: str) -> dict:
        return {} if options.finger_length is None else \
            {FINGER_PARAMETERS[node]: options.finger_length}
    env = middleware_environment(config_dir)

    def own(name: str, overrides: dict) -> NodeSpec:
        return NodeSpec(PACKAGE, name, name, options.namespace,
                        parameters=(str(config_dir / f'{name}.yaml'), *extra,
                                    *((overrides,) if overrides else ())),
                        additional_env=env, path_parameters=PATH_PARAMETERS.get(name, ()))

    nodes = []
    if options.use_sim:
        # the sim is the clock: it stamps with its own time and publishes /clock
        nodes.append(own('sim_node', fingers('sim_node')))
    elif options.camera == 'own':
        nodes.append(own('camera_node', dict(sim_time)))
    elif options.camera == 'realsense2_camera':
        # the node realsense2_camera's rs_launch.py starts: name camera in namespace camera, so
        # topics are camera/camera/..., the names litedet_ros.topics uses
        nodes.append(NodeSpec('realsense2_camera', 'realsense2_camera_node', 'camera',
                              f'{options.namespace.rstrip("/")}/camera',
                              parameters=(*extra, {**REALSENSE_PARAMETERS, **sim_time}),
                              additional_env=env))
    nodes.append(own('detector_node', {'backend': options.backend,
                                       'precision': options.precision, **sim_time}))
    nodes.append(own('grasp_planner_node', {**sim_time, **fingers('grasp_planner_node')}))
    nodes.append(own('controller_node', {**sim_time, **fingers('controller_node')}))
    if options.use_rviz and options.use_sim:
        # the robot for RViz (on hardware the robot driver's bringup publishes it): the sim's
        # cell, whose finger_length parameter is the xacro argument
        urdf = workcell_urdf(**fingers('sim_node'))
        nodes.append(NodeSpec('robot_state_publisher', 'robot_state_publisher',
                              'robot_state_publisher', options.namespace,
                              parameters=({'robot_description': urdf, **sim_time},),
                              additional_env=env, required=False))
    if options.use_rviz:
        rviz_config = options.rviz_config or str(config_dir / RVIZ_CONFIG)
        nodes.append(NodeSpec('rviz2', 'rviz2', 'rviz2', options.namespace,
                              parameters=(dict(sim_time),), arguments=('-d', rviz_config),
                              additional_env=env, required=False))
    return tuple(nodes)


def select(nodes: tuple[NodeSpec, ...], names: list[str]) -> tuple[NodeSpec, ...]:
    """Keep only the nodes called ``names`` (a runner option for partial bringups and tests)."""
    unknown = sorted(set(names) - {node.name for node in nodes})
    if unknown:
        raise BringupError(f'no node {unknown} in this graph; it has '
                           f'{[node.name for node in nodes]}')
    return tuple(node for node in nodes if node.name in names)


def load_parameters_file(path: str | Path) -> dict[str, dict]:
    """Read a ROS 2 parameters YAML: ``{node key: {parameter: value}}``.

    Raises:
        BringupError: the file is missing, not YAML, or not in ``key: ros__parameters:`` form.
    """
    path = Path(path)
    if not path.is_file():
        raise BringupError(f'parameters file not found: {path}')
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise BringupError(f'parameters file {path} is not valid YAML: {error}') from error
    if not isinstance(content, dict) or not content:
        raise BringupError(f'parameters file {path} must map node names to ros__parameters')
    sections = {}
    for key, section in content.items():
        if not isinstance(section, dict) or not isinstance(section.get('ros__parameters'), dict):
            raise BringupError(f'parameters file {path}: section {key!r} has no '
                               'ros__parameters mapping')
        sections[str(key)] = section['ros__parameters']
    return sections


def _key_matches(key: str, node: NodeSpec) -> bool:
    """Whether a parameters-file key applies to ``node``, by rcl's rules.

    A key without a leading ``/`` is absolute all the same (``detector_node`` only matches a
    node in the root namespace); ``*`` matches one name token, ``/**`` any number of namespace
    tokens, so ``/**/detector_node`` matches the node in any namespace and ``/**`` every node.
    """
    tokens = key.strip('/').split('/') if key.strip('/') else []
    pattern = ''.join('(/[^/]+)*' if token == '**' else '/' + re.escape(token).replace(
        r'\*', '[^/]*') for token in tokens)
    return re.fullmatch(pattern or '/', node.full_name) is not None


def resolve_parameters(node: NodeSpec) -> dict[str, object]:
    """Merge ``node``'s parameter files and overrides into the values the node will see.

    Nested YAML mappings become dotted names (``align_depth: {enable: true}`` ->
    ``align_depth.enable``), as rcl reads them.
    """
    values: dict[str, object] = {}
    for path in node.parameter_files:
        for key, parameters in load_parameters_file(path).items():
            if _key_matches(key, node):
                values.update(_flatten(parameters))
    values.update(node.overrides)
    return values


def _flatten(parameters: dict, prefix: str = '') -> dict[str, object]:
    flat: dict[str, object] = {}
    for name, value in parameters.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{name}.'))
        else:
            flat[f'{prefix}{name}'] = value
    return flat


def _check_detector(values: dict[str, object]) -> None:
    """Validate the detector's parameters and find its model and labels, as the node will."""
    from litedet_ros.detection.node_config import DetectorNodeConfig  # noqa: PLC0415 - torch

    try:
        config = DetectorNodeConfig(**{name: value for name, value in values.items()
                                       if name in DetectorNodeConfig.field_names()})
    except (ValueError, TypeError) as error:
        raise BringupError(f'detector_node: {error}') from error
    model = config.model_path()
    if not model.is_file():
        raise BringupError(f'detector_node: model file not found: {model} (backend '
                           f'{config.backend}, precision {config.precision})')
    labels = Path(config.labels_file) if config.labels_file else model.with_name('labels.txt')
    if not labels.is_file():
        raise BringupError(f'detector_node: labels file not found: {labels}')


#: Checks of a node's resolved parameters before anything starts, by executable.
PREFLIGHT = {'detector_node': _check_detector}

#: Parameters every rclpy node declares besides its own.
RCLPY_PARAMETERS = ('use_sim_time', 'start_type_description_service')


def declared_parameters(executable: str) -> frozenset[str] | None:
    """The parameter names this package's node ``executable`` declares; None if not known.

    The names come from the nodes' configurations, imported here: they pull in torch,
    pinocchio, MuJoCo and rclpy, which the graph needs for nothing else (torch first:
    ../shared/ENVIRONMENT.md).
    """
    from litedet_ros.detection.node_config import DetectorNodeConfig  # noqa: PLC0415
    if executable == 'detector_node':
        names = DetectorNodeConfig.field_names()
    elif executable == 'grasp_planner_node':
        from litedet_ros.grasping.node_config import GraspNodeConfig  # noqa: PLC0415
        names = GraspNodeConfig.field_names()
    elif executable == 'controller_node':
        from litedet_ros.motion.controller import ControllerConfig  # noqa: PLC0415
        names = ControllerConfig.field_names()
    elif executable == 'sim_node':
        from litedet_ros.sim_node import PARAMETERS  # noqa: PLC0415
        names = tuple(PARAMETERS)
    elif executable == 'camera_node':
        from litedet_ros.camera_node import PARAMETERS  # noqa: PLC0415
        names = tuple(PARAMETERS)
    else:
        return None
    return frozenset((*names, *RCLPY_PARAMETERS))


def check_parameter_names(node: NodeSpec, declared: frozenset[str]) -> None:
    """Refuse parameters a node does not declare, in file sections that name the node.

    A node ignores parameters it does not declare, so a misspelt name would silently leave the
    default in force. Sections for every node (``/**``, ``/**/*``) are not checked: their
    parameters are meant for whichever nodes declare them. ``qos_overrides.*`` names are rclpy's.

    Raises:
        BringupError: naming the file, the section, the unknown names and close known ones.
    """
    for path in node.parameter_files:
        for key, parameters in load_parameters_file(path).items():
            if not _key_matches(key, node) or key.rstrip('/').split('/')[-1] != node.name:
                continue
            unknown = sorted(name for name in _flatten(parameters) if name not in declared
                             and not name.startswith('qos_overrides.'))
            if unknown:
                close = {name: difflib.get_close_matches(name, declared, n=2)
                         for name in unknown}
                hints = '; '.join(f'{name}: did you mean {" or ".join(matches)}?'
                                  for name, matches in close.items() if matches)
                raise BringupError(f'{path}: section {key} sets parameters {node.name} does '
                                   f'not have: {unknown}' + (f' ({hints})' if hints else ''))


def check_finger_lengths(parameters: Mapping[str, Mapping[str, object]]) -> None:
    """Refuse nodes that model the gripper with fingers of different lengths.

    Args:
        parameters: resolved parameters by node name (nodes of :data:`FINGER_PARAMETERS`
            that are absent or do not set theirs are not compared).

    Raises:
        BringupError: naming each node's value.
    """
    lengths = {f'{node} {name}': float(parameters[node][name])
               for node, name in FINGER_PARAMETERS.items()
               if name in parameters.get(node, {})}
    if len(set(lengths.values())) > 1:
        raise BringupError(f'the nodes model fingers of different lengths ({lengths}); set '
                           'them together with the finger_length launch argument')


def check_graph(nodes: tuple[NodeSpec, ...]) -> None:
    """Refuse a graph that cannot start: nothing is started when this raises.

    Checks every parameters file (exists, YAML, ``ros__parameters`` form, a node's own
    ``config/<node>.yaml`` has a section for it, and the sections naming one of this package's
    nodes set only parameters it declares), that files named by path parameters exist,
    the detector's parameters, model and labels (:data:`PREFLIGHT`), the RViz config, and
    that the nodes modelling the gripper agree on its finger length.

    Raises:
        BringupError: naming the node and the problem.
    """
    resolved = {}
    for node in nodes:
        own_file = next((path for path in node.parameter_files
                         if Path(path).name == f'{node.name}.yaml'), None)
        if own_file is not None and not any(
                _key_matches(key, node) for key in load_parameters_file(own_file)):
            raise BringupError(f'{own_file} has no section for {node.full_name} (a key '
                               f'{node.name}: only applies in the root namespace; '
                               f'/**/{node.name}: applies in any)')
        if node.package == PACKAGE:
            declared = declared_parameters(node.executable)
            if declared is not None:
                check_parameter_names(node, declared)
        values = resolved[node.name] = resolve_parameters(node)
        for name in node.path_parameters:
            value = values.get(name, '')
            if value and not Path(str(value)).is_file():
                raise BringupError(f'{node.name}: parameter {name} names a file that does not '
                                   f'exist: {value}')
        if node.package == PACKAGE and node.executable in PREFLIGHT:
            PREFLIGHT[node.executable](values)
        if '-d' in node.arguments:
            rviz_config = Path(node.arguments[node.arguments.index('-d') + 1])
            if not rviz_config.is_file():
                raise BringupError(f'RViz config not found: {rviz_config}')
    check_finger_lengths(resolved)
