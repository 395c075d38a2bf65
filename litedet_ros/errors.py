"""Typed errors raised by the ROS-free core.

Nodes catch :class:`LitedetError` at the callback boundary, log it (throttled), count it and keep
running. Every subclass is also a :class:`ValueError` so plain callers can handle bad input the
usual Python way.
"""


class LitedetError(ValueError):
    """Base class of every error the core raises on bad input or an impossible request."""


class InvalidImageError(LitedetError):
    """An image buffer or its metadata cannot be interpreted (encoding, size, step, data)."""


class InvalidCameraInfoError(LitedetError):
    """Camera intrinsics are missing, zero or inconsistent with the image."""


class InvalidMessageError(LitedetError):
    """A message field holds a value the core refuses (NaN, wrong length, unknown enum)."""


class StaleInputError(LitedetError):
    """An input is too old, or its stamp goes backwards relative to the previous one."""
