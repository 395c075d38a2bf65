"""The ``litedet-ros`` command line: one entry point, one sub-command per area.

Each sub-command lives in its own module that exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their sub-command runs, so ``--help`` and
light commands never pay for torch or MuJoCo start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from litedet_ros import __version__

# name -> (module, one-line help). Keep sorted by name.
COMMANDS: dict[str, tuple[str, str]] = {
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser; sub-command arguments are added on demand."""
    parser = argparse.ArgumentParser(
        prog='litedet-ros',
        description='Lightweight-detector bin picking for ROS 2: tools, benchmarks and bringup.')
    parser.add_argument('--version', action='version', version=f'litedet-ros {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)  # prints help, version or a usage error
        parser.print_help()
        return 0 if not argv else 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    command_parser = argparse.ArgumentParser(prog=f'litedet-ros {name}', description=help_text)
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
