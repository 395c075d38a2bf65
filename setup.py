"""pip/setuptools entry for the litedet_ros Python package.

On a ROS 2 install, colcon builds this package with CMakeLists.txt (interfaces + Python sources +
node executables under lib/litedet_ros). This file serves pip: the development venv
(`make env`, editable) and users who want the ROS-free core and the `litedet-ros` command.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# executable = module = node name, as `ros2 run litedet_ros <node>` expects
NODES = sorted(path.stem for path in (HERE / 'litedet_ros').glob('*_node.py'))

setup(
    name='litedet_ros',
    version='0.1.0',
    description='Lightweight-detector robotic bin picking for ROS 2',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['litedet_ros', 'litedet_ros.*']),
    entry_points={
        'console_scripts': ['litedet-ros = litedet_ros.cli:main']
        + [f'{node} = litedet_ros.{node}:main' for node in NODES],
    },
)
