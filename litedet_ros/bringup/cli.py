"""``litedet-ros bringup``: start the node graph where ``ros2 launch`` is not installed.

It starts what ``ros2 launch litedet_ros bin_picking.launch.py`` starts, from the same graph.

Examples::

    litedet-ros bringup --sim                          # simulated workcell + the pipeline
    litedet-ros bringup camera:=realsense2_camera backend:=tensorrt precision:=int8
    litedet-ros bringup --sim --nodes sim_node --print # show the command lines only

Arguments are the launch file's (``name:=value``); ``--sim`` is ``use_sim:=true`` and
``--params FILE`` is ``params_file:=FILE``. A bad argument, a missing or invalid parameters file
or a missing model stops the bringup before any node starts (exit code 2). Nodes are not
restarted: when one exits, the runner reports it and stops the others (exit code 1).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from litedet_ros.bringup.graph import (
    LAUNCH_ARGUMENTS,
    BringupError,
    NodeSpec,
    build_graph,
    check_graph,
    options_from_arguments,
    select,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bringup options and the ``name:=value`` launch arguments."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = 'launch arguments (name:=value):\n' + '\n'.join(
        f'  {name} (default {default!r}): {text}'
        for name, (default, text) in LAUNCH_ARGUMENTS.items())
    parser.add_argument('--sim', action='store_true', help='same as use_sim:=true')
    add_graph_arguments(parser)
    parser.add_argument('--log-dir', help='also write each node output to LOG_DIR/<node>.log')
    parser.add_argument('--print', action='store_true',
                        help='print the node command lines and exit')


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``bringup``, ``demo`` and ``bench e2e``."""
    parser.add_argument('arguments', nargs='*', metavar='name:=value',
                        help='launch arguments, as for bin_picking.launch.py')
    parser.add_argument('--params', metavar='FILE', help='same as params_file:=FILE')
    parser.add_argument('--nodes', metavar='NAME,...',
                        help='start only these nodes of the graph (comma-separated)')
    parser.add_argument('--config-dir', help="directory of <node>.yaml files (default: the "
                        "package's config/)")


def launch_arguments(args: argparse.Namespace) -> dict[str, str]:
    """Collect ``name:=value`` arguments, ``--sim`` and ``--params``."""
    values = {}
    for item in args.arguments:
        name, sep, value = item.partition(':=')
        if not sep or not name:
            raise BringupError(f'expected name:=value, got {item!r}')
        values[name] = value
    if args.sim:
        values['use_sim'] = 'true'
    if args.params:
        values['params_file'] = args.params
    return values


def graph_from_args(args: argparse.Namespace) -> tuple[NodeSpec, ...]:
    """Build and check the graph the options describe (raises :class:`BringupError`)."""
    from litedet_ros.bringup.runner import default_config_dir  # noqa: PLC0415

    nodes = build_graph(options_from_arguments(launch_arguments(args)),
                        args.config_dir or default_config_dir())
    if args.nodes:
        nodes = select(nodes, [name.strip() for name in args.nodes.split(',') if name.strip()])
    check_graph(nodes)
    return nodes


def run(args: argparse.Namespace) -> int:
    """Start the graph and supervise it until Ctrl-C or a node's exit; return the exit code."""
    from litedet_ros.bringup.runner import Bringup, node_commands  # noqa: PLC0415

    try:
        commands = node_commands(graph_from_args(args))
    except BringupError as error:
        print(f'litedet-ros bringup: {error}', file=sys.stderr)
        return 2
    if args.print:
        for command in commands:
            print(f'# {command.name}\n{shlex.join(command.argv)}')
        return 0
    return Bringup(commands, log_dir=args.log_dir).run()
