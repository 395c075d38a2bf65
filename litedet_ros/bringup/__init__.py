"""Bringup: the node graph described once, and a runner that starts it without ``ros2 launch``."""
