"""Parts the detector missed, found in the depth image: what stands on the bin floor unboxed.

A part coloured like the bin, lying alone by a wall at the end of a round, or half hidden in the
pile gets no box from a colour detector, yet its depth rises off the floor like any other part's.
When no detected part has a grasp, the planner also plans for these depth-only parts
(``undetected_parts``), so that a bin is not left with parts nobody saw.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from litedet_ros.grasping.config import PlannerConfig
from litedet_ros.grasping.scene import SceneCloud

#: Detection boxes are grown by this many pixels before their points count as detected (a box
#: is drawn around what the detector saw of a part; its edges still show outside it).
BOX_PADDING = 8
#: Least scene cloud cells (at ``scene_stride``) that make a part: 5 at the shipped stride 5 is
#: 125 pixels. A bracket lying on its side shows the detector and the camera two 6 mm edges,
#: 250-900 pixels, that the grid samples as a broken line of 5-21 cells.
MIN_PART_CELLS = 5


def undetected_boxes(scene: SceneCloud, boxes: np.ndarray, config: PlannerConfig
                     ) -> np.ndarray:
    """Boxes around the parts that stand in the bin outside every detection box.

    The scene cloud's points inside the bin, off its walls and floor (``wall_margin``,
    ``floor_margin``) and outside the detection boxes grown by ``BOX_PADDING``, are split into
    groups on the pixel grid (8-connected across gaps of one cell); each of at least
    ``MIN_PART_CELLS`` cells gets the pixel box around them. Parts touching each other share a
    group: the planner's segmentation keeps one surface per box.

    Args:
        scene: the depth scene (floor points already dropped).
        boxes: ``float[N, 4]`` detection boxes ``(x1, y1, x2, y2)``, pixels.
        config: planner configuration, with a bin (without one the floor and the walls would be
            parts).

    Returns:
        ``float32[M, 4]`` boxes, pixels of the depth image, M >= 0.
    """
    stride, camera = scene.stride, scene.camera
    rows, cols = scene.grid.shape[:2]
    flat = scene.grid.reshape(-1, 3)
    standing = np.isfinite(flat[:, 0])
    standing[standing] = config.bin.interior_mask(flat[standing], config.wall_margin,
                                                  config.floor_margin)
    standing = standing.reshape(rows, cols)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        standing[max(0, int((y1 - BOX_PADDING) // stride)):int((y2 + BOX_PADDING) // stride) + 1,
                 max(0, int((x1 - BOX_PADDING) // stride)):int((x2 + BOX_PADDING) // stride) + 1
                 ] = False
    # the pieces of a thin part's broken line are one part: cells a missing cell apart join
    neighbourhood = np.ones((3, 3), dtype=bool)
    groups, _ = ndimage.label(ndimage.binary_dilation(standing, neighbourhood), neighbourhood)
    groups[~standing] = 0
    cells = np.bincount(groups.ravel())
    found = [(col_span.start * stride, row_span.start * stride,
              min(col_span.stop * stride, camera.width),
              min(row_span.stop * stride, camera.height))
             for label, (row_span, col_span) in enumerate(ndimage.find_objects(groups), start=1)
             if cells[label] >= MIN_PART_CELLS]
    return np.array(found, dtype=np.float32).reshape(-1, 4)
