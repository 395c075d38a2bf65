"""``litedet-ros camera``: list devices, record a device or the simulated workcell, inspect."""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
import time

import numpy as np
import pyrealsense2 as rs

from litedet_ros.camera.capture import Camera, offered_profiles, open_recording
from litedet_ros.camera.errors import CameraError
from litedet_ros.camera.recording import write_recording
from litedet_ros.camera.types import CameraInfo, CaptureConfig, StreamProfile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``list``, ``record``, ``record-sim`` and ``info`` verbs."""
    verbs = parser.add_subparsers(dest='verb', metavar='VERB', required=True)
    verbs.add_parser('list', help='list the connected RealSense devices')
    record = verbs.add_parser('record', help='record colour + depth from a device to a .db3 file')
    record.add_argument('output', help='recording to write (.db3)')
    record.add_argument('--seconds', type=float, default=5.0, help='duration, s (default 5)')
    record.add_argument('--serial', default='', help='device serial number (default: first)')
    record.add_argument('--color-profile', default='640x480x30', help='WIDTHxHEIGHTxFPS')
    record.add_argument('--color-format', default='rgb8', choices=('rgb8', 'bgr8'))
    record.add_argument('--depth-profile', default='640x480x30', help='WIDTHxHEIGHTxFPS')
    sim = verbs.add_parser('record-sim', help='record the simulated workcell camera (static bin)')
    sim.add_argument('output', help='recording to write (.db3)')
    sim.add_argument('--seed', type=int, default=0, help='scene seed (default 0)')
    sim.add_argument('--objects', type=int, default=10, help='objects in the bin (default 10)')
    sim.add_argument('--frames', type=int, default=30, help='frame sets (default 30)')
    info = verbs.add_parser('info', help='describe a recording and count its frames')
    info.add_argument('recording', help='recording (.bag or .db3)')


def run(args: argparse.Namespace) -> int:
    """Run the chosen verb; return 0 on success, 1 with a reason on a camera error."""
    try:
        verbs = {'list': _list, 'record': _record, 'record-sim': _record_sim, 'info': _info}
        return verbs[args.verb](args)
    except CameraError as error:
        print(f'error: {error}')
        return 1


def _list(args: argparse.Namespace) -> int:
    devices = list(rs.context().query_devices())
    for device in devices:
        fields = [rs.camera_info.name, rs.camera_info.serial_number,
                  rs.camera_info.firmware_version, rs.camera_info.usb_type_descriptor]
        print('  '.join(device.get_info(f) if device.supports(f) else '-' for f in fields))
    if not devices:
        print('no RealSense device connected')
    return 0


def _record(args: argparse.Namespace) -> int:
    config = CaptureConfig(
        serial=args.serial, record_file=args.output, align_depth=False,
        color=StreamProfile.parse(args.color_profile, args.color_format),
        depth=StreamProfile.parse(args.depth_profile, 'z16'))
    with Camera(config) as camera:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            camera.read()
        stats = camera.stats
    print(f'{args.output}: {stats.frames} frame sets, {stats.dropped} dropped, '
          f'{stats.fps:.1f} fps')
    return 0


def _record_sim(args: argparse.Namespace) -> int:
    written = record_sim_bin(args.output, args.seed, args.objects, args.frames)
    print(f'{args.output}: {written} frame sets of seed {args.seed} with {args.objects} objects')
    return 0


def record_sim_bin(path: str, seed: int, objects: int, frames: int) -> int:
    """Record ``frames`` frame sets of the simulated workcell camera over a static bin.

    Returns:
        The number of frame sets written.
    """
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from litedet_ros.sim.workcell import Workcell  # noqa: PLC0415 - MuJoCo only for this verb

    cell = Workcell(seed=seed, num_objects=objects)
    try:
        # the simulated depth is already aligned to colour: one calibration, identity extrinsic
        info = replace(CameraInfo.from_pinhole(cell.config.intrinsics, ''),
                       source_model='brown_conrady')
        scale = cell.config.depth_model.depth_unit if cell.config.depth_model else 0.001

        # rendered first: writing paces the recording at 30 FPS only if the frames are ready
        rendered = []
        for _ in range(frames):
            depth = np.nan_to_num(cell.render_depth(), nan=0.0, posinf=0.0, neginf=0.0)
            units = np.clip(np.round(depth / scale), 0, np.iinfo(np.uint16).max)
            rendered.append((cell.render_rgb(), units.astype(np.uint16)))
        return write_recording(path, rendered, color_info=info, depth_info=info,
                               depth_scale=scale, name='litedet_ros simulated D435')
    finally:
        cell.close()


def _info(args: argparse.Namespace) -> int:
    device = open_recording(args.recording, rs.config(), rs.pipeline())
    offered = offered_profiles(device)
    print(f'{args.recording}: {device.get_info(rs.camera_info.name)} '
          f'(S/N {device.get_info(rs.camera_info.serial_number)}), '
          f'{device.as_playback().get_duration().total_seconds():.2f} s')
    for stream, profiles in offered.items():
        print(f'  {stream}: {", ".join(sorted({str(p) for p in profiles}))}')
    del device  # release the file before playing it
    color = next((p for p in offered.get('color', []) if isinstance(p, StreamProfile)),
                 StreamProfile(0, 0, 0, 'rgb8'))
    depth = next((p for p in offered.get('depth', []) if isinstance(p, StreamProfile)), None)
    config = CaptureConfig(playback_file=args.recording, playback_realtime=False, color=color,
                           depth=depth, align_depth=depth is not None, timeout_s=0.5)
    with Camera(config) as camera:
        frames = sum(1 for _ in camera)
        k = camera.color_info.k
        print(f'  {frames} frame sets, depth scale {camera.depth_scale:.6g} m/unit')
        print(f'  colour fx={k[0, 0]:.2f} fy={k[1, 1]:.2f} cx={k[0, 2]:.2f} cy={k[1, 2]:.2f} '
              f'{camera.color_info.source_model}')
        if camera.depth_to_color is not None:
            print(f'  depth->colour translation {camera.depth_to_color[:3, 3].round(4)} m')
    return 0
