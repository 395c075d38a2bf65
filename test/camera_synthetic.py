"""A synthetic RealSense recording for the camera tests: a plane and a box at known depths.

The scene, in the depth camera's optical frame: a fronto-parallel plane at
``PLANE_M + index * PLANE_STEP_M`` (it moves 1 mm per frame, so depth and colour of one frame
can be checked to belong together) with a hole of invalid (0) depth, and the top face of a box
at ``BOX_M``. Colour: red grows left to right, green top to bottom, blue holds the frame index.
The depth-to-colour extrinsic turns about the optical axis and shifts along x, so depth stays
constant on the plane and the box top after alignment while the box moves in the image.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from litedet_ros.camera.recording import write_recording
from litedet_ros.camera.types import CameraInfo

WIDTH, HEIGHT, FPS, FRAMES = 640, 480, 30, 30
DEPTH_SCALE = 0.001
PLANE_M, PLANE_STEP_M, BOX_M = 0.800, 0.001, 0.600
BOX_HALF_M = (0.05, 0.04)  # half extents of the box top along x and y, metres
HOLE_PX = (150, 170, 150, 170)  # invalid depth pixels: u0, u1, v0, v1 of the depth image
DEPTH_INFO = CameraInfo(WIDTH, HEIGHT, [[385.0, 0, 320.0], [0, 385.0, 240.0], [0, 0, 1]],
                        [0.0] * 5, source_model='brown_conrady')
COLOR_INFO = CameraInfo(WIDTH, HEIGHT, [[615.25, 0, 322.5], [0, 615.75, 241.25], [0, 0, 1]],
                        [0.0] * 5, source_model='inverse_brown_conrady')
DEPTH_TO_COLOR = np.eye(4)
DEPTH_TO_COLOR[:3, :3] = Rotation.from_euler('z', 1.0, degrees=True).as_matrix()
DEPTH_TO_COLOR[:3, 3] = (0.015, 0.0, 0.0)
SERIAL = '123456789012'


def depth_image(index: int) -> np.ndarray:
    """``uint16[H, W]`` depth units of frame ``index``, depth camera."""
    u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    k = DEPTH_INFO.k
    x = (u - k[0, 2]) * BOX_M / k[0, 0]
    y = (v - k[1, 2]) * BOX_M / k[1, 1]
    plane = round((PLANE_M + index * PLANE_STEP_M) / DEPTH_SCALE)
    depth = np.full((HEIGHT, WIDTH), plane, np.uint16)
    depth[(np.abs(x) <= BOX_HALF_M[0]) & (np.abs(y) <= BOX_HALF_M[1])] = round(BOX_M / DEPTH_SCALE)
    u0, u1, v0, v1 = HOLE_PX
    depth[v0:v1, u0:u1] = 0
    return depth


def color_image(index: int) -> np.ndarray:
    """``uint8[H, W, 3]`` rgb8 colour image of frame ``index``."""
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, WIDTH).astype(np.uint8)[None, :]
    image[..., 1] = np.linspace(0, 255, HEIGHT).astype(np.uint8)[:, None]
    image[..., 2] = index % 256
    return image


def depth_to_color_pixels(points_depth: np.ndarray) -> np.ndarray:
    """Project ``float[N, 3]`` points of the depth frame into colour pixels, ``float[N, 2]``."""
    points = points_depth @ DEPTH_TO_COLOR[:3, :3].T + DEPTH_TO_COLOR[:3, 3]
    uv = points[:, :2] / points[:, 2:] * np.diag(COLOR_INFO.k)[:2] + COLOR_INFO.k[:2, 2]
    return uv


@functools.cache
def write_synthetic(directory: Path) -> dict[str, Path]:
    """Write the recordings once per directory; return them by name.

    ``scene``: colour + depth, written in real time (1 s). ``depth_only``: 3 frames without
    colour. ``not_a_recording``: a text file with a recording's extension.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f'{name}.db3' for name in ('scene', 'depth_only',
                                                          'not_a_recording')}
    write_recording(str(paths['scene']),
                    ((color_image(i), depth_image(i)) for i in range(FRAMES)),
                    color_info=COLOR_INFO, depth_info=DEPTH_INFO, depth_to_color=DEPTH_TO_COLOR,
                    depth_scale=DEPTH_SCALE, fps=FPS, serial=SERIAL)
    write_recording(str(paths['depth_only']), ((None, depth_image(i)) for i in range(3)),
                    color_info=None, depth_info=DEPTH_INFO, paced=False)
    paths['not_a_recording'].write_text('this is not a rosbag2 database\n')
    return paths
