"""Start, supervise and stop the node graph as separate processes (``litedet-ros bringup``).

What ``ros2 launch`` would do with :mod:`litedet_ros.bringup.graph`, for machines without
``launch``/``ros2cli`` (no registry here has them). Each node runs in its own process with
``--ros-args -r __node:=NAME -r __ns:=NS --params-file FILE ... -p NAME:=VALUE ... -r FROM:=TO``.

Supervision rule (the same as the launch file's ``on_exit=Shutdown()``): nodes are not
restarted. When a *required* node exits, for any reason, the runner reports it (name, exit code
or signal) and shuts the others down; a non-required node (RViz) is reported and the rest keeps
running. Shutdown (Ctrl-C, SIGTERM, a dead required node, or the caller) sends SIGINT to every
node, as ``ros2 launch`` does, then SIGTERM after ``sigint_timeout``, then SIGKILL after
``sigterm_timeout``. Nodes run in their own process groups (a terminal's Ctrl-C reaches the
runner only, which then stops them in order) and die with the runner (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

from collections.abc import Callable
import ctypes
from dataclasses import dataclass
import importlib.util
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import IO

import yaml

from litedet_ros.bringup.graph import PACKAGE, BringupError, NodeSpec

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class NodeCommand:
    """A node's command line, its environment additions, whether the bringup stops when it ends."""

    name: str
    argv: tuple[str, ...]
    required: bool
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodeExit:
    """A node process that ended: its name and ``returncode`` (negative: killed by a signal)."""

    name: str
    returncode: int

    def describe(self) -> str:
        """Say how the node ended, e.g. ``exit code 1`` or ``killed by SIGSEGV``."""
        if self.returncode < 0:
            return f'killed by {signal.Signals(-self.returncode).name}'
        return f'exit code {self.returncode}'


def parameter_value(value: object) -> str:
    """Encode a parameter value for ``-p name:=value`` (YAML, as rcl parses it)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float('inf')).strip()
    return text.removesuffix('\n...').removesuffix('...').strip()


def ros_arguments(node: NodeSpec) -> list[str]:
    """The ``--ros-args`` part of ``node``'s command line (name, namespace, params, remaps)."""
    args = ['--ros-args', '-r', f'__node:={node.name}', '-r', f'__ns:={node.namespace}']
    for path in node.parameter_files:
        args += ['--params-file', str(path)]
    for name, value in node.overrides.items():
        args += ['-p', f'{name}:={parameter_value(value)}']
    for source, target in node.remappings:
        args += ['-r', f'{source}:={target}']
    return args


def executable_argv(node: NodeSpec) -> list[str]:
    """Command that runs ``node``'s executable (before its arguments).

    litedet_ros nodes run from this Python environment (the module's ``main``), so a checkout
    needs no install; other packages' executables come from the ament index
    (``<prefix>/lib/<package>/<executable>``), as ``ros2 run`` finds them.

    Raises:
        BringupError: the package or executable is not installed.
    """
    if node.package == PACKAGE:
        if importlib.util.find_spec(f'{PACKAGE}.{node.executable}') is None:
            raise BringupError(f'{node.name}: no module {PACKAGE}.{node.executable}')
        code = f'import sys; from {PACKAGE}.{node.executable} import main; sys.exit(main())'
        return [sys.executable, '-c', code]
    try:
        # only for other packages; PackageNotFoundError is a KeyError
        from ament_index_python.packages import get_package_prefix  # noqa: PLC0415
        prefix = get_package_prefix(node.package)
    except (ImportError, LookupError, OSError) as error:  # OSError: no AMENT_PREFIX_PATH
        raise BringupError(f'{node.name}: package {node.package} is not installed here '
                           f'({type(error).__name__}: {error})') from error
    path = Path(prefix) / 'lib' / node.package / node.executable
    if not os.access(path, os.X_OK):
        raise BringupError(f'{node.name}: executable {path} not found')
    return [str(path)]


def node_commands(nodes: tuple[NodeSpec, ...]) -> list[NodeCommand]:
    """Command lines for every node; raises :class:`BringupError` before anything starts."""
    return [NodeCommand(node.name, (*executable_argv(node), *node.arguments,
                                    *ros_arguments(node)), node.required, node.additional_env)
            for node in nodes]


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the runner dies (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Bringup:
    """Run node processes: start all, watch them, stop all.

    Args:
        commands: the nodes to run, in start order.
        output: where the nodes' merged stdout/stderr go, each line prefixed ``[name]``.
        log_dir: if set, also ``<log_dir>/<name>.log`` per node.
        sigint_timeout: wait after SIGINT before SIGTERM, s.
        sigterm_timeout: wait after SIGTERM before SIGKILL, s.
        env: environment additions for every node.
    """

    def __init__(self, commands: list[NodeCommand], output: IO[str] | None = None,
                 log_dir: str | Path | None = None, sigint_timeout: float = 5.0,
                 sigterm_timeout: float = 5.0, env: dict[str, str] | None = None) -> None:
        self.commands = commands
        self.output = output or sys.stdout
        self.log_dir = Path(log_dir) if log_dir else None
        self.sigint_timeout = sigint_timeout
        self.sigterm_timeout = sigterm_timeout
        self.env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
        self.processes: dict[str, subprocess.Popen] = {}
        self.exits: list[NodeExit] = []
        self._pumps: list[threading.Thread] = []
        self._write_lock = threading.Lock()

    def say(self, text: str) -> None:
        """Write a runner line to the output."""
        with self._write_lock:
            print(f'[bringup] {text}', file=self.output, flush=True)

    def start(self) -> None:
        """Start every node (all processes first, then their output readers)."""
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for command in self.commands:
            self.processes[command.name] = subprocess.Popen(
                command.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env={**self.env, **dict(command.env)},
                start_new_session=True,
                preexec_fn=_die_with_parent, text=True, errors='replace')
            self.say(f'started {command.name} (pid {self.processes[command.name].pid})')
        for name, process in self.processes.items():
            pump = threading.Thread(target=self._pump, args=(name, process.stdout),
                                    name=f'output-{name}', daemon=True)
            pump.start()
            self._pumps.append(pump)

    def _pump(self, name: str, stream: IO[str]) -> None:
        log = open(self.log_dir / f'{name}.log', 'w') if self.log_dir else None  # noqa: SIM115
        try:
            for line in stream:
                with self._write_lock:
                    self.output.write(f'[{name}] {line}')
                    self.output.flush()
                if log:
                    log.write(line)
                    log.flush()
        finally:
            if log:
                log.close()

    def poll(self) -> list[NodeExit]:
        """Return the nodes that ended since the last call (and report each)."""
        ended = []
        known = {exit_.name for exit_ in self.exits}
        for name, process in self.processes.items():
            if name not in known and process.poll() is not None:
                ended.append(NodeExit(name, process.returncode))
        for exit_ in ended:
            self.say(f'{exit_.name} ended: {exit_.describe()}')
        self.exits += ended
        return ended

    def required_exit(self) -> NodeExit | None:
        """The first required node that has ended, if any."""
        required = {command.name for command in self.commands if command.required}
        return next((exit_ for exit_ in self.exits if exit_.name in required), None)

    def shutdown(self) -> None:
        """Stop every running node: SIGINT, then SIGTERM, then SIGKILL; wait for all."""
        for sig, timeout in ((signal.SIGINT, self.sigint_timeout),
                             (signal.SIGTERM, self.sigterm_timeout), (signal.SIGKILL, 10.0)):
            running = [p for p in self.processes.values() if p.poll() is None]
            if not running:
                break
            if sig != signal.SIGINT:
                self.say(f'{[n for n, p in self.processes.items() if p in running]} still '
                         f'running: sending {sig.name}')
            for process in running:
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            for process in running:
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        self.poll()
        for pump in self._pumps:
            pump.join(timeout=2.0)

    def run(self, until: Callable[[], bool] | None = None, period: float = 0.1) -> int:
        """Start, supervise until a signal, a required node's exit or ``until()``; then stop.

        SIGINT and SIGTERM (in the main thread) request a clean shutdown.

        Returns:
            0 after a requested stop, 1 when a required node ended on its own.
        """
        stop = threading.Event()
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda *_: stop.set())
        try:
            self.start()
            while not stop.is_set():
                self.poll()
                if self.required_exit() or (until is not None and until()):
                    break
                stop.wait(period)
            dead = self.required_exit()
            if dead:
                self.say(f'required node {dead.name} ended ({dead.describe()}): stopping '
                         'the bringup')
            else:
                self.say('shutting down')
            self.shutdown()
            return 1 if dead else 0
        finally:
            if any(p.poll() is None for p in self.processes.values()):
                self.shutdown()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def default_config_dir() -> Path:
    """``config/`` of this checkout, else ``share/litedet_ros/config`` of the ROS 2 install."""
    checkout = Path(__file__).resolve().parents[2] / 'config'
    if checkout.is_dir():
        return checkout
    try:
        from ament_index_python.packages import (  # noqa: PLC0415 - installed layout only
            get_package_share_directory,
        )
        return Path(get_package_share_directory(PACKAGE)) / 'config'
    except (ImportError, LookupError, OSError) as error:
        raise BringupError(f'cannot find the config directory of {PACKAGE}: {error}') from error
