"""Bin picking: camera or simulated workcell, detector, grasp planner, controller, RViz 2.

    ros2 launch litedet_ros bin_picking.launch.py                       # RealSense (own node)
    ros2 launch litedet_ros bin_picking.launch.py camera:=realsense2_camera use_rviz:=true
    ros2 launch litedet_ros bin_picking.launch.py use_sim:=true         # MuJoCo workcell

The nodes, their parameters files, overrides and remappings come from
``litedet_ros.bringup.graph``, the description ``litedet-ros bringup`` also starts (that runner is
what machines without ``ros2 launch`` use), so the two cannot drift. Every node except the
visualisation ones (RViz, robot_state_publisher) is required: when one exits, the launch shuts
down. ``ros2 launch ... --show-args`` lists the arguments.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from litedet_ros.bringup.graph import (
    LAUNCH_ARGUMENTS,
    PACKAGE,
    NodeSpec,
    build_graph,
    check_graph,
    options_from_arguments,
)


def node_action(spec: NodeSpec) -> Node:
    """One launch_ros Node action from a graph node, every field passed through."""
    return Node(
        package=spec.package,
        executable=spec.executable,
        name=spec.name,
        namespace=spec.namespace,
        parameters=list(spec.parameters),
        remappings=list(spec.remappings),
        arguments=list(spec.arguments),
        additional_env=dict(spec.additional_env),
        on_exit=Shutdown(reason=f'{spec.name} exited') if spec.required else None,
        output='screen',
        emulate_tty=True,
    )


def launch_setup(context):
    """Resolve the arguments, build and check the graph, return its Node actions."""
    arguments = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    config_dir = Path(get_package_share_directory(PACKAGE)) / 'config'
    nodes = build_graph(options_from_arguments(arguments), config_dir)
    check_graph(nodes)
    return [node_action(spec) for spec in nodes]


def generate_launch_description() -> LaunchDescription:
    """Declare the graph's launch arguments, then start its nodes."""
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in LAUNCH_ARGUMENTS.items()),
        OpaqueFunction(function=launch_setup),
    ])
