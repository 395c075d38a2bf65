"""The simulated bin-picking workcell: MuJoCo model built from urdf/, scenes, camera, execution.

The model is the URDF of ``urdf/workcell.urdf.xacro`` loaded through ``MjSpec``, plus what a URDF
cannot say: physics options that hold parallel-jaw grasps (elliptic cones, impratio 10,
implicitfast, 2 ms), actuators (per arm joint a position and a velocity servo, i.e. a PD tracker
with feed-forward velocity, plus the trajectory's inverse dynamics as feed-forward torque, their
sum clamped to the URDF effort; gravity compensated as by the UR
controller; one position servo with a force limit for the gripper), a camera with the D435
intrinsics on ``camera_color_optical_frame``, lights, and the objects of the current scene.

Scenes are seeded: objects of random classes are dropped over the bin and settled by physics;
the same seed and configuration give the same scene (bit-exact on the same machine and MuJoCo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import enum

import mujoco
import numpy as np

from litedet_ros.camera.types import PinholeCamera
from litedet_ros.description import (
    ARM_JOINTS,
    CAMERA_FRAME,
    GRIPPER_JOINT,
    GRIPPER_MIMIC_JOINT,
    HOME_JOINTS,
    joint_limits,
    workcell_args,
    workcell_urdf,
)
from litedet_ros.errors import LitedetError
from litedet_ros.sim.camera import D435_COLOR, DepthModel, apply_depth_model, visible_boxes
from litedet_ros.sim.objects import CLASS_NAMES, ObjectInstance, add_object, sample_instance
from litedet_ros.trajectory import (
    JointLimits,
    JointTrajectory,
    TrajectorySampler,
    validate_trajectory,
)

MAX_OBJECTS = 25
MAX_SEED = 2 ** 32 - 1
CAMERA_NAME = 'd435_color'
SPAWN_LAYER_HEIGHT = 0.12  # vertical spacing of the drop grid, m
FINGER_BODIES = ('left_finger', 'right_finger')
#: The state :meth:`Workcell.step` restores after a physics blow-up: everything that integrates.
STATE = mujoco.mjtState.mjSTATE_INTEGRATION
#: The warnings MuJoCo gives when it finds bad positions, velocities or accelerations in a step
#: and resets the state (data.time back to 0).
BLOW_UP_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                    mujoco.mjtWarning.mjWARN_BADQACC)
#: Speed (m/s or rad/s) no body of the cell reaches but in a blow-up MuJoCo has not flagged
#: (yet): a finger thrown metres out of its slide, the arm knocked off its trajectory. Parts
#: flicked by the fingers were seen spinning at up to 162 rad/s.
BLOW_UP_SPEED = 1000.0
COLLISION_GAP = 0.1  # robot-cell contacts closer in time than this are one collision, s


class SceneError(LitedetError):
    """A scene request is refused (object count out of range, bad seed)."""


class PhysicsDivergedError(SceneError):
    """The physics diverged (MuJoCo flagged bad values in a step and reset its state)."""


class Location(enum.IntEnum):
    """Where an object is (values match ``ObjectState.msg``)."""

    IN_BIN = 0
    IN_HAND = 1
    PLACED = 2
    DROPPED = 3


@dataclass(frozen=True)
class ObjectState:
    """Ground truth of one object.

    Attributes:
        id: instance id, stable for the life of a scene.
        class_id: index into ``CLASS_NAMES`` (-1 for a distractor).
        label: class name.
        pose: ``float64[4, 4]`` world <- object transform, m.
        location: where the object is.
    """

    id: int
    class_id: int
    label: str
    pose: np.ndarray
    location: Location


@dataclass(frozen=True)
class CameraFrame:
    """One simulated D435 capture.

    Attributes:
        rgb: ``uint8[H, W, 3]`` colour image, RGB order.
        depth: ``float32[H, W]`` depth aligned to colour along the optical axis, m, 0 = invalid.
        labels: ``int32[H, W]`` visible object per pixel: 0 = none, k = ``objects[k - 1]``.
        boxes: ``float64[K, 4]`` visible box per object (x_min, y_min, x_max, y_max), px edges.
        visible_pixels: ``int64[K]`` visible pixel count per object.
        objects: the K objects, in label order.
        time: sim time of the capture, s.
    """

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    visible_pixels: np.ndarray
    objects: tuple[ObjectInstance, ...]
    time: float


@dataclass(frozen=True)
class WorkcellConfig:
    """Configuration of the simulated cell.

    Attributes:
        description: xacro arguments of the workcell (see ``workcell_args()``).
        intrinsics: colour (and aligned depth) camera intrinsics.
        depth_model: depth artefacts; None renders ideal depth.
        timestep: physics step, s.
        grip_force: gripper force limit, N.
        gripper_speed: opening/closing speed of the jaw (width rate), m/s.
        home: arm joint positions after a reset, rad.
        start_tolerance: largest distance of a trajectory's first point from the state, rad.
        settle_time: longest time objects may take to come to rest after a drop, s.
        shadows: render shadows (slower).
    """

    description: dict[str, float | str] = field(default_factory=dict)
    intrinsics: PinholeCamera = D435_COLOR
    depth_model: DepthModel | None = DepthModel()
    timestep: float = 0.002
    grip_force: float = 40.0
    gripper_speed: float = 0.15
    home: tuple[float, ...] = HOME_JOINTS
    start_tolerance: float = 0.05
    settle_time: float = 2.0
    shadows: bool = False


def check_scene_request(seed: int, num_objects: int) -> None:
    """Raise :class:`SceneError` unless ``0 <= seed < 2**32`` and ``0 <= num_objects <= 25``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= seed <= MAX_SEED:
        raise SceneError(f'seed must be an integer in [0, {MAX_SEED}], got {seed!r}')
    if isinstance(num_objects, bool) or not isinstance(num_objects, (int, np.integer)) or \
            not 0 <= num_objects <= MAX_OBJECTS:
        raise SceneError(f'number of objects must be an integer in [0, {MAX_OBJECTS}], '
                         f'got {num_objects!r}')


def sample_scene(seed: int, num_objects: int, num_distractors: int = 0
                 ) -> tuple[list[ObjectInstance], np.random.Generator]:
    """Draw the objects of a scene (classes uniform) and return the generator for their poses."""
    check_scene_request(seed, num_objects)
    rng = np.random.default_rng(seed)
    classes = rng.integers(len(CLASS_NAMES), size=num_objects)
    instances = [sample_instance(rng, i, int(c)) for i, c in enumerate(classes)]
    instances += [sample_instance(rng, num_objects + i, -1, distractor=True)
                  for i in range(num_distractors)]
    return instances, rng


class Workcell:
    """MuJoCo workcell with one seeded scene at a time.

    Typical use::

        cell = Workcell()
        cell.reset(seed=3, num_objects=10)
        frame = cell.capture()
        cell.execute(trajectory)       # validated; refused ones raise TrajectoryError
        cell.step_until_idle()
        cell.command_gripper(0.0)
    """

    def __init__(self, config: WorkcellConfig | None = None, seed: int = 0,
                 num_objects: int = 10, num_distractors: int = 0) -> None:
        """Build the cell and its first scene (see :meth:`reset`)."""
        self.config = config or WorkcellConfig()
        self.urdf = workcell_urdf(**self.config.description)
        self.layout = {k: float(v) for k, v in
                       {**workcell_args(), **self.config.description}.items()}
        urdf_limits = joint_limits(self.urdf)
        self.arm_limits = JointLimits(
            ARM_JOINTS, *(np.array([urdf_limits[j][k] for j in ARM_JOINTS]) for k in range(3)))
        self.max_width = 2 * urdf_limits[GRIPPER_JOINT][1]
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        #: Times the robot came into contact with the fixed cell (bin, table, place tote,
        #: camera) after COLLISION_GAP s without one, since the cell was created: collisions as
        #: a planner's re-check counts them (parts are not counted: touching them is the job).
        self.robot_collisions = 0
        #: Times the physics diverged and was restored to the state before (see :meth:`step`).
        self.physics_recoveries = 0
        self._last_cell_contact = -np.inf  # sim time
        self._renderer: mujoco.Renderer | None = None
        self._time_offset = 0.0
        self.reset(seed, num_objects, num_distractors)

    # ---------------------------------------------------------------- scene
    def reset(self, seed: int, num_objects: int, num_distractors: int = 0) -> None:
        """Replace the scene: arm at home, gripper open, objects dropped into the bin and settled.

        Args:
            seed: scene seed in [0, 2**32 - 1].
            num_objects: labelled objects, 0..25.
            num_distractors: extra unlabelled clutter objects (domain randomization).

        Raises:
            SceneError: seed or count out of range.
        """
        instances, rng = sample_scene(seed, num_objects, num_distractors)
        self._load(instances, list(self._drop_poses(len(instances), rng)), seed)

    def reset_with(self, instances: list[ObjectInstance],
                   poses: list[tuple[np.ndarray, np.ndarray]], seed: int = 0) -> None:
        """Replace the scene with given objects at given initial poses, then settle.

        Args:
            instances: objects (ids must be unique); see ``objects.sample_instance``.
            poses: per object (position ``float[3]`` m, quaternion ``float[4]`` w, x, y, z) in
                world.
            seed: seed of the depth noise.

        Raises:
            SceneError: more than 25 objects, repeated ids or a length mismatch.
        """
        ids = [instance.id for instance in instances]
        if len(instances) > MAX_OBJECTS or len(set(ids)) != len(ids) or \
                len(poses) != len(instances):
            raise SceneError(f'need at most {MAX_OBJECTS} objects with unique ids and one pose '
                             f'each, got {len(instances)} objects and {len(poses)} poses')
        check_scene_request(seed, len(instances))
        self._load(list(instances), [(np.asarray(p), np.asarray(q)) for p, q in poses], seed)

    def _load(self, instances: list[ObjectInstance],
              poses: list[tuple[np.ndarray, np.ndarray]], seed: int) -> None:
        if self.data is not None:
            self._time_offset += self.data.time
        spec = self._base_spec()
        for instance, (position, quaternion) in zip(instances, poses):
            add_object(spec, instance, position, quaternion)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.objects = tuple(instances)
        self._index_model()
        self._trajectory: TrajectorySampler | None = None
        self._trajectory_start = 0.0
        self._gripper_target = self.max_width
        self._gripper_setpoint = self.max_width / 2
        self._hold(np.asarray(self.config.home))
        self.data.qpos[self._finger_qpos] = self.max_width / 2
        mujoco.mj_forward(self.model, self.data)
        self._settle()
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = mujoco.Renderer(self.model, self.config.intrinsics.height,
                                         self.config.intrinsics.width)
        self._scene_option = mujoco.MjvOption()
        self._scene_option.geomgroup[:] = [0, 1, 1, 0, 0, 0]
        self._depth_rng = np.random.default_rng(seed)

    def _base_spec(self) -> mujoco.MjSpec:
        config = self.config
        urdf = self.urdf.replace(
            '</robot>', '<mujoco><compiler discardvisual="false" fusestatic="false" '
            'balanceinertia="true"/></mujoco></robot>')
        spec = mujoco.MjSpec.from_string(urdf)
        spec.option.timestep = config.timestep
        spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        spec.option.impratio = 10
        spec.option.enableflags |= mujoco.mjtEnableBit.mjENBL_SLEEP  # resting parts sleep
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        spec.visual.global_.offwidth = max(640, config.intrinsics.width)
        spec.visual.global_.offheight = max(480, config.intrinsics.height)
        spec.visual.quality.offsamples = 0  # no MSAA: software GL is pixel-bound
        spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
        spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
        spec.worldbody.add_light(name='key', pos=[0.5, 0.2, 1.6], dir=[0, -0.1, -1],
                                 diffuse=[0.6, 0.6, 0.6], specular=[0.2, 0.2, 0.2],
                                 castshadow=config.shadows)
        spec.worldbody.add_geom(name='floor', type=mujoco.mjtGeom.mjGEOM_PLANE,
                                pos=[0, 0, -0.75], size=[5, 5, 0.1], rgba=[0.35, 0.35, 0.35, 1],
                                group=2)
        self._add_textures(spec)
        intr = config.intrinsics
        spec.body(CAMERA_FRAME).add_camera(
            name=CAMERA_NAME, quat=[0, 1, 0, 0],  # MuJoCo cameras look along -z with y up
            resolution=[intr.width, intr.height], focal_pixel=[intr.fx, intr.fy],
            principal_pixel=[intr.width / 2 - (intr.cx + 0.5), (intr.cy + 0.5) - intr.height / 2],
            sensor_size=[intr.width * 1e-6, intr.height * 1e-6])
        robot_bodies = self._robot_bodies(spec)
        for body in robot_bodies:
            body.gravcomp = 1.0
        for name in ARM_JOINTS:
            joint = spec.joint(name)
            effort = self._urdf_effort(name)
            joint.armature = 0.2 if effort > 50 else 0.05
            joint.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
            joint.actfrcrange = [-effort, effort]
            kp, kv = (4000.0, 200.0) if effort > 50 else (800.0, 20.0)
            position = spec.add_actuator(name=f'{name}_position', target=name,
                                         trntype=mujoco.mjtTrn.mjTRN_JOINT)
            position.set_to_position(kp=kp)
            velocity = spec.add_actuator(name=f'{name}_velocity', target=name,
                                         trntype=mujoco.mjtTrn.mjTRN_JOINT)
            velocity.set_to_velocity(kv=kv)
            # the model-based feed-forward of a robot controller, set each step (_feedforward):
            # the PD servos alone lagged up to 6.5 mrad at 10 rad/s^2, 0.5 with it, and
            # overshot the end of descents into the bin floor
            spec.add_actuator(name=f'{name}_feedforward', target=name,
                              trntype=mujoco.mjtTrn.mjTRN_JOINT)
        gripper = spec.add_actuator(name='gripper', target=GRIPPER_JOINT,
                                    trntype=mujoco.mjtTrn.mjTRN_JOINT)
        gripper.set_to_position(kp=3000.0, kv=60.0)
        gripper.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        gripper.forcerange = [-config.grip_force, config.grip_force]
        for equality in spec.equalities:  # URDF mimic: a stiff coupling, like a linkage
            equality.solref = [0.004, 1.0]
        for name in FINGER_BODIES:
            spec.joint(GRIPPER_JOINT if name == 'left_finger' else GRIPPER_MIMIC_JOINT
                       ).armature = 0.01
            for geom in spec.body(name).geoms:
                if geom.contype:
                    geom.condim = 4
                    geom.friction = [1.0, 0.005, 0.0001]
                    geom.priority = 1  # pad friction wins over the object's
                    geom.solref = [0.004, 1.0]  # stiff pads: little interpenetration at 40 N
                    geom.solimp = [0.95, 0.99, 0.001, 0.5, 2.0]
        return spec

    @staticmethod
    def _add_textures(spec: mujoco.MjSpec) -> None:
        # Materials 'dr_*' for domain randomization; no geom uses them by default.
        builtin, mark = mujoco.mjtBuiltin, mujoco.mjtMark
        textures = (('dr_checker', builtin.mjBUILTIN_CHECKER, mark.mjMARK_NONE),
                    ('dr_gradient', builtin.mjBUILTIN_GRADIENT, mark.mjMARK_NONE),
                    ('dr_speckle', builtin.mjBUILTIN_FLAT, mark.mjMARK_RANDOM))
        for name, builtin, mark in textures:
            spec.add_texture(name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=builtin,
                             mark=mark, width=128, height=128, rgb1=[0.75, 0.72, 0.65],
                             rgb2=[0.35, 0.33, 0.3], markrgb=[0.1, 0.1, 0.1], random=0.08)
            material = spec.add_material(name=name, texrepeat=[6, 6], texuniform=True)
            material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = name

    def _urdf_effort(self, joint: str) -> float:
        return joint_limits(self.urdf)[joint][3]

    @staticmethod
    def _robot_bodies(spec: mujoco.MjSpec) -> list:
        base = spec.body('base_link')
        return [base, *base.find_all(mujoco.mjtObj.mjOBJ_BODY)]

    def _drop_poses(self, count: int, rng: np.random.Generator):
        # A 3 x 3 grid of drop columns over the bin, layers SPAWN_LAYER_HEIGHT apart.
        layout = self.layout
        floor = layout['bin_wall']
        cells = [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]
        for k in range(count):
            i, j = cells[k % 9]
            layer = k // 9
            xy = np.array([layout['bin_x'] + i * layout['bin_length'] / 3.4,
                           layout['bin_y'] + j * layout['bin_width'] / 3.4])
            xy += rng.uniform(-0.01, 0.01, size=2)
            z = floor + 0.08 + layer * SPAWN_LAYER_HEIGHT + rng.uniform(0, 0.02)
            quaternion = rng.normal(size=4)
            yield np.array([*xy, z]), quaternion / np.linalg.norm(quaternion)

    def _index_model(self) -> None:
        model = self.model
        joint_id = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        self._arm_qpos = model.jnt_qposadr[joint_id]
        self._arm_dof = model.jnt_dofadr[joint_id]
        fingers = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
                   for n in (GRIPPER_JOINT, GRIPPER_MIMIC_JOINT)]
        self._finger_qpos = model.jnt_qposadr[fingers]
        self._position_act = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR,
                                                f'{n}_position') for n in ARM_JOINTS]
        self._velocity_act = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR,
                                                f'{n}_velocity') for n in ARM_JOINTS]
        self._feedforward_act = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR,
                                                   f'{n}_feedforward') for n in ARM_JOINTS]
        self._gripper_act = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, 'gripper')
        self._object_body = np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY,
                                                        o.body_name) for o in self.objects],
                                     dtype=int)
        # geom id -> object label (k + 1 for objects[k], 0 for everything else)
        self._geom_label = np.zeros(model.ngeom + 1, dtype=np.int32)
        body_label = np.zeros(model.nbody, dtype=np.int32)
        body_label[self._object_body] = np.arange(1, len(self.objects) + 1)
        self._geom_label[:model.ngeom] = body_label[model.geom_bodyid]
        self._finger_body = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
                             for n in FINGER_BODIES]
        base = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, 'base_link')
        body_kind = np.where(model.body_rootid == base, 1, 0)  # 1 robot, 0 fixed cell, 2 part
        body_kind[self._object_body] = 2
        self._geom_kind = body_kind[model.geom_bodyid]
        self._object_qpos = model.jnt_qposadr[model.body_jntadr[self._object_body]] \
            if len(self.objects) else np.zeros(0, dtype=int)
        self._object_dof = model.jnt_dofadr[model.body_jntadr[self._object_body]] \
            if len(self.objects) else np.zeros(0, dtype=int)
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)

    def _hold(self, positions: np.ndarray) -> None:
        self.data.qpos[self._arm_qpos] = positions
        self.data.qvel[self._arm_dof] = 0.0
        self.data.ctrl[self._position_act] = positions
        self.data.ctrl[self._velocity_act] = 0.0
        self.data.ctrl[self._feedforward_act] = 0.0

    def _settle(self) -> None:
        # Drop objects until they rest (or settle_time passes); 0.3 s minimum. (A divergence
        # raises in step(): settling does not go on from a state that blew up.)
        chunk = max(1, int(round(0.1 / self.model.opt.timestep)))
        while self.data.time < self.config.settle_time:
            self.step(chunk)
            if self.data.time >= 0.3 and self._objects_at_rest():
                break

    def _objects_at_rest(self, linear: float = 0.01, angular: float = 0.1) -> bool:
        if not len(self.objects):
            return True
        qvel = self.data.qvel[self._object_dof[:, None] + np.arange(6)]
        return bool(np.abs(qvel[:, :3]).max() < linear and np.abs(qvel[:, 3:]).max() < angular)

    # ---------------------------------------------------------------- time and state
    @property
    def time(self) -> float:
        """Sim time since the cell was created (monotonic across resets), s."""
        return self._time_offset + self.data.time

    def arm_positions(self) -> np.ndarray:
        """``float64[6]`` arm joint positions in ``ARM_JOINTS`` order, rad."""
        return self.data.qpos[self._arm_qpos].copy()

    def arm_velocities(self) -> np.ndarray:
        """``float64[6]`` arm joint velocities, rad/s."""
        return self.data.qvel[self._arm_dof].copy()

    def gripper_width(self) -> float:
        """Measured opening between the finger pads, m."""
        return float(self.data.qpos[self._finger_qpos].sum())

    def body_pose(self, name: str) -> np.ndarray:
        """``float64[4, 4]`` world <- body transform of a named body (URDF link), m."""
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if body < 0:
            raise LitedetError(f'no body named {name!r}')
        pose = np.eye(4)
        pose[:3, :3] = self.data.xmat[body].reshape(3, 3)
        pose[:3, 3] = self.data.xpos[body]
        return pose

    def camera_pose(self) -> np.ndarray:
        """``float64[4, 4]`` world <- camera_color_optical_frame transform (x right, y down)."""
        return self.body_pose(CAMERA_FRAME)

    # ---------------------------------------------------------------- execution
    def execute(self, trajectory: JointTrajectory) -> JointTrajectory:
        """Start tracking a joint trajectory of the arm from now; replaces any active one.

        Returns:
            The validated trajectory (columns in ``ARM_JOINTS`` order).

        Raises:
            TrajectoryError: the trajectory is refused (see ``validate_trajectory``); the arm
                keeps doing what it did.
        """
        valid = validate_trajectory(trajectory, self.arm_limits, self.arm_positions(),
                                    self.config.start_tolerance)
        self._trajectory = TrajectorySampler(valid, self.arm_positions())
        self._trajectory_start = self.data.time
        return valid

    def stop(self) -> None:
        """Drop the active trajectory and hold the current position."""
        self._trajectory = None
        self.data.ctrl[self._position_act] = self.arm_positions()
        self.data.ctrl[self._velocity_act] = 0.0
        self.data.ctrl[self._feedforward_act] = 0.0

    @property
    def trajectory_active(self) -> bool:
        """Whether a trajectory is being tracked (until its last point's time has passed)."""
        return self._trajectory is not None

    def command_gripper(self, width: float) -> None:
        """Move the jaw towards an opening (closing on an object stops at the grip force).

        Args:
            width: target opening between the pads, m, clipped to [0, max_width].

        Raises:
            LitedetError: width is not a finite number.
        """
        if not np.isfinite(width):
            raise LitedetError(f'gripper width must be finite, got {width}')
        self._gripper_target = float(np.clip(width, 0.0, self.max_width))
        # the fingers move on from where they are: a set point left behind them (closed on a
        # part, which holds them apart) would first ramp up to them, and a release would wait
        # a third of a second before the fingers start to open
        finger = float(self.data.qpos[self._finger_qpos[0]])
        if (self._gripper_target / 2 - self._gripper_setpoint) * \
                (finger - self._gripper_setpoint) > 0:
            self._gripper_setpoint = finger

    def step(self, count: int = 1) -> None:
        """Advance physics by ``count`` steps, updating the arm and gripper set points.

        When MuJoCo flags bad positions, velocities or accelerations (and resets its state: the
        arm stretched out on the table, the parts where they were spawned), or a body moves
        faster than ``BLOW_UP_SPEED``, the state before these steps is restored with every
        velocity zeroed, with the collisions counted in them undone, and the steps are run again
        (counted in :attr:`physics_recoveries`); only a second blow-up raises.

        Raises:
            PhysicsDivergedError: the physics diverged again after the restore. The state
                before these steps is restored once more, every velocity zeroed, and the arm
                halted there (its trajectory dropped, as a robot's protective stop); the
                cell's :attr:`time` still advances by ``count`` steps. Should the next steps
                diverge too, reload the scene.
        """
        end = self.time + count * self.model.opt.timestep
        saved = np.empty(mujoco.mj_stateSize(self.model, STATE))
        mujoco.mj_getState(self.model, self.data, saved, STATE)
        setpoints = (self._trajectory, self._gripper_setpoint)
        collisions = (self.robot_collisions, self._last_cell_contact)

        def restore() -> None:
            mujoco.mj_setState(self.model, self.data, saved, STATE)
            self.data.qvel[:] = 0.0
            self._trajectory, self._gripper_setpoint = setpoints
            self.robot_collisions, self._last_cell_contact = collisions

        if self._run_steps(count):
            return
        restore()
        self.physics_recoveries += 1
        if self._run_steps(count):
            return
        # MuJoCo's reset state (or the diverged one) is no world to go on in: a reloaded scene
        # would put placed parts back in the bin, the reset one lays the arm on the table
        restore()
        mujoco.mj_forward(self.model, self.data)  # the poses, contacts of the restored state
        self.stop()
        self._time_offset = end - self.data.time  # the cell's clock (the ROS /clock) goes on
        raise PhysicsDivergedError(
            f'physics diverged at t = {self.time:.3f} s: bad positions, velocities or '
            f'accelerations (MuJoCo), or a body faster than {BLOW_UP_SPEED:g} m/s or rad/s; '
            f'the state before restored, the arm halted')

    def _run_steps(self, count: int) -> bool:
        """Run ``count`` physics steps; False, stopping at once, if the physics diverged."""
        dt = self.model.opt.timestep
        ramp = self.config.gripper_speed / 2 * dt
        warnings = [self.data.warning[kind] for kind in BLOW_UP_WARNINGS]
        for warning in warnings:
            warning.number = 0  # MuJoCo counts on until its next reset
        for _ in range(count):
            if self._trajectory is not None:
                t = self.data.time - self._trajectory_start
                position, velocity = self._trajectory(t)
                self.data.ctrl[self._position_act] = position
                self.data.ctrl[self._velocity_act] = velocity
                self.data.ctrl[self._feedforward_act] = self._feedforward(
                    self._trajectory.acceleration(t))
                if t >= self._trajectory.duration:
                    self._trajectory = None
            else:
                self.data.ctrl[self._feedforward_act] = 0.0
            half = self._gripper_target / 2
            self._gripper_setpoint += float(np.clip(half - self._gripper_setpoint, -ramp, ramp))
            self.data.ctrl[self._gripper_act] = self._gripper_setpoint
            mujoco.mj_step(self.model, self.data)
            if any(warning.number for warning in warnings) or \
                    np.abs(self.data.qvel).max() > BLOW_UP_SPEED:
                return False  # the reset state's contacts are no collisions
            self._count_collisions()
        return True

    def _feedforward(self, acceleration: np.ndarray) -> np.ndarray:
        """Arm joint forces for accelerations ``qdd``: ``M(q) qdd`` + Coriolis and centrifugal.

        Gravity is compensated separately (``gravcomp``); M and the velocity terms are those of
        the last step.
        """
        qdd = np.zeros(self.model.nv)
        qdd[self._arm_dof] = acceleration
        force = np.zeros(self.model.nv)
        mujoco.mj_mulM(self.model, self.data, force, qdd)
        force += self.data.qfrc_bias - self.data.qfrc_gravcomp
        return force[self._arm_dof]

    def step_until_idle(self, timeout: float = 30.0, settle: float = 0.2) -> None:
        """Step until the trajectory and the gripper ramp are done, then ``settle`` s more."""
        dt = self.model.opt.timestep
        end = self.data.time + timeout
        while self.data.time < end and (self._trajectory is not None or
                                        abs(self._gripper_setpoint -
                                            self._gripper_target / 2) > 1e-9):
            self.step(10)
        self.step(int(round(settle / dt)))

    def advance(self, duration: float) -> None:
        """Step the simulation for ``duration`` seconds of sim time."""
        self.step(int(round(duration / self.model.opt.timestep)))

    # ---------------------------------------------------------------- contacts and accounting
    def _count_collisions(self) -> None:
        """Count a collision when the robot starts touching the fixed cell.

        A grazing contact flickers on and off from one step to the next: contacts less than
        ``COLLISION_GAP`` apart are one collision.
        """
        if not self.data.ncon:
            return
        kinds = self._geom_kind[self.data.contact.geom[:self.data.ncon]]
        if ((kinds.min(axis=1) == 0) & (kinds.max(axis=1) == 1)).any():
            self.robot_collisions += int(self.time - self._last_cell_contact > COLLISION_GAP)
            self._last_cell_contact = self.time

    def finger_contacts(self) -> tuple[set[int], set[int]]:
        """Ids of the objects touching the left and the right finger."""
        touching = (set(), set())
        body_object = {int(b): o.id for b, o in zip(self._object_body, self.objects)}
        for contact in self.data.contact[:self.data.ncon]:
            bodies = (self.model.geom_bodyid[contact.geom1], self.model.geom_bodyid[contact.geom2])
            for side, finger in enumerate(self._finger_body):
                if finger in bodies:
                    other = bodies[1] if bodies[0] == finger else bodies[0]
                    if int(other) in body_object:
                        touching[side].add(body_object[int(other)])
        return touching

    def held_objects(self) -> set[int]:
        """Ids of the objects in the hand (touching both fingers)."""
        left, right = self.finger_contacts()
        return left & right

    def object_states(self) -> list[ObjectState]:
        """Ground truth of every object of the scene (labelled objects and distractors)."""
        held = self.held_objects()
        layout = self.layout
        states = []
        for body, instance in zip(self._object_body, self.objects):
            pose = np.eye(4)
            pose[:3, :3] = self.data.xmat[body].reshape(3, 3)
            pose[:3, 3] = self.data.xpos[body]
            x, y, z = pose[:3, 3]
            if instance.id in held:
                location = Location.IN_HAND
            elif (abs(x - layout['bin_x']) < layout['bin_length'] / 2 and
                  abs(y - layout['bin_y']) < layout['bin_width'] / 2 and
                  0 < z < layout['bin_height'] + 0.1):
                location = Location.IN_BIN
            elif (abs(x - layout['place_x']) < layout['place_length'] / 2 and
                  abs(y - layout['place_y']) < layout['place_width'] / 2 and
                  0 < z < layout['place_height'] + 0.1):
                location = Location.PLACED
            else:
                location = Location.DROPPED
            states.append(ObjectState(instance.id, instance.class_id, instance.label, pose,
                                      location))
        return states

    # ---------------------------------------------------------------- camera
    def _render(self, mode: str) -> np.ndarray:
        renderer = self._renderer
        renderer.disable_depth_rendering()
        renderer.disable_segmentation_rendering()
        if mode == 'depth':
            renderer.enable_depth_rendering()
        elif mode == 'segmentation':
            renderer.enable_segmentation_rendering()
        renderer.update_scene(self.data, self.camera_id, self._scene_option)
        return renderer.render()

    def render_rgb(self) -> np.ndarray:
        """``uint8[H, W, 3]`` colour image (RGB)."""
        return self._render('rgb').copy()

    def render_depth(self, ideal: bool = False) -> np.ndarray:
        """``float32[H, W]`` depth aligned to colour, m; with the depth model unless ``ideal``."""
        depth = self._render('depth').astype(np.float32)
        if ideal or self.config.depth_model is None:
            return depth
        return apply_depth_model(depth, self.config.intrinsics, self.config.depth_model,
                                 self._depth_rng)

    def render_labels(self) -> np.ndarray:
        """``int32[H, W]`` visible object per pixel: 0 none, k for ``objects[k - 1]``."""
        segmentation = self._render('segmentation')
        geom = np.where(segmentation[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM),
                        segmentation[..., 0], -1)
        return self._geom_label[geom]

    def capture(self, ideal_depth: bool = False) -> CameraFrame:
        """Render colour, aligned depth and segmentation of the current state."""
        labels = self.render_labels()
        boxes, pixels = visible_boxes(labels, len(self.objects))
        return CameraFrame(self.render_rgb(), self.render_depth(ideal_depth), labels, boxes,
                           pixels, self.objects, self.time)

    def close(self) -> None:
        """Release the renderer (GL context)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
