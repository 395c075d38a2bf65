"""Record serialized ROS 2 messages into an MCAP file that Foxglove and rosbag2 can open.

The messages are stored as they travel (CDR bytes, as an ``rclpy`` subscription with
``raw=True`` hands them over), with ``ros2msg`` schemas in rosbag2's layout: the type's ``.msg``
text, then every nested type's text after a ``MSG: pkg/Type`` separator line. Schemas are read
from the ``share/<package>/msg/<Type>.msg`` files every ROS 2 interface package installs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
import re

from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType, Writer

from litedet_ros.errors import LitedetError

PRIMITIVES = frozenset({'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16',
                        'uint16', 'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'})
SEPARATOR = '=' * 80
_FIELD = re.compile(r'^\s*([A-Za-z][\w/]*)(?:<=\d+)?(?:\[[^\]]*\])?\s+([A-Za-z]\w*)(\s*=)?')


class RecordingError(LitedetError):
    """A message definition cannot be found or a recording cannot be written."""


def _msg_file(type_name: str, share_dirs: Iterable[Path]) -> Path:
    package, _, name = type_name.partition('/msg/')
    for share in share_dirs:
        path = Path(share) / package / 'msg' / f'{name}.msg'
        if path.is_file():
            return path
    raise RecordingError(f'no definition of {type_name} (looked for {package}/msg/{name}.msg '
                         f'under {[str(s) for s in share_dirs]})')


def _dependencies(text: str, package: str) -> list[str]:
    """Complex field types of a ``.msg`` text, as ``pkg/msg/Type``, in order of appearance."""
    found = []
    for line in text.splitlines():
        match = _FIELD.match(line.split('#', 1)[0])
        if not match or match.group(3):  # no field, or a constant (TYPE NAME=VALUE)
            continue
        base = match.group(1)
        if base in PRIMITIVES:
            continue
        if base == 'Header':
            base = 'std_msgs/Header'
        pkg, _, name = base.rpartition('/')
        found.append(f'{pkg or package}/msg/{name}')
    return found


def message_definition(type_name: str, share_dirs: Iterable[Path]) -> str:
    """The full ``ros2msg`` definition of ``type_name`` (e.g. ``sensor_msgs/msg/Image``).

    Args:
        type_name: ``package/msg/Type``.
        share_dirs: directories holding ``<package>/msg/<Type>.msg`` (``<prefix>/share``).

    Raises:
        RecordingError: a definition file is missing.
    """
    share_dirs = [Path(s) for s in share_dirs]
    text = _msg_file(type_name, share_dirs).read_text()
    parts, seen = [text.rstrip('\n')], {type_name}
    queue = _dependencies(text, type_name.partition('/')[0])
    while queue:
        dependency = queue.pop(0)
        if dependency in seen:
            continue
        seen.add(dependency)
        body = _msg_file(dependency, share_dirs).read_text()
        parts.append(f'{SEPARATOR}\nMSG: {dependency.replace("/msg/", "/")}\n'
                     f'{body.rstrip(chr(10))}')
        queue += _dependencies(body, dependency.partition('/')[0])
    return '\n'.join(parts) + '\n'


class McapRecorder:
    """Write CDR messages of several topics into one MCAP file (zstd chunks).

    Args:
        path: output ``.mcap`` file.
        share_dirs: where the ``.msg`` definitions are (see :func:`message_definition`).
    """

    def __init__(self, path: str | Path, share_dirs: Iterable[Path]) -> None:
        self.path = Path(path)
        self.share_dirs = [Path(s) for s in share_dirs]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, 'wb')  # noqa: SIM115 - closed in close()
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile='ros2', library='litedet_ros')
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._sequence = 0
        #: Messages written per topic.
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, type_name: str) -> None:
        """Declare a topic and its type (``package/msg/Type``) before writing to it."""
        if type_name not in self._schemas:
            definition = message_definition(type_name, self.share_dirs)
            self._schemas[type_name] = self._writer.register_schema(
                name=type_name.replace('/msg/', '/'), encoding=SchemaEncoding.ROS2,
                data=definition.encode())
        self._channels[topic] = self._writer.register_channel(
            topic=topic, message_encoding=MessageEncoding.CDR,
            schema_id=self._schemas[type_name])
        self.counts[topic] = 0

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int) -> None:
        """Append one serialized message (CDR with its 4-byte encapsulation header)."""
        if topic not in self._channels:
            raise RecordingError(f'topic {topic} was not added to the recording')
        self._writer.add_message(channel_id=self._channels[topic], log_time=log_time_ns,
                                 data=data, publish_time=publish_time_ns,
                                 sequence=self._sequence)
        self._sequence += 1
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the file (summary, index); the recorder cannot be used afterwards."""
        if not self._file.closed:
            self._writer.finish()
            self._file.close()
