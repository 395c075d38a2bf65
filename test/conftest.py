"""Shared pytest fixtures: an isolated ROS 2 context and helpers to spin real nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import os
import random
import time

import pytest

# Every test session gets its own DDS domain, visible on this host only, so parallel runs and
# other ROS 2 users on the machine never see our traffic. Set before rclpy is imported.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('MUJOCO_GL', 'egl')


@pytest.fixture
def ros_context() -> Iterator[object]:
    """Yield an initialised rclpy context, shut down after the test."""
    rclpy = pytest.importorskip('rclpy', reason='rclpy (ROS 2 Jazzy wheels) is not installed')
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


@pytest.fixture
def ros_executor(ros_context) -> Iterator[object]:
    """Yield a single-threaded executor bound to ``ros_context``; its nodes are destroyed after."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    try:
        yield executor
    finally:
        for node in list(executor.get_nodes()):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()


@pytest.fixture
def spin_until(ros_executor) -> Callable[..., bool]:
    """Return ``spin_until(predicate, timeout=5.0)``: spin until it holds; say whether it did."""

    def spin(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            ros_executor.spin_once(timeout_sec=0.02)
        return predicate()

    return spin
