"""Simulated execution: trajectory refusals, tracking, grasp holding, a scripted pick."""

import numpy as np
import pinocchio as pin
import pytest

from litedet_ros.description import ARM_JOINTS, TCP_FRAME
from litedet_ros.sim.objects import ObjectInstance
from litedet_ros.sim.workcell import Location, PhysicsDivergedError, Workcell
from litedet_ros.trajectory import (
    JointLimits,
    JointTrajectory,
    TrajectoryError,
    TrajectorySampler,
    concatenate,
    validate_trajectory,
)

LIMITS = JointLimits(('a', 'b'), np.array([-1.0, -2.0]), np.array([1.0, 2.0]),
                     np.array([1.0, 1.0]))
DOWN_Y = np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]])  # tcp z down, closing axis world y


def _trajectory(**overrides):
    fields = {'joint_names': ('a', 'b'), 'times': np.array([0.0, 1.0]),
                  'positions': np.array([[0.0, 0.0], [0.5, 0.5]]), 'velocities': None}
    fields.update(overrides)
    return JointTrajectory(**fields)


@pytest.mark.parametrize('overrides, reason', [
    ({'joint_names': ('a', 'c')}, 'unknown joint'),
    ({'joint_names': ('a', 'a')}, 'each of'),
    ({'positions': np.array([[0.0, 0.0], [np.nan, 0.5]])}, 'NaN'),
    ({'positions': np.array([[0.0, 0.0], [np.inf, 0.5]])}, 'NaN or inf'),
    ({'positions': np.array([[0.0, 0.0], [1.5, 0.5]])}, 'outside'),
    ({'velocities': np.array([[0.0, 0.0], [2.0, 0.0]])}, 'velocity'),
    ({'times': np.array([0.0, 0.2])}, 'rad/s'),
    ({'times': np.array([1.0, 1.0])}, 'strictly increasing'),
    ({'times': np.array([1.0, 0.5])}, 'strictly increasing'),
    ({'positions': np.array([[0.3, 0.0], [0.5, 0.5]]), 'times': np.array([0.5, 1.5])},
     'first point'),
    ({'positions': np.zeros((3, 2))}, 'positions'),
])
def test_bad_trajectory_refused(overrides, reason):
    with pytest.raises(TrajectoryError, match=reason):
        validate_trajectory(_trajectory(**overrides), LIMITS, np.zeros(2))


def test_trajectory_reordered_and_sampled():
    valid = validate_trajectory(_trajectory(joint_names=('b', 'a'),
                                            positions=np.array([[0.0, 0.0], [0.2, 0.6]])),
                                LIMITS, np.zeros(2))
    assert valid.positions[-1].tolist() == [0.6, 0.2]
    sampler = TrajectorySampler(valid, np.zeros(2))
    position, velocity = sampler(0.5)
    assert np.allclose(position, [0.3, 0.1]) and np.allclose(velocity, [0.6, 0.2])
    assert np.allclose(sampler(5.0)[0], [0.6, 0.2])


def test_trajectories_run_one_after_the_other():
    first = _trajectory(velocities=np.zeros((2, 2)))
    second = _trajectory(times=np.array([0.0, 0.5, 2.0]), velocities=np.ones((3, 2)),
                         positions=np.array([[0.5, 0.5], [0.6, 0.4], [0.0, 0.0]]))
    joined = concatenate([first, second])
    assert joined.times.tolist() == [0.0, 1.0, 1.5, 3.0]
    assert joined.positions.tolist() == [[0.0, 0.0], [0.5, 0.5], [0.6, 0.4], [0.0, 0.0]]
    assert joined.velocities.shape == (4, 2)
    assert concatenate([first, _trajectory()]).velocities is None


class _Kinematics:
    """Damped-least-squares IK on the same URDF (test helper, not the project's planner)."""

    def __init__(self, urdf):
        self.model = pin.buildModelFromXML(urdf)
        self.data = self.model.createData()
        self.frame = self.model.getFrameId(TCP_FRAME)

    def ik(self, rotation, position, seed):
        q = pin.neutral(self.model)
        q[:6] = seed
        target = pin.SE3(rotation, np.asarray(position, dtype=float))
        for _ in range(300):
            pin.framesForwardKinematics(self.model, self.data, q)
            error = pin.log6(self.data.oMf[self.frame].actInv(target)).vector
            if np.linalg.norm(error) < 1e-8:
                break
            jac = pin.computeFrameJacobian(self.model, self.data, q, self.frame,
                                           pin.LOCAL)[:, :6]
            q[:6] += jac.T @ np.linalg.solve(jac @ jac.T + 1e-8 * np.eye(6), error)
        assert np.linalg.norm(error) < 1e-6
        return seed + (q[:6] - seed + np.pi) % (2 * np.pi) - np.pi  # nearest to the seed

    def grasp_ik(self, rotation, position, seed):
        # The jaw is symmetric: of the two grasps turned by pi about z, take the nearer one.
        flipped = rotation @ np.diag([-1.0, -1.0, 1.0])
        return min((self.ik(r, position, seed) for r in (rotation, flipped)),
                   key=lambda q: np.abs(q - seed).max())


def _move(cell, target, duration):
    start = cell.arm_positions()
    cell.execute(JointTrajectory(ARM_JOINTS, np.array([0.0, duration]),
                                 np.vstack([start, target])))
    cell.step_until_idle()


def _tcp_in_world(cell):
    return cell.body_pose('tcp')


@pytest.fixture(scope='module')
def cell():
    workcell = Workcell(num_objects=0)
    yield workcell
    workcell.close()


def test_refused_trajectory_does_not_move(cell):
    cell.reset(seed=0, num_objects=0)
    before = cell.arm_positions()
    far = before + 0.5
    with pytest.raises(TrajectoryError, match='first point'):
        cell.execute(JointTrajectory(ARM_JOINTS, np.array([0.5, 2.0]), np.vstack([far, far])))
    bad = np.vstack([before, before])
    bad[1, 2] = 4.0  # elbow beyond +-pi
    with pytest.raises(TrajectoryError, match='outside'):
        cell.execute(JointTrajectory(ARM_JOINTS, np.array([0.0, 3.0]), bad))
    cell.advance(0.3)
    assert not cell.trajectory_active
    assert np.abs(cell.arm_positions() - before).max() < 1e-4


def test_trajectory_tracked(cell):
    cell.reset(seed=0, num_objects=0)
    target = cell.arm_positions() + np.array([0.3, -0.2, 0.2, 0.3, -0.3, 0.5])
    _move(cell, target, 2.0)
    assert np.abs(cell.arm_positions() - target).max() < 2e-3


def test_fast_trajectory_tracked_while_moving(cell):
    """Half a cosine of -0.73 rad in 0.6 s on every joint: 10 rad/s^2 at the ends.

    The servos get the trajectory's inverse dynamics as feed-forward; PD alone lagged 6.5 mrad
    at the shoulder at 10 rad/s^2, which overshot descents into the bin floor. (+0.73 rad
    takes the hand into the place tote's wall.)
    """
    cell.reset(seed=0, num_objects=0)
    start, duration, amplitude = cell.arm_positions(), 0.6, -0.73
    times = np.linspace(0.0, duration, 31)
    phase = np.pi * times / duration
    positions = start + amplitude / 2 * (1 - np.cos(phase))[:, None]
    velocities = amplitude * np.pi / (2 * duration) * np.sin(phase)[:, None] * np.ones(6)
    trajectory = JointTrajectory(ARM_JOINTS, times, positions, velocities)
    sampler = TrajectorySampler(trajectory, start)
    cell.execute(trajectory)
    began, lag = cell.time, 0.0
    while cell.trajectory_active:
        cell.step(5)
        lag = max(lag, np.abs(cell.arm_positions() - sampler(cell.time - began)[0]).max())
    assert lag < 1e-3


def test_gripper_holds_100g_part_for_10s(cell):
    part = ObjectInstance(0, 0, 1.0, (0.8, 0.5, 0.3, 1.0), 0.1, 0.6)  # 80x50x40 mm box
    cell.reset_with([part], [(np.array([0.5, 0.0, 0.035]), np.array([1.0, 0, 0, 0]))])
    kin = _Kinematics(cell.urdf)
    home = cell.arm_positions()
    above = kin.grasp_ik(DOWN_Y, [0.5, 0.0, 0.20], home)
    grasp = kin.ik(DOWN_Y, [0.5, 0.0, 0.035], above)
    _move(cell, above, 2.0)
    _move(cell, grasp, 1.5)
    cell.command_gripper(0.0)
    cell.step_until_idle(settle=0.5)
    assert 0.048 < cell.gripper_width() < 0.0505  # closed on the 50 mm side
    _move(cell, above, 1.5)
    assert cell.held_objects() == {0}
    start = np.linalg.inv(_tcp_in_world(cell)) @ cell.object_states()[0].pose
    cell.advance(10.0)
    end = np.linalg.inv(_tcp_in_world(cell)) @ cell.object_states()[0].pose
    slip = np.linalg.norm(end[:3, 3] - start[:3, 3])
    assert slip < 0.002, slip
    assert cell.object_states()[0].location == Location.IN_HAND


def test_a_part_slides_on_the_bin_floor_with_its_own_friction(cell):
    """A 100 g box with friction 0.45 (a can's) pushed sideways by 0.7 N slides.

    0.7 N exceeds 0.45 x 0.98 N. MuJoCo takes the larger friction of two geoms of equal
    priority, and the bin's URDF default of 1.0 held it still.
    """
    import mujoco

    part = ObjectInstance(0, 0, 1.0, (0.8, 0.5, 0.3, 1.0), 0.1, 0.45)  # 80x50x40 mm box
    cell.reset_with([part], [(np.array([0.5, 0.0, 0.035]), np.array([1.0, 0, 0, 0]))])
    start = cell.object_states()[0].pose[0, 3]
    body = mujoco.mj_name2id(cell.model, mujoco.mjtObj.mjOBJ_BODY, part.body_name)
    cell.data.xfrc_applied[body, :3] = (0.7, 0.0, 0.0)
    cell.advance(0.3)
    cell.data.xfrc_applied[body] = 0.0
    # (0.7 - 0.45 x 0.98) N / 0.1 kg for 0.3 s: 11.7 cm
    assert cell.object_states()[0].pose[0, 3] - start == pytest.approx(0.117, abs=0.01)


def test_scripted_pick_lifts_part_out_of_bin(cell):
    cell.reset(seed=0, num_objects=8)
    # The highest box or can, grasped from above across its narrow horizontal side.
    candidates = [s for s in cell.object_states() if s.label in ('box', 'can')]
    target = max(candidates, key=lambda s: s.pose[2, 3])
    axes = target.pose[:3, :3]
    up = int(np.argmax(np.abs(axes[2])))
    instance = cell.objects[target.id]
    from litedet_ros.sim.objects import OBJECT_CLASSES
    size = np.array(OBJECT_CLASSES[instance.class_id].size) * instance.scale
    if target.label == 'can':
        extents = np.array([2 * size[0], 2 * size[0], size[1]])
    else:
        extents = size
    horizontal = [k for k in range(3) if k != up]
    closing = min(horizontal, key=lambda k: extents[k])
    y_axis = axes[:, closing].copy()
    y_axis[2] = 0.0
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.array([0.0, 0.0, -1.0])
    rotation = np.column_stack([np.cross(y_axis, z_axis), y_axis, z_axis])
    top = target.pose[2, 3] + extents[up] / 2
    floor = cell.layout['bin_wall']
    grasp_z = max(top - 0.02, floor + 0.022)
    kin = _Kinematics(cell.urdf)
    xy = target.pose[:2, 3]
    above = kin.grasp_ik(rotation, [*xy, 0.30], cell.arm_positions())
    grasp = kin.ik(rotation, [*xy, grasp_z], above)
    _move(cell, above, 2.5)
    _move(cell, grasp, 1.5)
    cell.command_gripper(0.0)
    cell.step_until_idle(settle=0.5)
    _move(cell, above, 1.5)
    state = cell.object_states()[target.id]
    assert state.location == Location.IN_HAND
    assert state.pose[2, 3] > cell.layout['bin_height'] + 0.05
    assert cell.gripper_width() > 0.01


def test_robot_contacts_with_the_cell_are_counted_as_collisions(cell):
    cell.reset(seed=0, num_objects=0)
    kin = _Kinematics(cell.urdf)
    floor = cell.layout['bin_wall']
    before = cell.robot_collisions
    above = kin.grasp_ik(DOWN_Y, [0.5, 0.0, 0.2], cell.arm_positions())
    _move(cell, above, 2.0)
    assert cell.robot_collisions == before  # a free move
    _move(cell, kin.ik(DOWN_Y, [0.5, 0.0, floor + 0.01], above), 1.5)  # tips 1 cm into the floor
    assert cell.robot_collisions == before + 1  # one contact episode, however many points
    _move(cell, above, 1.5)
    assert cell.robot_collisions == before + 1


def test_a_physics_blow_up_is_reported_and_the_cell_goes_back_before_it_with_the_arm_halted(
        cell):
    """Not MuJoCo's reset state (the arm on the table, the parts where they were spawned)."""
    cell.reset(seed=3, num_objects=8)
    cell.advance(0.2)
    start = cell.arm_positions()
    target = start + np.array([0.3, -0.2, 0.2, 0.0, 0.0, 0.3])
    cell.execute(JointTrajectory(ARM_JOINTS, np.array([0.0, 1.0]), np.vstack([start, target])))
    cell.advance(0.3)  # on its way
    arm, parts = cell.arm_positions(), [s.pose for s in cell.object_states()]
    before, dt = cell.time, cell.model.opt.timestep
    cell.data.qfrc_applied[0] = 1e20  # MuJoCo flags the acceleration, in the retry too
    with pytest.raises(PhysicsDivergedError, match='the arm halted'):
        cell.step(10)
    assert cell.time == pytest.approx(before + 10 * dt)  # not rewound with MuJoCo's data.time
    np.testing.assert_allclose(cell.arm_positions(), arm, atol=1e-9)
    for state, pose in zip(cell.object_states(), parts):  # poses lag a step behind
        np.testing.assert_allclose(state.pose[:3, 3], pose[:3, 3], atol=1e-3)
    assert not cell.trajectory_active
    cell.data.qfrc_applied[0] = 0.0  # the force the state before held
    cell.advance(0.5)
    np.testing.assert_allclose(cell.arm_positions(), arm, atol=2e-3)  # held where it stopped
    assert np.abs(cell.arm_positions() - target).max() > 0.1


def test_the_in_process_robot_waits_through_a_blow_up_with_the_arm_halted(cell):
    """As sim_node goes on after one (the task's wait does not fail): counted, not raised."""
    from litedet_ros.motion.sim_robot import SimRobot

    cell.reset(seed=3, num_objects=8)
    cell.advance(0.2)
    robot = SimRobot(cell)
    start = robot.joint_positions()
    robot.execute(JointTrajectory(ARM_JOINTS, np.array([0.0, 1.0]),
                                  np.vstack([start, start + np.array([0.3, -0.2, 0.2, 0, 0, 0])])))
    robot.wait(0.3)
    arm, before = robot.joint_positions(), robot.now()
    cell.data.qfrc_applied[0] = 1e20  # diverges in the retry too
    try:
        robot.wait(0.01)
    finally:
        cell.data.qfrc_applied[0] = 0.0  # the module's cell goes on to the next test
    assert robot.divergences == 1
    assert robot.now() == pytest.approx(before + 0.01)
    assert not robot.executing()
    np.testing.assert_allclose(robot.joint_positions(), arm, atol=1e-9)


@pytest.mark.parametrize('speed', [2e3, 1e4])
def test_a_part_flung_faster_than_any_body_moves_is_a_blow_up_too(cell, speed):
    """MuJoCo does not flag it: the part would land tens of metres away, lost."""
    cell.reset(seed=3, num_objects=8)
    cell.advance(0.2)
    parts, recoveries = [s.pose for s in cell.object_states()], cell.physics_recoveries
    cell.data.qvel[-6:-3] = speed  # the last part's free joint: linear velocity
    cell.step(10)
    assert cell.physics_recoveries == recoveries + 1
    for state, pose in zip(cell.object_states(), parts):
        np.testing.assert_allclose(state.pose[:3, 3], pose[:3, 3], atol=1e-3)


@pytest.mark.parametrize('speed', [1e9, 1e11])  # MuJoCo flags bad accelerations, velocities
def test_a_passing_physics_blow_up_is_undone_without_a_collision(cell, speed):
    """MuJoCo's reset stretches the arm out on the table: the state before comes back instead."""
    cell.reset(seed=3, num_objects=8)
    cell.advance(0.2)
    arm, parts = cell.arm_positions(), [s.pose for s in cell.object_states()]
    before, recoveries, collisions = cell.time, cell.physics_recoveries, cell.robot_collisions
    cell.data.qvel[:] = speed  # one step's blow-up; the restored state has every velocity zeroed
    cell.step(10)
    assert cell.physics_recoveries == recoveries + 1
    assert cell.time == pytest.approx(before + 10 * cell.model.opt.timestep)
    np.testing.assert_allclose(cell.arm_positions(), arm, atol=1e-6)
    for state, pose in zip(cell.object_states(), parts):
        np.testing.assert_allclose(state.pose[:3, 3], pose[:3, 3], atol=1e-3)
    assert cell.robot_collisions == collisions
