"""``litedet-ros camera``: inspect a recording, refuse a bad one, list devices."""

from __future__ import annotations

import argparse

import camera_synthetic as syn
import pytest

from litedet_ros.camera import cli


@pytest.fixture(scope='session')
def recordings(tmp_path_factory):
    return syn.write_synthetic(tmp_path_factory.getbasetemp() / 'camera')


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def test_info_describes_the_recording_and_counts_its_frames(recordings, capsys):
    assert run('info', str(recordings['scene'])) == 0
    out = capsys.readouterr().out
    assert f'S/N {syn.SERIAL}' in out and 'color: 640x480@30 rgb8' in out
    assert f'{syn.FRAMES} frame sets, depth scale 0.001 m/unit' in out
    assert 'fx=615.25 fy=615.75 cx=322.50 cy=241.25 inverse_brown_conrady' in out


def test_info_refuses_bad_recordings_with_a_reason(recordings, capsys):
    assert run('info', str(recordings['not_a_recording'])) == 1
    assert 'not a librealsense recording' in capsys.readouterr().out
    assert run('info', str(recordings['depth_only'])) == 1
    assert 'no colour stream' in capsys.readouterr().out


def test_list_and_record_without_a_device(capsys):
    if run('list') == 0 and 'no RealSense device connected' not in capsys.readouterr().out:
        pytest.skip('a RealSense device is connected; this test needs none')
    assert run('record', 'out.db3', '--seconds', '0.1') == 1
    assert 'no RealSense device connected' in capsys.readouterr().out
