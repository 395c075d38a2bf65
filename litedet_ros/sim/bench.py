"""Benchmarks of the simulated workcell and a picture of a scene with its ground-truth boxes."""

from __future__ import annotations

import time

import cv2
import numpy as np

from litedet_ros.description import ARM_JOINTS
from litedet_ros.sim.workcell import Workcell
from litedet_ros.trajectory import JointTrajectory


def _rate(function, count: int) -> float:
    function()  # warm-up
    start = time.perf_counter()
    for _ in range(count):
        function()
    return count / (time.perf_counter() - start)


def run_bench(objects: int = 15, frames: int = 100, seconds: float = 5.0) -> dict:
    """Measure rendering and physics speed of a bin of ``objects`` parts.

    Args:
        objects: objects in the bin (0..25).
        frames: frames per rendering measurement.
        seconds: sim time of the physics measurement, s; the arm swings through a joint
            trajectory meanwhile.

    Returns:
        ``rgb_fps``, ``depth_fps`` (with the D435 artefact model), ``ideal_depth_fps``,
        ``segmentation_fps``, ``capture_fps`` (RGB + depth + segmentation + boxes),
        ``physics_real_time_factor`` (sim s per wall s), ``scene_reset_s`` (build + drop +
        settle), and the image size.
    """
    start = time.perf_counter()
    cell = Workcell(num_objects=objects, seed=0)
    reset_time = time.perf_counter() - start
    results = {
        'objects': objects,
        'image': f'{cell.config.intrinsics.width}x{cell.config.intrinsics.height}',
        'scene_reset_s': reset_time,
        'rgb_fps': _rate(cell.render_rgb, frames),
        'depth_fps': _rate(cell.render_depth, frames),
        'ideal_depth_fps': _rate(lambda: cell.render_depth(ideal=True), frames),
        'segmentation_fps': _rate(cell.render_labels, frames),
        'capture_fps': _rate(cell.capture, max(1, frames // 2)),
    }
    home = cell.arm_positions()
    swing = home + np.array([0.6, 0.3, -0.3, 0.4, 0.5, 1.0])
    legs = int(np.ceil(seconds / 1.5)) + 1  # 1.5 s per swing keeps joint speeds < 1 rad/s
    times = 1.5 * np.arange(legs + 1)
    positions = np.array([home if k % 2 == 0 else swing for k in range(legs + 1)])
    cell.execute(JointTrajectory(ARM_JOINTS, times, positions))
    steps = int(round(seconds / cell.model.opt.timestep))
    start = time.perf_counter()
    cell.step(steps)
    results['physics_real_time_factor'] = seconds / (time.perf_counter() - start)
    cell.close()
    return results


def render_picture(path: str, seed: int = 0, objects: int = 12) -> int:
    """Save a PNG of a settled bin scene with every visible object's box and label drawn.

    Returns:
        Number of objects boxed.
    """
    cell = Workcell(num_objects=objects, seed=seed)
    frame = cell.capture()
    cell.close()
    image = np.ascontiguousarray(frame.rgb[..., ::-1])
    boxed = 0
    for box, pixels, instance in zip(frame.boxes, frame.visible_pixels, frame.objects):
        if pixels == 0:
            continue
        x0, y0, x1, y1 = box.astype(int)
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 1)
        cv2.putText(image, f'{instance.label} #{instance.id}', (x0 + 2, max(y0 - 3, 9)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 255, 0), 1, cv2.LINE_AA)
        boxed += 1
    if not cv2.imwrite(path, image):
        raise OSError(f'could not write {path}')
    return boxed
