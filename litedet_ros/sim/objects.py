"""Object library of the simulated bin: classes, sizes, masses, friction, and MjSpec builders.

``CLASS_NAMES`` is the label list shared with the detector (0-based class index = position in
the tuple; COCO category id = index + 1). Sizes are those of the nominal instance; every instance
is scaled by a random factor (``SCALE_RANGE``) and gets a random colour, so the detector sees
per-instance variation. Three classes use meshes shipped in the ``pybullet`` wheel's
``pybullet_data`` (loaded from the installed package at run time, never copied here); the
distractors (unlabelled clutter) come from its 1000 procedurally generated objects.

Collision: primitives collide as themselves; meshes collide as their convex hull (MuJoCo).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
from pathlib import Path

import mujoco
import numpy as np

# Per-instance uniform scale factor applied to every dimension (mass scales with its cube).
SCALE_RANGE = (0.85, 1.15)
OBJECT_GEOM_GROUP = 2  # visible in renders (URDF visuals are group 1, URDF collisions group 0)
COLLISION_GEOM_GROUP = 3  # an object's collision-only geoms, not rendered
MAX_HULL_VERTICES = 64  # collision hulls of meshes are simplified to this many vertices


@dataclass(frozen=True)
class ObjectClass:
    """One class of parts.

    Attributes:
        name: label (also the COCO category name).
        shape: builder key: 'box', 'cylinder', 'bracket', 'ring', 'mesh' or 'cup' (a mesh
            rendered as it is and collided as a hollow cup, :func:`add_cup`).
        size: nominal dimensions, m: box (x, y, z); cylinder (radius, height); bracket (length,
            width, flange height, thickness); ring (centre-line radius, tube radius); mesh
            and cup (uniform mesh scale,).
        mass: nominal mass, kg.
        friction: sliding friction coefficient against the bin and other parts (the
            gripper pads' own, 1.0, holds against them).
        rgba: base colour, randomized per instance around it.
        mesh: path of the mesh relative to ``pybullet_data`` ('' for primitives).
    """

    name: str
    shape: str
    size: tuple[float, ...]
    mass: float
    friction: float
    rgba: tuple[float, float, float, float]
    mesh: str = ''


OBJECT_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass('box', 'box', (0.08, 0.05, 0.04), 0.08, 0.6, (0.72, 0.55, 0.35, 1)),
    ObjectClass('can', 'cylinder', (0.033, 0.10), 0.20, 0.45, (0.75, 0.12, 0.10, 1)),
    ObjectClass('bracket', 'bracket', (0.07, 0.03, 0.04, 0.006), 0.05, 0.45,
                (0.70, 0.72, 0.75, 1)),
    ObjectClass('ring', 'ring', (0.028, 0.008), 0.06, 0.7, (0.15, 0.15, 0.15, 1)),
    ObjectClass('duck', 'mesh', (0.05,), 0.05, 0.8, (0.95, 0.80, 0.10, 1), 'duck_vhacd.obj'),
    ObjectClass('toy_brick', 'mesh', (0.15,), 0.03, 0.6, (0.15, 0.45, 0.85, 1), 'lego/lego.obj'),
    ObjectClass('mug', 'cup', (0.8,), 0.25, 0.6, (0.92, 0.92, 0.88, 1), 'objects/mug.obj'),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in OBJECT_CLASSES)

#: pybullet_data's mug (``objects/mug.obj``; m at mesh scale 1), measured from the file: the
#: inner radius at the rim, the outer radius, the inside's floor and the rim's height.
CUP_INNER_RADIUS, CUP_OUTER_RADIUS, CUP_FLOOR, CUP_HEIGHT = 0.0326, 0.040, 0.0086, 0.10
#: Boxes around the cup's wall (each as long as its chord, so the wall has no gaps).
CUP_WALL_SEGMENTS = 16
#: The mug's handle as convex pieces: its collision file less the first piece (the body's hull).
CUP_HANDLE_FILE = 'objects/mug_col.obj'

DISTRACTOR_MESHES = 1000  # pybullet_data/random_urdfs/000..999
DISTRACTOR_NAME = 'distractor'


@dataclass(frozen=True)
class ObjectInstance:
    """One object placed in a scene.

    Attributes:
        id: instance id, unique in the scene (also the body name suffix).
        class_id: index into ``CLASS_NAMES``, or -1 for an unlabelled distractor.
        scale: uniform scale factor of the nominal size.
        rgba: colour, ``float[4]`` in [0, 1].
        mass: kg.
        friction: sliding friction coefficient.
        mesh_index: distractor mesh number (``random_urdfs/NNN``), -1 otherwise.
    """

    id: int
    class_id: int
    scale: float
    rgba: tuple[float, float, float, float]
    mass: float
    friction: float
    mesh_index: int = -1

    @property
    def label(self) -> str:
        """Class name, or ``'distractor'``."""
        return CLASS_NAMES[self.class_id] if self.class_id >= 0 else DISTRACTOR_NAME

    @property
    def body_name(self) -> str:
        """Name of the object's free body in the MuJoCo model."""
        return f'object_{self.id}'


@functools.cache
def pybullet_data_dir() -> Path:
    """Return the ``pybullet_data`` directory of the installed ``pybullet`` wheel."""
    import pybullet_data  # noqa: PLC0415 - only its data path is needed

    return Path(pybullet_data.getDataPath())


@functools.cache
def convex_pieces(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The objects (``o`` groups) of an OBJ file as ``(vertices float[V, 3], faces int[F, 3])``.

    MuJoCo collides a mesh as its convex hull; a file that is a convex decomposition (the duck
    of pybullet_data: 5 pieces) collides as the shape it renders only if each piece is a geom
    of its own. Returns one piece for a file with a single object. (MuJoCo merges a file's
    objects into one mesh, and trimesh 5.2's loader reads this file as one object too.)
    """
    vertices, groups = [], [[]]
    with open(path) as obj:
        for line in obj:
            if line.startswith('v '):
                vertices.append(line.split()[1:4])
            elif line.startswith('o ') and groups[-1]:
                groups.append([])
            elif line.startswith('f '):  # 1-based, corners 'v', 'v/vt' or 'v/vt/vn'
                corners = [int(c.split('/')[0]) - 1 for c in line.split()[1:]]
                groups[-1].extend((corners[0], a, b) for a, b in zip(corners[1:], corners[2:]))
    vertices = np.asarray(vertices, np.float64)
    pieces = []
    for faces in groups:
        used, local = np.unique(np.asarray(faces), return_inverse=True)
        pieces.append((vertices[used], local.reshape(-1, 3)))
    return tuple(pieces)


def distractor_mesh_path(index: int) -> Path:
    """The OBJ file of distractor mesh ``index`` in ``pybullet_data/random_urdfs``."""
    return pybullet_data_dir() / 'random_urdfs' / f'{index:03d}' / f'{index:03d}.obj'


@functools.cache
def _finite_mesh(index: int) -> bool:
    # A few of pybullet's procedural meshes hold NaN vertices, which MuJoCo refuses to compile.
    with open(distractor_mesh_path(index)) as obj:
        vertices = [line.split()[1:4] for line in obj if line.startswith('v ')]
    return bool(np.isfinite(np.asarray(vertices, np.float64)).all())


def _usable_mesh(index: int) -> int:
    """``index``, or the next usable mesh if it is broken (other draws stay as they were)."""
    for offset in range(DISTRACTOR_MESHES):
        candidate = (index + offset) % DISTRACTOR_MESHES
        if _finite_mesh(candidate):
            return candidate
    raise FileNotFoundError('no usable distractor mesh in pybullet_data/random_urdfs')


def sample_instance(rng: np.random.Generator, instance_id: int, class_id: int,
                    distractor: bool = False) -> ObjectInstance:
    """Draw the per-instance variation (scale, colour, mass, friction) of one object.

    Args:
        rng: random generator (consumed in a fixed order, so scenes are reproducible).
        instance_id: id to give the instance.
        class_id: index into ``CLASS_NAMES`` (ignored for distractors).
        distractor: draw an unlabelled clutter object from the procedural meshes instead.
    """
    scale = float(rng.uniform(*SCALE_RANGE))
    if distractor:
        rgba = (*rng.uniform(0.1, 0.9, size=3).round(4), 1.0)
        return ObjectInstance(instance_id, -1, scale, tuple(rgba), 0.05 * scale ** 3, 0.6,
                              _usable_mesh(int(rng.integers(DISTRACTOR_MESHES))))
    cls = OBJECT_CLASSES[class_id]
    base = np.asarray(cls.rgba[:3])
    rgb = np.clip(base + rng.normal(0.0, 0.08, size=3), 0.02, 0.98).round(4)
    friction = float(cls.friction * rng.uniform(0.9, 1.1))
    return ObjectInstance(instance_id, class_id, scale, (*rgb, 1.0), cls.mass * scale ** 3,
                          friction)


def add_object(spec: mujoco.MjSpec, instance: ObjectInstance, position: np.ndarray,
               quaternion: np.ndarray) -> mujoco.MjsBody:
    """Add one object as a free body of the world.

    Args:
        spec: the workcell spec (modified in place).
        instance: what to add.
        position: ``float[3]`` initial body position in world, m.
        quaternion: ``float[4]`` initial orientation (w, x, y, z).

    Returns:
        The new body.
    """
    body = spec.worldbody.add_body(name=instance.body_name, pos=list(position),
                                   quat=list(quaternion))
    body.add_freejoint(name=f'{instance.body_name}_joint')
    # priority over the bin and the table (MuJoCo otherwise takes the larger of two
    # frictions: the URDF's default 1.0), not over the pads, whose own friction holds
    common = {'rgba': list(instance.rgba), 'friction': [instance.friction, 0.005, 0.0001],
              'priority': 1, 'group': OBJECT_GEOM_GROUP, 'condim': 4}
    s = instance.scale
    if instance.class_id < 0:
        mesh = spec.add_mesh(name=f'{instance.body_name}_mesh', scale=[0.015 * s] * 3,
                             maxhullvert=MAX_HULL_VERTICES,
                             file=str(distractor_mesh_path(instance.mesh_index)))
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh.name, **common)
        _set_mass(body, instance.mass)
        return body
    cls = OBJECT_CLASSES[instance.class_id]
    size = [v * s for v in cls.size]
    if cls.shape == 'box':
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[v / 2 for v in size], **common)
    elif cls.shape == 'cylinder':
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[size[0], size[1] / 2, 0],
                      **common)
    elif cls.shape == 'bracket':
        length, width, height, thick = size
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[length / 2, width / 2, thick / 2],
                      pos=[0, 0, -height / 2 + thick / 2], **common)
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[thick / 2, width / 2, height / 2],
                      pos=[-length / 2 + thick / 2, 0, 0], **common)
    elif cls.shape == 'ring':
        radius, tube = size
        segments = 12
        half = radius * np.tan(np.pi / segments)
        for k in range(segments):
            angle = 2 * np.pi * k / segments
            centre = radius * np.array([np.cos(angle), np.sin(angle), 0.0])
            tangent = np.array([-np.sin(angle), np.cos(angle), 0.0])
            body.add_geom(type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                          fromto=[*(centre - half * tangent), *(centre + half * tangent)],
                          size=[tube, 0, 0], **common)
    elif cls.shape == 'cup':
        add_cup(spec, body, instance.body_name, cls.mesh, size[0], common)
    else:
        _add_mesh_pieces(spec, body, f'{instance.body_name}_mesh', cls.mesh, size[0], common)
    _set_mass(body, instance.mass)
    return body


def add_cup(spec: mujoco.MjSpec, body: mujoco.MjsBody, name: str, file: str, scale: float,
            common: dict) -> None:
    """Geoms of a mug that collides as it renders: open at the top.

    MuJoCo collides a mesh as its convex hull, which would fill the mug (pybullet_data's own
    collision file does too): a finger put into it would stop on an invisible lid, a part dropped
    in would rest on it. The mesh is rendered and does not collide; collision geoms (not
    rendered): a floor, a wall of boxes and the handle's convex pieces.

    Args:
        spec: the workcell spec.
        body: the mug's body.
        name: prefix of the mesh names.
        file: the mug's mesh in pybullet_data (the ``CUP_*`` dimensions are its own).
        scale: uniform scale of the mesh.
        common: geom attributes of the object (colour, friction, render group, ...).
    """
    visual = spec.add_mesh(name=f'{name}_visual', scale=[scale] * 3,
                           file=str(pybullet_data_dir() / file))
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=visual.name, contype=0,
                  conaffinity=0, **common)
    solid = {**common, 'group': COLLISION_GEOM_GROUP}
    inner, outer = CUP_INNER_RADIUS * scale, CUP_OUTER_RADIUS * scale
    floor, height = CUP_FLOOR * scale, CUP_HEIGHT * scale
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[outer, floor / 2, 0],
                  pos=[0, 0, floor / 2], **solid)
    half_chord = outer * np.tan(np.pi / CUP_WALL_SEGMENTS)
    wall_half = [(outer - inner) / 2, half_chord, (height - floor) / 2]
    middle = (inner + outer) / 2
    for k in range(CUP_WALL_SEGMENTS):
        angle = 2 * np.pi * k / CUP_WALL_SEGMENTS
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=wall_half,
                      pos=[middle * np.cos(angle), middle * np.sin(angle), (height + floor) / 2],
                      quat=[np.cos(angle / 2), 0, 0, np.sin(angle / 2)], **solid)
    _add_mesh_pieces(spec, body, f'{name}_handle', CUP_HANDLE_FILE, scale, solid, skip=1)


def _add_mesh_pieces(spec: mujoco.MjSpec, body: mujoco.MjsBody, name: str, file: str,
                     scale: float, attributes: dict, skip: int = 0) -> None:
    """One mesh geom per convex piece of a pybullet_data OBJ file, less the first ``skip``."""
    path = pybullet_data_dir() / file
    pieces = convex_pieces(path)
    for k, (vertices, faces) in enumerate(pieces[skip:], start=skip):
        source = {'file': str(path)} if len(pieces) == 1 else \
            {'uservert': vertices.ravel().tolist(), 'userface': faces.ravel().tolist()}
        mesh = spec.add_mesh(name=f'{name}{k}', scale=[scale] * 3,
                             maxhullvert=MAX_HULL_VERTICES, **source)
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh.name, **attributes)


def _set_mass(body: mujoco.MjsBody, mass: float) -> None:
    # Spread the mass evenly over the colliding geoms; MuJoCo derives the inertia from their
    # shapes. A geom that only renders weighs nothing.
    solid = [bool(geom.contype or geom.conaffinity) for geom in body.geoms]
    share = mass / sum(solid)
    for geom, collides in zip(body.geoms, solid):
        geom.mass = share if collides else 0.0
