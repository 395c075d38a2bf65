"""Pushes that rearrange a bin in which no part has a trusted grasp.

Parts pressed against each other or against a wall leave no room for the fingers, and the scene
does not change between looks; a short straight push of the closed hand moves one of them
into free space so that the next look may find a grasp.
"""

from __future__ import annotations

from dataclasses import replace
import math

import numpy as np

from litedet_ros.grasping.collision import swept_bounds, swept_collisions, wall_clearances
from litedet_ros.grasping.config import PlannerConfig
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
    most one, its first feasible hand.

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
            ahead = hit @ direction
            in_way = int(((ahead > front + config.push_gap) & (ahead < front + travel)
                          & (np.abs(hit @ side) < np.abs(offsets @ side).max())).sum())
            gain = off_walls(centre + travel * direction) - off_walls(centre)
            options.append(((in_way > FREE_WAY_POINTS, not wedged, -round(gain, 2), in_way,
                             -top, -float(direction @ toward)),
                            estimate.detection_index, centre, direction, tip, travel, back))
    # the hand descends to the start from above the walls: sweep its column that far
    column = replace(gripper, approach_distance=bin_geometry.wall_height)
    # (hand yaw from the push direction, half the closed fingers' extent along the push): tool
    # x along the push (the palm's length across it), then tool y along it
    hands = ((0.0, gripper.finger_width / 2), (math.pi / 2, gripper.finger_thickness))

    pushes: list[Push] = []
    for _, index, *option in sorted(options, key=lambda o: o[0]):
        variants = _hand_variants(option, hands, config)  # bin <- tool, [V, (start, end)]
        starts = bin_geometry.pose @ variants[:, 0]
        closed = np.zeros(len(starts))
        near = scene.box_points(*swept_bounds(starts, closed, column))
        for start_end in variants[~swept_collisions(near, starts, closed, column)]:
            if wall_clearances(bin_geometry, start_end, column, np.zeros(2)).min() \
                    >= PUSH_WALL_CLEARANCE:
                poses = bin_geometry.pose @ start_end
                pushes.append(Push(poses[0], poses[1], index, frame_id, stamp_ns))
                if len(pushes) == OFFERED_PUSHES:
                    return tuple(pushes)
                break
    return tuple(pushes)


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

