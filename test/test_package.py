"""Package-level guards: the core stays ROS-free, versions agree, the CLI answers."""

import ast
from pathlib import Path
import re
import subprocess
import sys

import pytest

from litedet_ros import __version__, cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'litedet_ros'
# Modules allowed to talk ROS: the conversions module and the thin nodes (and their runner),
# the helper every node's main() spins with, and backends for ROS-only libraries that are
# imported only when asked for.
ROS_SIDE = re.compile(r'^(conversions|.*_node|bringup)\.py$')
ROS_SIDE_PATHS = {'motion/moveit_backend.py', 'bringup/spin.py'}
ROS_MODULES = {'rclpy', 'builtin_interfaces', 'geometry_msgs', 'rosgraph_msgs', 'sensor_msgs',
               'std_msgs', 'std_srvs', 'trajectory_msgs', 'visualization_msgs', 'tf2_ros',
               'launch', 'launch_ros', 'moveit', 'message_filters'}


def core_modules():
    return sorted(p for p in PACKAGE.rglob('*.py')
                  if not (p.parent == PACKAGE and ROS_SIDE.match(p.name))
                  and p.relative_to(PACKAGE).as_posix() not in ROS_SIDE_PATHS)


def imported_names(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_modules_never_import_ros():
    offenders = {}
    for path in core_modules():
        bad = sorted(name for name in imported_names(path)
                     if name.split('.')[0] in ROS_MODULES
                     or name in ('litedet_ros.msg', 'litedet_ros.srv', 'litedet_ros.conversions')
                     or name.startswith(('litedet_ros.msg.', 'litedet_ros.srv.')))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, f'core modules import ROS: {offenders}'


def test_guard_sees_the_core():
    names = {p.relative_to(PACKAGE).as_posix() for p in core_modules()}
    assert {'errors.py', 'detection/types.py', 'cli.py'} <= names
    assert 'conversions.py' not in names


def test_importing_the_core_loads_no_rclpy():
    modules = [
        '.'.join(p.relative_to(ROOT).with_suffix('').parts).removesuffix('.__init__')
        for p in core_modules()]
    code = ('import sys, importlib\n'
            f'for m in {modules!r}: importlib.import_module(m)\n'
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rclpy'))")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.strip() == '[]'


def test_versions_agree():
    package_xml = (ROOT / 'package.xml').read_text()
    setup_py = (ROOT / 'setup.py').read_text()
    assert f'<version>{__version__}</version>' in package_xml
    assert f"version='{__version__}'" in setup_py


def test_cli_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['--version'])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f'litedet-ros {__version__}'
    assert cli.main([]) == 0
    assert 'usage: litedet-ros' in capsys.readouterr().out


def test_cli_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['no-such-command'])
    assert exit_info.value.code == 2
    assert 'invalid choice' in capsys.readouterr().err


def command_modules(table, prefix=()):
    """Yield (command path, module) for every leaf command, following nested COMMANDS tables."""
    import importlib

    for name, (module_name, _) in table.items():
        module = importlib.import_module(module_name)
        if hasattr(module, 'COMMANDS'):
            yield from command_modules(module.COMMANDS, (*prefix, name))
        else:
            yield (*prefix, name), module


def test_every_cli_command_resolves():
    commands = dict(command_modules(cli.COMMANDS))
    assert ('sim',) in commands and ('bench', 'motion') in commands
    for path, module in commands.items():
        assert callable(module.add_arguments) and callable(module.run), path


def test_console_script_is_installed():
    script = Path(sys.executable).with_name('litedet-ros')
    if not script.exists():
        pytest.skip('litedet-ros console script not installed (run make env)')
    out = subprocess.run([str(script), '--version'], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f'litedet-ros {__version__}'
