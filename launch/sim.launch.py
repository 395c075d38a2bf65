"""The bin-picking pipeline against the simulated MuJoCo workcell.

    ros2 launch litedet_ros sim.launch.py use_rviz:=true

The same as ``bin_picking.launch.py use_sim:=true`` (``litedet-ros bringup --sim`` here); every
other argument of that file applies.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource


def generate_launch_description() -> LaunchDescription:
    """Include bin_picking.launch.py with use_sim:=true."""
    launch_dir = Path(get_package_share_directory('litedet_ros')) / 'launch'
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(launch_dir / 'bin_picking.launch.py')),
            launch_arguments={'use_sim': 'true'}.items()),
    ])
