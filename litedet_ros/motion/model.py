"""Robot and collision model of the workcell: pinocchio kinematics, coal collision checking.

The URDF (``litedet_ros.description.workcell_urdf``) gives the arm, the gripper and the static
cell (table, bin, place zone, camera). The SRDF (``config/workcell.srdf``) lists the link pairs
that never need checking, as MoveIt's setup assistant writes them. At run time obstacles can be
added (boxes, cylinders, spheres in the planning frame) and one object can be attached to the
tool while it is carried.

The planning frame is ``base_link``; every pose this module takes or returns is a
``float64[4, 4]`` homogeneous transform planning_frame <- frame, in metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import coal
import numpy as np
import pinocchio as pin

from litedet_ros.description import (
    ARM_JOINTS,
    BASE_FRAME,
    GRIPPER_JOINT,
    GRIPPER_MIMIC_JOINT,
    TCP_FRAME,
    workcell_urdf,
)
from litedet_ros.errors import LitedetError

SHAPES = {'box': 3, 'cylinder': 2, 'sphere': 1}  # shape -> number of size values
ATTACHED_NAME = 'attached_object'


class MotionError(LitedetError):
    """A motion request cannot be served (unreachable pose, planning failure, bad input)."""


def default_srdf_path() -> Path:
    """Return ``config/workcell.srdf`` (source tree or install space, next to ``urdf/``)."""
    from litedet_ros.description import urdf_dir  # noqa: PLC0415 - same module, lazy path lookup

    return urdf_dir().parent / 'config' / 'workcell.srdf'


@dataclass(frozen=True)
class Obstacle:
    """A primitive collision object fixed in the planning frame (or in the tool when attached).

    Attributes:
        name: unique name.
        shape: 'box' (size = x, y, z extents), 'cylinder' (radius, length along z) or
            'sphere' (radius); metres.
        size: shape dimensions, metres.
        pose: ``float64[4, 4]`` pose of the shape centre, planning frame (tool frame when
            attached).
    """

    name: str
    shape: str
    size: tuple[float, ...]
    pose: np.ndarray

    def __post_init__(self) -> None:
        pose = np.asarray(self.pose, dtype=np.float64)
        if self.shape not in SHAPES or len(self.size) != SHAPES[self.shape]:
            raise MotionError(f'obstacle {self.name!r}: shape must be one of {SHAPES} with that '
                              f'many size values, got {self.shape!r} {self.size}')
        if pose.shape != (4, 4) or not np.isfinite(pose).all() or \
                not all(np.isfinite(s) and s > 0 for s in self.size):
            raise MotionError(f'obstacle {self.name!r}: need a finite 4x4 pose and positive sizes')
        object.__setattr__(self, 'pose', pose)
        object.__setattr__(self, 'size', tuple(float(s) for s in self.size))

    def geometry(self) -> coal.CollisionGeometry:
        """Return the coal shape."""
        if self.shape == 'box':
            return coal.Box(*self.size)
        if self.shape == 'cylinder':
            return coal.Cylinder(*self.size)
        return coal.Sphere(*self.size)


class RobotModel:
    """Kinematics and collision checking of the arm in its cell.

    Configurations handed to this class are arm joint vectors ``float64[6]`` (rad) in
    ``arm_joints`` order; the gripper opening is a separate state (:meth:`set_gripper_opening`).
    Not thread-safe: one planner owns one model.
    """

    def __init__(self, urdf: str, srdf: str | None = None,
                 arm_joints: tuple[str, ...] = ARM_JOINTS, tcp_frame: str = TCP_FRAME,
                 planning_frame: str = BASE_FRAME) -> None:
        """Build the model.

        Args:
            urdf: URDF XML of the cell.
            srdf: SRDF XML whose ``disable_collisions`` pairs are not checked; None checks all
                pairs between different bodies (slow and usually in self-contact).
            arm_joints: names of the planned joints, in configuration order.
            tcp_frame: tool centre point frame (grasp poses are given for it).
            planning_frame: frame of every pose in and out; must be fixed in the world.

        Raises:
            MotionError: a joint or frame is missing from the URDF.
        """
        self.model = pin.buildModelFromXML(urdf)
        self.geom_model = pin.buildGeomFromUrdfString(self.model, urdf, pin.COLLISION)
        for name in (*arm_joints, GRIPPER_JOINT):
            if not self.model.existJointName(name):
                raise MotionError(f'joint {name!r} not in the URDF')
        for name in (tcp_frame, planning_frame):
            if not self.model.existFrame(name):
                raise MotionError(f'frame {name!r} not in the URDF')
        self.data = self.model.createData()
        self.arm_joints = tuple(arm_joints)
        self.tcp_frame = tcp_frame
        self.planning_frame = planning_frame
        # one-dof joints only: their configuration and velocity indices are the same
        self._arm_idx = np.array([self.model.joints[self.model.getJointId(n)].idx_q
                                  for n in arm_joints])
        self._finger_idx = [self.model.joints[self.model.getJointId(n)].idx_q
                            for n in (GRIPPER_JOINT, GRIPPER_MIMIC_JOINT)
                            if self.model.existJointName(n)]
        finger = self.model.getJointId(GRIPPER_JOINT)
        self.max_opening = 2.0 * float(self.model.upperPositionLimit[
            self.model.joints[finger].idx_q])
        self.lower = self.model.lowerPositionLimit[self._arm_idx].copy()
        self.upper = self.model.upperPositionLimit[self._arm_idx].copy()
        self.velocity_limits = self.model.velocityLimit[self._arm_idx].copy()
        self.effort_limits = self.model.effortLimit[self._arm_idx].copy()
        self._tcp_id = self.model.getFrameId(tcp_frame)
        self._tcp_joint = self.model.frames[self._tcp_id].parentJoint
        self._q = pin.neutral(self.model)
        pin.framesForwardKinematics(self.model, self.data, self._q)
        planning = self.data.oMf[self.model.getFrameId(planning_frame)]
        if self.model.frames[self.model.getFrameId(planning_frame)].parentJoint != 0:
            raise MotionError(f'planning frame {planning_frame!r} must be fixed in the world')
        self._world_from_planning = planning.homogeneous.copy()
        self._planning_from_world = np.linalg.inv(self._world_from_planning)
        self._srdf = srdf
        self._tool_links = self._links_after(self._tcp_joint)
        self.obstacles: dict[str, Obstacle] = {}
        self.attached: Obstacle | None = None
        self._rebuild_pairs()

    @classmethod
    def from_workcell(cls, srdf_path: str | Path | None = None, **workcell_args: float | str
                      ) -> RobotModel:
        """Build the model of the litedet workcell.

        Args:
            srdf_path: SRDF file; default ``config/workcell.srdf``.
            **workcell_args: xacro arguments of the cell (see ``description.workcell_args``).
        """
        srdf = Path(srdf_path or default_srdf_path()).read_text()
        return cls(workcell_urdf(**workcell_args), srdf)

    # -- kinematics ------------------------------------------------------------------------
    @property
    def dof(self) -> int:
        """Number of planned joints."""
        return len(self.arm_joints)

    def configuration(self, arm_q: np.ndarray) -> np.ndarray:
        """Return the full pinocchio configuration ``float64[nq]`` for arm joints ``[dof]``."""
        q = self._q.copy()
        q[self._arm_idx] = arm_q
        return q

    def set_gripper_opening(self, opening: float) -> None:
        """Set the finger opening used for collision checks, m (clipped to the stroke)."""
        half = float(np.clip(opening, 0.0, self.max_opening)) / 2.0
        self._q[self._finger_idx] = half

    def within_limits(self, arm_q: np.ndarray) -> bool:
        """Whether ``arm_q`` ``[dof]`` is finite and inside the joint position limits."""
        arm_q = np.asarray(arm_q)
        return bool(np.isfinite(arm_q).all() and np.all(arm_q >= self.lower - 1e-9)
                    and np.all(arm_q <= self.upper + 1e-9))

    def frame_pose(self, arm_q: np.ndarray, frame: str | None = None) -> np.ndarray:
        """Forward kinematics.

        Args:
            arm_q: ``float64[dof]`` arm joints, rad.
            frame: frame name; default the TCP.

        Returns:
            ``float64[4, 4]`` planning_frame <- frame.
        """
        frame_id = self._tcp_id if frame is None else self.model.getFrameId(frame)
        pin.framesForwardKinematics(self.model, self.data, self.configuration(arm_q))
        return self._planning_from_world @ self.data.oMf[frame_id].homogeneous

    def static_frame(self, frame: str) -> np.ndarray:
        """Pose of a frame that does not move with the arm, ``float64[4, 4]`` planning frame."""
        return self.frame_pose(np.zeros(self.dof), frame)

    def joint_torques(self, positions: np.ndarray, velocities: np.ndarray,
                      accelerations: np.ndarray) -> np.ndarray:
        """Arm joint torques of a motion, gravity included (inverse dynamics, URDF inertias).

        Args:
            positions: ``float64[N, dof]`` arm joint positions, rad.
            velocities: ``float64[N, dof]`` arm joint velocities, rad/s.
            accelerations: ``float64[N, dof]`` arm joint accelerations, rad/s^2.

        Returns:
            ``float64[N, dof]`` torques, N m (the fingers held still where they are).
        """
        torques = np.empty((len(positions), self.dof))
        v, a = np.zeros(self.model.nv), np.zeros(self.model.nv)
        for k, q in enumerate(positions):
            v[self._arm_idx], a[self._arm_idx] = velocities[k], accelerations[k]
            torques[k] = pin.rnea(self.model, self.data, self.configuration(q), v,
                                  a)[self._arm_idx]
        return torques

    def tcp_jacobian(self, arm_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose and its Jacobian in the local TCP frame.

        Returns:
            (``float64[4, 4]`` planning_frame <- tcp, ``float64[6, dof]`` local-frame Jacobian,
            linear rows first).
        """
        q = self.configuration(arm_q)
        pin.computeJointJacobians(self.model, self.data, q)
        pin.updateFramePlacements(self.model, self.data)
        jacobian = pin.getFrameJacobian(self.model, self.data, self._tcp_id, pin.LOCAL)
        pose = self._planning_from_world @ self.data.oMf[self._tcp_id].homogeneous
        return pose, jacobian[:, self._arm_idx]

    @property
    def tool_links(self) -> frozenset[str]:
        """Links carried by the TCP's joint (tool, fingers): a TCP pose fixes where they are."""
        return frozenset(self._tool_links)

    # -- collision world -------------------------------------------------------------------
    def add_obstacle(self, obstacle: Obstacle) -> None:
        """Add (or replace) a runtime obstacle fixed in the planning frame."""
        self.obstacles[obstacle.name] = obstacle
        self._rebuild_pairs()

    def remove_obstacle(self, name: str) -> None:
        """Remove a runtime obstacle; unknown names raise MotionError."""
        if self.obstacles.pop(name, None) is None:
            raise MotionError(f'no obstacle named {name!r}')
        self._rebuild_pairs()

    def attach(self, obstacle: Obstacle) -> None:
        """Attach an object to the TCP (``obstacle.pose`` is tcp <- object).

        The object is then checked against the cell and the arm, except the gripper links
        it touches (those after the TCP's joint).
        """
        self.attached = obstacle
        self._rebuild_pairs()

    def detach(self) -> None:
        """Drop the attached object, if any."""
        self.attached = None
        self._rebuild_pairs()

    def in_collision(self, arm_q: np.ndarray, margin: float = 0.0) -> bool:
        """Whether the robot or held object at ``arm_q`` is within ``margin`` (m) of a body."""
        manager = self._broadphase.get(margin)
        if manager is None:
            manager = pin.BroadPhaseManager_DynamicAABBTreeCollisionManager(
                self.model, self.geom_model, self._geom_data_for(margin))
            self._broadphase[margin] = manager
        return bool(pin.computeCollisions(self.model, self.data, manager,
                                          self.configuration(arm_q), True))

    def colliding_pairs(self, arm_q: np.ndarray, margin: float = 0.0) -> list[tuple[str, str]]:
        """Names of the geometry pairs closer than ``margin`` at ``arm_q`` (for messages)."""
        data = self._geom_data_for(margin)
        pin.computeCollisions(self.model, self.data, self.geom_model, data,
                              self.configuration(arm_q), False)
        objects = self.geom_model.geometryObjects
        return [(objects[p.first].name, objects[p.second].name)
                for p, r in zip(self.geom_model.collisionPairs, data.collisionResults)
                if r.isCollision()]

    def _geom_data_for(self, margin: float) -> pin.GeometryData:
        data = self._geom_data.get(margin)
        if data is None:
            data = pin.GeometryData(self.geom_model)
            for request in data.collisionRequests:
                request.security_margin = margin
            self._geom_data[margin] = data
        return data

    def _links_after(self, joint: int) -> set[str]:
        """Links carried by ``joint``'s subtree (the tool and the fingers)."""
        subtree = set(self.model.subtrees[joint])
        return {f.name for f in self.model.frames
                if f.type == pin.FrameType.BODY and f.parentJoint in subtree}

    def _rebuild_pairs(self) -> None:
        geom = self.geom_model
        for name in [o.name for o in geom.geometryObjects]:
            if name.startswith('obstacle/') or name == ATTACHED_NAME:
                geom.removeGeometryObject(name)
        for obstacle in self.obstacles.values():
            placement = pin.SE3(self._world_from_planning @ obstacle.pose)
            geom.addGeometryObject(pin.GeometryObject(
                f'obstacle/{obstacle.name}', 0, 0, placement, obstacle.geometry()))
        if self.attached is not None:
            tcp = self.model.frames[self._tcp_id]
            placement = tcp.placement * pin.SE3(self.attached.pose)
            geom.addGeometryObject(pin.GeometryObject(
                ATTACHED_NAME, self._tcp_joint, self._tcp_id, placement,
                self.attached.geometry()))
        geom.removeAllCollisionPairs()
        geom.addAllCollisionPairs()
        if self._srdf is not None:
            pin.removeCollisionPairsFromXML(self.model, geom, self._srdf, False)
        objects = geom.geometryObjects
        link = [self.model.frames[o.parentFrame].name for o in objects]
        keep = []
        for i, j in [(p.first, p.second) for p in geom.collisionPairs]:
            touching = (objects[i].name == ATTACHED_NAME and link[j] in self._tool_links or
                        objects[j].name == ATTACHED_NAME and link[i] in self._tool_links)
            if objects[i].parentJoint != objects[j].parentJoint and not touching:
                keep.append(pin.CollisionPair(i, j))
        geom.removeAllCollisionPairs()
        for pair in keep:
            geom.addCollisionPair(pair)
        self._geom_data: dict[float, pin.GeometryData] = {}
        self._broadphase: dict[float, object] = {}  # margin -> AABB-tree broad phase
