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

from litedet_ros.grasping.collision import swept_bounds, swept_collisions, wall_clearances
from litedet_ros.grasping.config import GripperGeometry, PlannerConfig
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
#: A wedged part whose points come this close (m) to a wall is dragged away from it (the
#: segmentation drops points within ``wall_margin`` of the walls: a part touching one shows
#: 8-10 mm).
DRAG_WALL_GAP = 0.02
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
    options = []
    for estimate in objects:
        local = bin_geometry.to_bin(estimate.points)
        centre = local[:, :2].mean(axis=0)
        top = float(local[:, 2].max())
        tip = max(config.push_floor_clearance, top - config.push_depth)
        if top - tip < 0.005:
            continue
        offsets = local[:, :2] - centre
        hit = scene_local[scene_local[:, 2] > tip, :2] - centre  # what the fingers meet
        toward = -centre / max(float(np.linalg.norm(centre)), 1e-9)
        wedged = reasons.get(estimate.detection_index) in WEDGED
        for direction in directions:
            side = np.array([direction[1], -direction[0]])
            along = offsets @ direction
            front, back = float(along.max()), float(-along.min())
            # room ahead of the part before a wall: the least any of its points has
            with np.errstate(divide='ignore', invalid='ignore'):
                room = np.min(np.where(direction != 0, (half_inner * np.sign(direction)
                                                        - local[:, :2]) / direction, np.inf))
            travel = min(config.push_distance, float(room) - config.push_gap)
            if travel < config.min_push_distance:
                continue
            in_way = _points_in_way(hit, direction, front + config.push_gap, front + travel,
                                    float(np.abs(offsets @ side).max()))
            gain = off_walls(centre + travel * direction) - off_walls(centre)
            options.append((_rank(in_way, wedged, gain, top, direction, toward),
                            estimate.detection_index, (centre, direction, tip, travel, back)))
        if wedged and config.wall_drags:
            options += _drag_options(estimate, local, centre, toward, scene_local, config,
                                     off_walls)
    # the hand descends to the start from above the walls: sweep its column that far
    column = replace(gripper, approach_distance=bin_geometry.wall_height)
    # (hand yaw from the push direction, half the closed fingers' extent along the push): tool
    # x along the push (the palm's length across it), then tool y along it
    hands = ((0.0, gripper.finger_width / 2), (math.pi / 2, gripper.finger_thickness))

    pushes: list[Push] = []
    for _, index, option in sorted(options, key=lambda o: o[0]):
        if isinstance(option, Drag):
            # the column down to the tips just above the part's top must be free
            variants, clear_of_walls = option.variants(config), DRAG_WALL_CLEARANCE
            if not len(variants):
                continue
            swept = variants[:, 0].copy()
            swept[:, :3, 3] -= (DRAG_PRESS + config.part_clearance) * swept[:, :3, 2]
        else:
            variants = _hand_variants(option, hands, config)  # bin <- tool, [V, (start, end)]
            swept, clear_of_walls = variants[:, 0], PUSH_WALL_CLEARANCE
        starts = bin_geometry.pose @ swept
        closed = np.zeros(len(starts))
        near = scene.box_points(*swept_bounds(starts, closed, column))
        for start_end in variants[~swept_collisions(near, starts, closed, column)]:
            if wall_clearances(bin_geometry, start_end, column, np.zeros(2)).min() \
                    >= clear_of_walls:
                poses = bin_geometry.pose @ start_end
                pushes.append(Push(poses[0], poses[1], index, frame_id, stamp_ns))
                if len(pushes) == OFFERED_PUSHES:
                    return tuple(pushes)
                break
    return tuple(pushes)


@dataclass(frozen=True, eq=False)
class Drag:
    """A drag option of :func:`_drag_options`: one part, one direction away from a wall.

    Its hands are built only when the option's rank comes up (most options of a dense bin are
    never tried: the first ``OFFERED_PUSHES`` feasible ones end the search).

    Attributes:
        local: the part's points, bin frame, ``float64[N, 3]``.
        contacts: xy of the contacts to try on its top, in that order, ``float64[C, 2]``.
        direction: unit xy direction of the drag, bin frame.
    """

    local: np.ndarray
    contacts: np.ndarray
    direction: np.ndarray

    def variants(self, config: PlannerConfig) -> np.ndarray:
        """Bin <- tool poses ``float64[V, 2, 4, 4]`` (start, end) of the hands, preferred first.

        Per contact (in order), straight then tilted: the tips' face, tilted, is lower ahead
        and sinks ``DRAG_PRESS`` into the part point under it that it meets first. A contact
        needs ``DRAG_SUPPORT_POINTS`` under the closed tips' footprint (``finger_width`` along
        the drag, two ``finger_thickness`` across) and the face ``push_floor_clearance`` above
        the floor; V may be 0.
        """
        gripper, direction = config.gripper, self.direction
        reach_x, reach_y = gripper.finger_width / 2, gripper.finger_thickness
        offsets = self.local[None, :, :2] - self.contacts[:, None]  # [C, N, 2]
        ahead_of = offsets @ direction
        under = (np.abs(ahead_of) <= reach_x) & (
            np.abs(offsets @ np.array([direction[1], -direction[0]])) <= reach_y)
        tilts = np.array(sorted({0.0, math.radians(config.wall_tilt_deg)}))
        slopes = np.tan(tilts)
        # [C, T]: the highest point of the tilted face's plane through each point under it
        faces = np.where(under[:, None], self.local[None, None, :, 2]
                         + slopes[None, :, None] * ahead_of[:, None], -np.inf).max(axis=2)
        faces -= DRAG_PRESS
        usable = ((under.sum(axis=1) >= DRAG_SUPPORT_POINTS)[:, None]
                  & (faces - slopes * reach_x >= config.push_floor_clearance))
        contact_index, tilt_index = np.nonzero(usable)  # contact-major: the order preferred
        starts = _drag_poses(self.contacts[contact_index], faces[usable], direction,
                             tilts[tilt_index], gripper)
        ends = starts.copy()
        ends[:, :2, 3] += config.push_distance * direction
        return np.stack([starts, ends], axis=1)


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
    across = points @ np.array([direction[1], -direction[0]])
    return int(((ahead > near) & (ahead < far) & (np.abs(across) < half_width)).sum())


def _rank(in_way: int, wedged: bool, gain: float, top: float, direction: np.ndarray,
          toward: np.ndarray) -> tuple:
    """Sort key of a push or drag option (smaller first): see :func:`plan_pushes`."""
    return (in_way > FREE_WAY_POINTS, not wedged, -round(gain, 2), in_way, -top,
            -float(direction @ toward))


def _drag_options(estimate: ObjectEstimate, local: np.ndarray, centre: np.ndarray,
                  toward: np.ndarray, scene_local: np.ndarray, config: PlannerConfig,
                  off_walls: Callable[[np.ndarray], float]) -> list:
    """Drags of one wedged part away from the walls it lies within ``DRAG_WALL_GAP`` of.

    One option per direction: away from each such wall, and from a corner diagonally too. The
    closed hand, its palm's length along the wall (the palm's narrow side towards it), comes
    down on the part's top, straight or tilted ``wall_tilt_deg`` towards the wall (the palm and
    wrist lean off it), its tips' face ``DRAG_PRESS`` into the part point under them it meets
    first, and moves ``push_distance`` away. Contacts tried: up to ``DRAG_CONTACTS`` points
    ``DRAG_CONTACT_STEP`` apart on the part's top (its points within ``DRAG_TOP_BAND`` of the
    highest), nearest its crest (``DRAG_CREST_BAND``) first (see :meth:`Drag.variants`).

    Args:
        estimate: the part (all its grasps collided).
        local: its points, bin frame.
        centre: the mean of their xy, bin frame.
        toward: unit xy direction from ``centre`` to the bin's centre.
        scene_local: the scene's points, bin frame.
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
    band = local[local[:, 2] >= top - DRAG_TOP_BAND]
    # contacts on a grid over the top anchored at its crest, nearest the crest first
    crest = local[local[:, 2] >= top - DRAG_CREST_BAND, :2].mean(axis=0)
    steps = np.unique(np.round((band[:, :2] - crest) / DRAG_CONTACT_STEP), axis=0)
    steps = steps[np.argsort(np.hypot(*steps.T), kind='stable')]
    contacts = crest + DRAG_CONTACT_STEP * steps
    travel = config.push_distance
    # what the dragged part meets: the scene above the floor
    hit = scene_local[scene_local[:, 2] > config.push_floor_clearance, :2] - centre
    options = []
    for direction in inward:
        side = np.array([direction[1], -direction[0]])
        front = float(((xy - centre) @ direction).max())
        in_way = _points_in_way(hit, direction, front, front + travel,
                                float(np.abs((xy - centre) @ side).max()))
        gain = off_walls(centre + travel * direction) - off_walls(centre)
        options.append((_rank(in_way, True, gain, top, direction, toward),
                         estimate.detection_index,
                         Drag(local, contacts[:DRAG_CONTACTS], direction)))
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


def _hand_variants(option: list, hands: tuple[tuple[float, float], ...],
                   config: PlannerConfig) -> np.ndarray:
    """Bin <- tool poses ``float64[V, 2, 4, 4]`` (start, end) of one push option's hands.

    In the order they are preferred: for each hand (yaw turn, half the closed fingers' extent
    along the push), from behind the part; then from its centre, if that is a hole the hand
    fits in (a ring or an open mug beside a wall: its inner rim is pushed).
    """
    centre, direction, tip, travel, back = option
    heading = math.atan2(direction[1], direction[0])
    height = tip + config.gripper.tcp_to_tip
    return np.stack([
        np.stack([tool_down_pose((*xy, height), heading + turn) for xy in ends])
        for turn, finger_half in hands
        for ends in ((centre - (back + config.push_gap + finger_half) * direction,
                      centre + (travel - back - finger_half) * direction),
                     (centre, centre + travel * direction))])

