"""The ``litedet-ros`` command line: one entry point, one sub-command per area.

A sub-command module exposes either ``add_arguments(parser)`` and ``run(args) -> int``, or a
``COMMANDS`` table of its own for nested verbs (``litedet-ros bench detector``). Modules are
imported only when their sub-command runs, so ``--help`` and light commands never pay for torch
or MuJoCo start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from litedet_ros import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    'bench': ('litedet_ros.bench', 'benchmarks that print and save figures'),
    'bringup': ('litedet_ros.bringup.cli',
                'start the node graph (what launch/bin_picking.launch.py starts)'),
    'camera': ('litedet_ros.camera.cli', 'RealSense devices and recordings'),
    'compress': ('litedet_ros.detection.compress_cli',
                 'shrink the detector: structured pruning, knowledge distillation (+ INT8)'),
    'detector': ('litedet_ros.detection.cli', 'detector tools: export, quantize, eval'),
    'demo': ('litedet_ros.bringup.demo',
             'clear a seeded bin in the simulated workcell through the real nodes'),
    'sim': ('litedet_ros.sim.cli', 'simulated workcell: datasets, pictures, benchmark'),
    'train': ('litedet_ros.detection.train_cli',
              'train the MobileNetV2-SSDLite detector on a COCO dataset'),
}


def dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]],
             argv: list[str]) -> int:
    """Parse ``argv`` against a command table and run the chosen command; return its exit code."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if prog == 'litedet-ros':
        parser.add_argument('--version', action='version', version=f'litedet-ros {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (_, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in commands:
        parser.parse_args(argv)  # prints help or version, or exits with a usage error
        parser.print_help()
        return 0 if not argv else 2
    name = argv[0]
    module_name, help_text = commands[name]
    module = importlib.import_module(module_name)
    if hasattr(module, 'COMMANDS'):
        return dispatch(f'{prog} {name}', help_text, module.COMMANDS, argv[1:])
    command_parser = argparse.ArgumentParser(prog=f'{prog} {name}', description=help_text)
    module.add_arguments(command_parser)
    return int(module.run(command_parser.parse_args(argv[1:])) or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the ``litedet-ros`` command line; return the process exit code."""
    return dispatch(
        'litedet-ros',
        'Lightweight-detector bin picking for ROS 2: tools, benchmarks and bringup.',
        COMMANDS, list(sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())
