"""Follow the controller's ``pick_status``: tell which images show a pick under way.

While a pick is under way (:data:`~litedet_ros.motion.status.PICK_UNDER_WAY`) the arm is in or
near the camera's view and the scene changes; the controller only takes grasps of images taken
after its attempt ended. Perception nodes skip the other images instead of spending cores the
simulator and the motion planner need. Without a controller nothing is skipped.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from litedet_ros import conversions, topics
from litedet_ros.motion.status import PICK_UNDER_WAY
from litedet_ros.msg import PickStatus


class PickGate:
    """Subscribe to ``pick_status`` (reliable, transient local) on behalf of ``node``.

    Attributes:
        under_way: the last status says a pick is under way.
        ended_ns: stamp of the status that ended the last pick (0 before one ended).
    """

    def __init__(self, node: Node) -> None:
        self.under_way = False
        self.ended_ns = 0
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(PickStatus, topics.PICK_STATUS, self._on_status, latched)

    def _on_status(self, msg: PickStatus) -> None:
        under_way = msg.state in PICK_UNDER_WAY  # an unknown code is not a pick
        if self.under_way and not under_way:
            self.ended_ns = conversions.stamp_to_ns(msg.header.stamp)
        self.under_way = under_way

    def blocks(self, stamp_ns: int) -> bool:
        """Whether an image stamped ``stamp_ns`` shows a pick under way or the scene before it."""
        return self.under_way or stamp_ns < self.ended_ns
