"""Simulated bin-picking workcell (MuJoCo), ROS-free.

Headless rendering: ``MUJOCO_GL`` defaults to ``egl`` here, before any submodule imports mujoco.
"""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')
