"""Pushes and drags that rearrange a bin in which no part has a trusted grasp.

Parts pressed against each other or against a wall leave no room for the fingers, and the scene
does not change between looks; a short straight push of the closed hand moves one of them
into free space so that the next look may find a grasp. A part against a wall leaves no room
behind it to push from: the closed finger tips press on its top and drag it away from the wall
(friction: the pads grip it better than the bin floor does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math
from typing import Callable

import numpy as np

from litedet_ros.grasping.collision import swept_bounds, swept_collisions, wall_clearance
from litedet_ros.grasping.config import BinGeometry, GripperGeometry, PlannerConfig
from litedet_ros.grasping.estimation import ObjectEstimate
from litedet_ros.grasping.scene import SceneCloud
from litedet_ros.grasping.types import Push, tool_down_pose

#: Push directions tried per object, evenly spaced about the bin's up axis.
PUSH_DIRECTIONS = 8
#: Drop reasons of parts that a push can free: their fingers met a neighbour or a wall.
WEDGED = frozenset({'all_colliding'})
#: Scene points (at the scene cloud's sampling) ahead of a pushed part that still count as a
#: free way: depth noise and the part's own unseen edges.
FREE_WAY_POINTS = 3
#: Least distance (m) between the pushing hand and the walls at the start and end: the parts it
#: pushes deflect it (in the simulated cell the hand's coupling touched the rim of a wall it was
#: planned to clear by 5-7 mm, in 3 pushes out of 3 along that wall).
PUSH_WALL_CLEARANCE = 0.02
#: A wedged part whose points come this close (m) to a wall is dragged away from it: the pushing
#: hand (a 5 cm palm) does not get down between them (a part touching a wall shows 8-10 mm from
#: it, as the segmentation drops points within ``wall_margin``). 4 cm instead of 2 cleared 2.5
#: points more of 200 bins in one process (README, session 36).
DRAG_WALL_GAP = 0.04
#: The dragging finger tips press this far (m) into the part.
DRAG_PRESS = 0.004
#: Part points this far (m) below its top still count as the top the tips may press on.
DRAG_TOP_BAND = 0.01
#: Spacing (m) of the contacts tried on a part's top, and how many (nearest its crest).
DRAG_CONTACT_STEP = 0.01
DRAG_CONTACTS = 40
#: Part points this far (m) below its top make its crest, where the contacts tried first lie
#: (pressed off the crest, a rounded part is pushed into the wall or the way it goes).
DRAG_CREST_BAND = 0.003
#: Least part points under the tips' footprint for a contact to bear the press.
DRAG_SUPPORT_POINTS = 3
#: Least distance (m) between the dragging hand and the walls at the start and end.
DRAG_WALL_CLEARANCE = 0.005
#: Feasible pushes offered per image, best first: a push that changed nothing is offered again
#: by the next look at the unchanged bin, and the controller then takes the next one.
OFFERED_PUSHES = 6


def plan_pushes(objects: list[ObjectEstimate], reasons: dict[int, str], scene: SceneCloud,
                config: PlannerConfig, frame_id: str = 'base_link', stamp_ns: int = 0
                ) -> tuple[Push, ...]:
    """The most promising feasible pushes, at most ``OFFERED_PUSHES``, one per option.

    Each part can be pushed in ``PUSH_DIRECTIONS`` directions, ``push_distance`` (less if a
    wall comes first, never under ``min_push_distance``). Pushes are ranked: first those whose
    way ahead of the part is free of scene points (at most ``FREE_WAY_POINTS``), then those of
    parts whose grasps all collided (``WEDGED``), then by how far they take the part from the
    walls (up to the palm's half length, the reach at which a wall stops blocking the hand),
    then by the points in the way, the height of the part and the closeness of the direction
    to the bin's centre. The finger tips run ``push_depth`` below the part's top and at least
    ``push_floor_clearance`` above the floor, starting ``push_gap`` behind its outline (or, if
    there is no room, at its centre, a hole in a ring or a mug). The hand pushes with its palm
    across the push (the widest blade), or else along it (narrow enough to push beside a wall).
    A push is feasible when its hand has a free column down to its start and stays
    ``PUSH_WALL_CLEARANCE`` from the walls at both ends; each (part, direction) option gives at
    most one, its first feasible hand. Wedged parts near a wall also get drags away from it
    (:func:`_drag_options`), ranked with the pushes by the same terms.

    Args:
        objects: estimates of the detected parts (none of which has a grasp).
        reasons: why each detection got no grasp (its GraspDropError reason), by index.
        scene: the depth scene.
        config: planner configuration; no push without a bin or with ``push_distance`` 0.
        frame_id: name of the planning frame, copied into the push.
        stamp_ns: stamp of the source image, ns.

    Returns:
        The feasible pushes, best first; empty when no part can be pushed.
    """
    bin_geometry = config.bin
    if bin_geometry is None or config.push_distance <= 0 or not objects:
        return ()
    gripper = config.gripper
    angles = np.arange(PUSH_DIRECTIONS) * 2 * math.pi / PUSH_DIRECTIONS
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    half_inner = np.array([bin_geometry.size_x / 2, bin_geometry.size_y / 2])
    palm_reach = gripper.palm_length / 2 + gripper.finger_thickness

    def off_walls(centre: np.ndarray) -> float:
        return min(float((half_inner - np.abs(centre)).min()), palm_reach)

    scene_local = bin_geometry.to_bin(scene.points)
    # the scene by height: the points above a height are a tail of it
    by_height = scene_local[np.argsort(scene_local[:, 2], kind='stable')]
    options = []
    parts = []  # per part, its pushes: (centre, direction index, tip, travel, back)
    for estimate in objects:
        local = bin_geometry.to_bin(estimate.points)
        centre = local[:, :2].mean(axis=0)
        top = float(local[:, 2].max())
        tip = max(config.push_floor_clearance, top - config.push_depth)
        if top - tip < 0.005:
            continue
        offsets = local[:, :2] - centre
        hit = _above(by_height, tip)[:, :2] - centre  # what the fingers meet
        toward = -centre / max(float(np.linalg.norm(centre)), 1e-9)
        wedged = reasons.get(estimate.detection_index) in WEDGED
        # room ahead of the part before a wall, per direction: the least any of its points has
        with np.errstate(divide='ignore', invalid='ignore'):
            rooms = np.min(np.where(directions[:, None] != 0,
                                    (half_inner * np.sign(directions)[:, None] - local[:, :2])
                                    / directions[:, None], np.inf), axis=(1, 2))
        part_pushes = []
        here = off_walls(centre)
        for direction_index, (direction, room) in enumerate(zip(directions, rooms)):
            travel = min(config.push_distance, float(room) - config.push_gap)
            if travel < config.min_push_distance:
                continue
            side = _side(direction)
            along = offsets @ direction
            front, back = float(along.max()), float(-along.min())
            in_way = _points_in_way(hit, direction, front + config.push_gap, front + travel,
                                    float(np.abs(offsets @ side).max()))
            gain = off_walls(centre + travel * direction) - here
            options.append((_rank(in_way, wedged, gain, top, direction, toward),
                            estimate.detection_index, (len(parts), len(part_pushes))))
            part_pushes.append((centre, direction_index, tip, travel, back))
        parts.append(part_pushes)
        if wedged and config.wall_drags:
            options += _drag_options(estimate, local, centre, toward, by_height, config,
                                     off_walls)
    # the hand descends to the start from above the walls: sweep its column that far
    column = replace(gripper, approach_distance=bin_geometry.wall_height)
    # the pushing hands [direction, hand] at the origin, and half the closed fingers' extent
    # along the push of each: tool x along the push (the palm's length across it), then tool y
    hands = np.array([[tool_down_pose((0.0, 0.0, 0.0), math.atan2(y, x) + turn)
                       for turn in (0.0, math.pi / 2)] for x, y in directions])
    finger_halves = np.array([gripper.finger_width / 2, gripper.finger_thickness])
    push_extent = _swept_extent(hands.reshape(-1, 4, 4)[:, :3, :3], bin_geometry, column)

    free_pushes = {}  # per part: the collision-free hands of each of its pushes
    pushes: list[Push] = []
    for _, index, option in sorted(options, key=lambda o: o[0]):
        if isinstance(option, Drag):
            # the column down to the tips just above the part's top must be free
            variants, least = option.variants(config), DRAG_WALL_CLEARANCE
            if not len(variants):
                continue
            swept = variants[:, 0].copy()
            swept[:, :3, 3] -= (DRAG_PRESS + config.part_clearance) * swept[:, :3, 2]
            extent = _swept_extent(swept[:, :3, :3], bin_geometry, column)
            free = variants[_collision_free(swept, extent, scene, bin_geometry, column)]
        else:
            part, k = option
            if part not in free_pushes:  # all the part's pushes at once: they share a region
                variants = _hand_variants(parts[part], directions, hands, finger_halves, config)
                clear = _collision_free(variants[:, :, 0].reshape(-1, 4, 4), push_extent, scene,
                                        bin_geometry, column).reshape(variants.shape[:2])
                free_pushes[part] = [v[c] for v, c in zip(variants, clear)]
            free, least = free_pushes[part][k], PUSH_WALL_CLEARANCE
        for start_end in free:
            # the start first: most starts behind a part are too near a wall
            if all(wall_clearance(bin_geometry, pose, column, 0.0) >= least
                   for pose in start_end):
                poses = bin_geometry.pose @ start_end
                pushes.append(Push(poses[0], poses[1], index, frame_id, stamp_ns))
                if len(pushes) == OFFERED_PUSHES:
                    return tuple(pushes)
                break
    return tuple(pushes)


def _swept_extent(rotations: np.ndarray, bin_geometry: BinGeometry, column: GripperGeometry
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the volumes swept by hands at the origin, planning frame, m.

    Hands in these rotations elsewhere sweep volumes within these bounds moved by their
    positions (:func:`swept_bounds` costs ~7 us a hand, and many hands share a few rotations).

    Args:
        rotations: ``float64[R, 3, 3]`` bin <- tool rotations of the hands (repeats are
            dropped).
        bin_geometry: the bin.
        column: the gripper, swept from above the walls.

    Returns:
        ``(low, high)``, ``float64[3]`` each, relative to the hands' positions.
    """
    distinct = list({rotation.tobytes(): rotation for rotation in rotations}.values())
    at_origin = np.tile(np.eye(4), (len(distinct), 1, 1))
    at_origin[:, :3, :3] = bin_geometry.pose[:3, :3] @ np.array(distinct)
    return swept_bounds(at_origin, np.zeros(len(distinct)), column)


def _collision_free(swept: np.ndarray, extent: tuple[np.ndarray, np.ndarray],
                    scene: SceneCloud, bin_geometry: BinGeometry, column: GripperGeometry
                    ) -> np.ndarray:
    """Which hands have a free column down to their start, ``bool[K]``.

    Each hand is tested (exactly) against the scene points in a box around all of them, a
    superset of those that could meet it.

    Args:
        swept: ``float64[K, 4, 4]`` bin <- tool poses at the bottom of the columns.
        extent: :func:`_swept_extent` of rotations that include all of theirs.
        scene: the depth scene.
        bin_geometry: the bin.
        column: the gripper, swept from above the walls.
    """
    starts = bin_geometry.pose @ swept
    positions = starts[:, :3, 3]
    near = scene.box_points(positions.min(axis=0) + extent[0], positions.max(axis=0) + extent[1])
    return ~swept_collisions(near, starts, np.zeros(len(starts)), column)


@dataclass(frozen=True, eq=False)
class Drag:
    """A drag option of :func:`_drag_options`: one part, one direction away from a wall.

    Its contacts and hands are made only when the option's rank comes up (most options of a
    dense bin are never tried: the first ``OFFERED_PUSHES`` feasible ones end the search).

    Attributes:
        local: the part's points, bin frame, ``float64[N, 3]``.
        direction: unit xy direction of the drag, bin frame.
    """

    local: np.ndarray
    direction: np.ndarray

    def contacts(self) -> np.ndarray:
        """The xy of the contacts to try on the part's top, in that order, ``float64[C, 2]``.

        Up to ``DRAG_CONTACTS`` points ``DRAG_CONTACT_STEP`` apart on the part's top (its
        points within ``DRAG_TOP_BAND`` of the highest), on a grid anchored at its crest
        (``DRAG_CREST_BAND``), nearest the crest first.
        """
        local = self.local
        top = float(local[:, 2].max())
        band = local[local[:, 2] >= top - DRAG_TOP_BAND]
        crest = local[local[:, 2] >= top - DRAG_CREST_BAND, :2].mean(axis=0)
        steps = np.round((band[:, :2] - crest) / DRAG_CONTACT_STEP)
        # distinct, sorted by x then y: as complex numbers (~10x faster than np.unique's axis=0)
        steps = np.unique(steps.view(np.complex128)[:, 0]).view(np.float64).reshape(-1, 2)
        steps = steps[np.argsort(np.hypot(*steps.T), kind='stable')]
        return (crest + DRAG_CONTACT_STEP * steps)[:DRAG_CONTACTS]

    def variants(self, config: PlannerConfig) -> np.ndarray:
        """Bin <- tool poses ``float64[V, 2, 4, 4]`` (start, end) of the hands, preferred first.

        Per contact (in order), straight then tilted: the tips' face, tilted, is lower ahead
        and sinks ``DRAG_PRESS`` into the part point under it that it meets first. A contact
        needs ``DRAG_SUPPORT_POINTS`` under the closed tips' footprint (``finger_width`` along
        the drag, two ``finger_thickness`` across) and the face ``push_floor_clearance`` above
        the floor; V may be 0.
        """
        gripper, direction, contacts = config.gripper, self.direction, self.contacts()
        reach_x, reach_y = gripper.finger_width / 2, gripper.finger_thickness
        offsets = self.local[None, :, :2] - contacts[:, None]  # [C, N, 2]
        ahead_of = offsets @ direction
        under = (np.abs(ahead_of) <= reach_x) & (
            np.abs(offsets @ _side(direction)) <= reach_y)
        tilts = np.array(sorted({0.0, math.radians(config.wall_tilt_deg)}))
        slopes = np.tan(tilts)
        # [C, T]: the highest point of the tilted face's plane through each point under it
        faces = np.where(under[:, None], self.local[None, None, :, 2]
                         + slopes[None, :, None] * ahead_of[:, None], -np.inf).max(axis=2)
        faces -= DRAG_PRESS
        usable = ((under.sum(axis=1) >= DRAG_SUPPORT_POINTS)[:, None]
                  & (faces - slopes * reach_x >= config.push_floor_clearance))
        contact_index, tilt_index = np.nonzero(usable)  # contact-major: the order preferred
        starts = _drag_poses(contacts[contact_index], faces[usable], direction,
                             tilts[tilt_index], gripper)
        ends = starts.copy()
        ends[:, :2, 3] += config.push_distance * direction
        return np.stack([starts, ends], axis=1)


def _above(by_height: np.ndarray, height: float) -> np.ndarray:
    """The points of ``by_height`` (``float[N, 3]``, sorted by z) higher than ``height``."""
    return by_height[np.searchsorted(by_height[:, 2], height, side='right'):]


def _side(direction: np.ndarray) -> np.ndarray:
    """The unit xy ``direction`` turned -90 deg about up: across a push or a drag."""
    return np.array([direction[1], -direction[0]])


def _points_in_way(points: np.ndarray, direction: np.ndarray, near: float, far: float,
                   half_width: float) -> int:
    """Points in a part's way: how many lie ahead between ``near`` and ``far`` (m).

    Args:
        points: ``float[N, 2]`` xy relative to the part's centre, m.
        direction: unit xy direction the part moves in.
        near: the stretch along ``direction`` that counts starts here, m ...
        far: ... and ends here, m.
        half_width: ... within this distance (m) of the line through the centre.
    """
    ahead = points @ direction
    across = points @ _side(direction)
    return int(((ahead > near) & (ahead < far) & (np.abs(across) < half_width)).sum())


def _rank(in_way: int, wedged: bool, gain: float, top: float, direction: np.ndarray,
          toward: np.ndarray) -> tuple:
    """Sort key of a push or drag option (smaller first): see :func:`plan_pushes`."""
    return (in_way > FREE_WAY_POINTS, not wedged, -round(gain, 2), in_way, -top,
            -float(direction @ toward))


def _drag_options(estimate: ObjectEstimate, local: np.ndarray, centre: np.ndarray,
                  toward: np.ndarray, by_height: np.ndarray, config: PlannerConfig,
                  off_walls: Callable[[np.ndarray], float]) -> list:
    """Drags of one wedged part away from the walls it lies within ``DRAG_WALL_GAP`` of.

    One option per direction: away from each such wall, and from a corner diagonally too. The
    closed hand, its palm's length along the wall (the palm's narrow side towards it), comes
    down on the part's top, straight or tilted ``wall_tilt_deg`` towards the wall (the palm and
    wrist lean off it), its tips' face ``DRAG_PRESS`` into the part point under them it meets
    first, and moves ``push_distance`` away (contacts: :meth:`Drag.contacts`; hands:
    :meth:`Drag.variants`).

    Args:
        estimate: the part (all its grasps collided).
        local: its points, bin frame.
        centre: the mean of their xy, bin frame.
        toward: unit xy direction from ``centre`` to the bin's centre.
        by_height: the scene's points, bin frame, sorted by height.
        config: planner configuration (with a bin).
        off_walls: distance of a bin-frame centre from the walls, capped (see plan_pushes).

    Returns:
        ``[(rank key, detection index, Drag)]``, the key as the pushes'.
    """
    bin_geometry = config.bin
    half_inner = np.array([bin_geometry.size_x / 2, bin_geometry.size_y / 2])
    xy = local[:, :2]
    inward = []  # unit directions away from the near walls
    for axis in (0, 1):
        for sign in (1.0, -1.0):
            if (half_inner[axis] - sign * xy[:, axis]).min() < DRAG_WALL_GAP:
                inward.append(-sign * np.eye(2)[axis])
    if len(inward) == 2:
        inward.append((inward[0] + inward[1]) / math.sqrt(2))
    if not inward:
        return []
    top = float(local[:, 2].max())
    travel = config.push_distance
    # what the dragged part meets: the scene above the floor
    hit = _above(by_height, config.push_floor_clearance)[:, :2] - centre
    options = []
    offsets, here = xy - centre, off_walls(centre)
    for direction in inward:
        front = float((offsets @ direction).max())
        in_way = _points_in_way(hit, direction, front, front + travel,
                                float(np.abs(offsets @ _side(direction)).max()))
        gain = off_walls(centre + travel * direction) - here
        options.append((_rank(in_way, True, gain, top, direction, toward),
                         estimate.detection_index,
                         Drag(local, direction)))
    return options


def _drag_poses(contacts: np.ndarray, faces: np.ndarray, direction: np.ndarray,
                tilts: np.ndarray, gripper: GripperGeometry) -> np.ndarray:
    """Bin <- tool poses of dragging hands (see :class:`Drag`), ``float64[K, 4, 4]``.

    Tool x along the drag, tilted down by ``tilts`` (so +z, the approach, leans towards the
    wall behind the part), y along the wall; the centre of the tips' face at ``contacts``
    (``float[K, 2]``), at heights ``faces`` (``float[K]``).
    """
    c, s = np.cos(tilts)[:, None], np.sin(tilts)[:, None]
    d = np.array([direction[0], direction[1], 0.0])
    down = np.array([0.0, 0.0, -1.0])
    z = c * down - s * d
    x = c * d + s * down
    poses = np.zeros((len(tilts), 4, 4))
    poses[:, 3, 3] = 1.0
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2] = x, np.cross(z, x), z
    tips = np.column_stack([contacts, faces])
    poses[:, :3, 3] = tips - gripper.tcp_to_tip * z
    return poses


def _hand_variants(pushes: list[tuple], directions: np.ndarray, hands: np.ndarray,
                   finger_halves: np.ndarray, config: PlannerConfig) -> np.ndarray:
    """Bin <- tool poses ``float64[P, V, 2, 4, 4]`` (start, end) of the hands of P pushes.

    In the order they are preferred: for each hand, from behind the part; then from its centre,
    if that is a hole the hand fits in (a ring or an open mug beside a wall: its inner rim is
    pushed).

    Args:
        pushes: ``(centre, direction index, tip, travel, back)`` of each push, bin frame, m.
        directions: ``float64[D, 2]`` unit xy push directions, bin frame.
        hands: ``float64[D, H, 4, 4]`` bin <- tool poses of the H hands per direction, at the
            origin.
        finger_halves: ``float64[H]`` half the closed fingers' extent along the push, per hand,
            m.
        config: planner configuration.
    """
    centre, direction_index, tip, travel, back = (np.array(v) for v in zip(*pushes))
    centre, direction = centre[:, None], directions[direction_index][:, None]  # [P, 1, 2]
    back, travel = back[:, None, None], travel[:, None, None]
    finger_half = finger_halves[:, None]
    poses = np.repeat(hands[direction_index][:, :, None, None], 2, axis=2).repeat(2, axis=3)
    # [P, H, (behind the part, at its centre), (start, end)]
    poses[:, :, 0, 0, :2, 3] = centre - (back + config.push_gap + finger_half) * direction
    poses[:, :, 0, 1, :2, 3] = centre + (travel - back - finger_half) * direction
    poses[:, :, 1, 0, :2, 3] = centre
    poses[:, :, 1, 1, :2, 3] = centre + travel * direction
    poses[..., 2, 3] = (tip + config.gripper.tcp_to_tip)[:, None, None, None]
    return poses.reshape(len(pushes), -1, 2, 4, 4)
