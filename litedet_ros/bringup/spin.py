"""Run one node process until Ctrl-C or SIGTERM: the ``main()`` of every litedet_ros node."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from litedet_ros import conversions, topics
from litedet_ros.motion.status import PickGate
from litedet_ros.msg import PickStatus

#: Reliable, transient local, newest only: a late subscriber still gets the last message.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def spin_node(node_class: Callable[[], Node], args: list[str] | None = None, *,
              until: Callable[[Node], bool] | None = None) -> None:
    """Create the node, spin it until shutdown (or ``until(node)``), then clean up.

    Args:
        node_class: builds the node (after ``rclpy.init``).
        args: command line arguments for ``rclpy.init`` (``--ros-args ...``).
        until: stop spinning once this returns True (checked every 0.1 s); None: until shutdown.
    """
    rclpy.init(args=args)
    node = node_class()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while until is None or not until(node):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if node.context.ok():
            raise
        # Ctrl-C shut the context down while the executor took a message: not an error
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def declare_read_only(node: Node, table: Mapping[str, tuple[object, str]]) -> dict[str, object]:
    """Declare ``{name: (default, description)}`` as read-only parameters; return their values."""
    for name, (default, description) in table.items():
        node.declare_parameter(name, default,
                               ParameterDescriptor(description=description, read_only=True))
    return {name: node.get_parameter(name).value for name in table}


def follow_pick_status(node: Node) -> PickGate:
    """Return a :class:`~litedet_ros.motion.status.PickGate` fed by ``node``'s ``pick_status``."""
    gate = PickGate()
    node.create_subscription(
        PickStatus, topics.PICK_STATUS,
        lambda msg: gate.update(msg.state, conversions.stamp_to_ns(msg.header.stamp)),
        LATCHED_QOS)
    return gate
