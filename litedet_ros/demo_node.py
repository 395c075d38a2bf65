"""Demo node: bin-clearing rounds in the simulated workcell, recorded and reported.

Runs beside the sim graph (``litedet-ros demo`` and ``bench e2e`` start both). Per round: waits
for the sim and the controller, refills the bin (``sim/reset_bin``: seed ``seed + round``,
``num_objects``, or 5-25 drawn from the seed when 0), waits until the pipeline publishes grasps
for the new bin, calls ``controller_node/run`` (true), and follows ``pick_status`` until the
controller's run ends (no more grasps, or its own failure limit), ``max_consecutive_failures``
attempts in a row failed (the stop rule: ``controller_node/run`` false, the round ends when the
arm is idle) or ``timeout``. Meanwhile it

- prints a progress line per finished attempt and saves ``images/pick_NNN.png`` (the detector's
  annotated image the attempt started from, with the outcome written on it);
- measures the pipeline's per-stage latency from wall-clock receive times of the same image
  stamp: colour image -> detections -> grasps;
- records the graph's topics (CDR, as received) into ``recording.mcap`` (images at most every
  ``record_image_period`` sim seconds), which Foxglove and ``ros2 bag`` open;

and at the end writes ``report.json`` (see :func:`litedet_ros.bringup.report.summarize`),
``results.txt`` (the table) and ``timing.png``, then exits. Object locations come from the sim's
ground truth (``sim/objects``), never used for control.
"""

from __future__ import annotations

import json
from pathlib import Path
import time

import cv2
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from litedet_ros import conversions, topics
from litedet_ros.bringup.latency import NS_PER_S, PIPELINE_TOPICS, StageLatency, header_stamp_ns
from litedet_ros.bringup.recording import McapRecorder
from litedet_ros.bringup.report import (
    LOCATIONS,
    NO_GRASP,
    CollisionStates,
    PickRecord,
    attempts_without_success,
    format_table,
    plot_report,
    round_objects,
    summarize,
)
from litedet_ros.bringup.spin import declare_read_only, spin_node
from litedet_ros.errors import LitedetError
from litedet_ros.motion.status import NO_FEASIBLE_GRASP, PICK_UNDER_WAY, PickOutcome, PickState
from litedet_ros.msg import DetectionArray, GraspArray, ObjectStateArray, PickStatus
from litedet_ros.srv import ResetBin

IMAGE_TOPICS = {topics.COLOR_IMAGE, topics.DETECTIONS_IMAGE}
RUN_SERVICE = 'controller_node/run'  # std_srvs/SetBool: true = pick until the bin is empty
#: Collisions while the controller is not running a round (resetting, settling) count apart.
BETWEEN_ROUNDS = 'between_rounds'
STATUS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
# topic -> (type, QoS): what is recorded
RECORDED = {
    topics.COLOR_IMAGE: (Image, qos_profile_sensor_data),
    topics.COLOR_INFO: (CameraInfo, qos_profile_sensor_data),
    topics.DETECTIONS: (DetectionArray, 10),
    topics.DETECTIONS_IMAGE: (Image, qos_profile_sensor_data),
    topics.GRASPS: (GraspArray, 10),
    topics.GRASP_POSES: (PoseArray, 10),
    topics.GRASP_MARKERS: (MarkerArray, 10),
    topics.JOINT_STATES: (JointState, 10),
    topics.JOINT_TRAJECTORY: (JointTrajectory, 10),
    topics.GRIPPER_COMMAND: (Float64MultiArray, 10),
    topics.PICK_STATUS: (PickStatus, STATUS_QOS),
    topics.SIM_OBJECTS: (ObjectStateArray, 10),
}
#: What the report needs when nothing is recorded (the other topics are not subscribed to:
#: joint_states alone would wake the node 100 times a sim second).
REPORTED = (*PIPELINE_TOPICS, topics.DETECTIONS_IMAGE, topics.PICK_STATUS, topics.SIM_OBJECTS)
PARAMETERS = {
    'seed': (400_000, 'Seed of the first round; round k uses seed + k.'),
    'num_objects': (10, 'Objects per bin, 1-25; 0 draws 5-25 per round from its seed.'),
    'rounds': (1, 'Bins to clear.'),
    'max_consecutive_failures': (2, 'Stop rule: a round ends after this many failed attempts '
                                    'in a row.'),
    'output_dir': ('output/demo', 'Folder for the report, images, plot and recording.'),
    'timeout': (540.0, 'Longest round of picking, wall s.'),
    'startup_timeout': (180.0, 'Longest wait for the graph to come up, wall s.'),
    'record': (True, 'Write recording.mcap.'),
    'record_image_period': (1.0, 'Shortest sim time between recorded images of a topic, s.'),
}


def _share_dirs() -> list[Path]:
    """``<prefix>/share`` of every package whose messages are recorded."""
    import importlib  # noqa: PLC0415

    dirs = []
    for msg_type, _ in RECORDED.values():
        module = importlib.import_module(msg_type.__module__)
        # <prefix>/lib/pythonX.Y/site-packages/<package>/msg/_type.py
        share = Path(module.__file__).resolve().parents[5] / 'share'
        if share not in dirs:
            dirs.append(share)
    return dirs


class DemoNode(Node):
    """Drive and record bin-clearing rounds; write the report at the end."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('demo_node', **kwargs)
        value = declare_read_only(self, PARAMETERS)
        if not 0 <= value['num_objects'] <= 25 or value['rounds'] < 1 or (
                value['max_consecutive_failures'] < 1):
            raise LitedetError('need num_objects in [0, 25], rounds >= 1 and '
                               'max_consecutive_failures >= 1')
        self.seed, self.num_objects = int(value['seed']), int(value['num_objects'])
        self.rounds, self.max_failures = value['rounds'], value['max_consecutive_failures']
        self.timeout, self.startup_timeout = value['timeout'], value['startup_timeout']
        self.image_period_ns = int(value['record_image_period'] * NS_PER_S)
        self.out = Path(value['output_dir'])
        (self.out / 'images').mkdir(parents=True, exist_ok=True)
        self.recorder = None
        if value['record']:
            self.recorder = McapRecorder(self.out / 'recording.mcap', _share_dirs())
            for topic, (msg_type, _) in RECORDED.items():
                name = msg_type.__module__.split('.')[0]
                self.recorder.add_topic(self.resolve_topic_name(topic),
                                        f'{name}/msg/{msg_type.__name__}')
        for topic in RECORDED if self.recorder is not None else REPORTED:
            msg_type, qos = RECORDED[topic]
            self.create_subscription(msg_type, topic,
                                     lambda data, info, topic=topic: self._on_message(
                                         topic, data, info['received_timestamp']),
                                     qos, raw=True)
        self.reset_client = self.create_client(ResetBin, topics.SIM_RESET_BIN)
        self.run_client = self.create_client(SetBool, RUN_SERVICE)

        self.phase = 'startup'
        self.phase_wall = time.monotonic()
        self.started_wall = time.monotonic()
        self.done = False
        self.stop_reason = ''
        self._last_image_ns: dict[str, int] = {}
        self.latency = StageLatency()
        self._last_detection_image: bytes | None = None
        self.objects: dict[str, int] = dict.fromkeys(LOCATIONS, 0)
        self._objects_stamp_ns = 0
        #: The sim's collision count (since it started), by the state the controller last
        #: reported when it rose.
        self.collisions = CollisionStates()
        self._task_state = 'before_the_task'
        self.picks: list[PickRecord] = []
        #: Finished rounds: seed, objects, attempts, successes, final objects, duration, reason.
        self.round_results: list[dict] = []
        self._round_objects = 0
        self._round_first_pick = 0
        self._round_reason = ''
        self.reset_time_ns = 0
        self.run_started_ns = 0
        self.run_started_wall = 0.0
        self._attempt_image: bytes | None = None
        self._in_attempt = False
        self._waited = False
        self._baseline_attempts = self._latest_attempts = 0
        self._future = None
        self.create_timer(0.1, self._step)

    # ------------------------------------------------------------------ messages
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_message(self, topic: str, data: bytes, received_ns: int) -> None:
        now = self._now_ns()
        if self.recorder is not None and not self.done:
            if topic not in IMAGE_TOPICS or (
                    now - self._last_image_ns.get(topic, -self.image_period_ns)
                    >= self.image_period_ns):
                self._last_image_ns[topic] = now
                self.recorder.write(self.resolve_topic_name(topic), data, now, now)
        if topic in PIPELINE_TOPICS:
            self.latency.add(topic, header_stamp_ns(data), received_ns,
                             measure=self.phase not in ('startup', 'resetting'))
        if topic == topics.DETECTIONS_IMAGE:
            self._last_detection_image = data
        elif topic == topics.SIM_OBJECTS:
            msg = deserialize_message(data, ObjectStateArray)
            counts = dict.fromkeys(LOCATIONS, 0)
            for state in msg.objects:
                counts[LOCATIONS[state.location]] += 1
            self.objects = counts
            self.collisions.update(
                msg.robot_collisions,
                self._task_state if self.phase in ('starting', 'running', 'stopping')
                else BETWEEN_ROUNDS,
                round=len(self.round_results) + 1, pick=len(self.picks) + 1,
                sim_time_s=round(conversions.stamp_to_ns(msg.header.stamp) / NS_PER_S, 2))
            self._objects_stamp_ns = conversions.stamp_to_ns(msg.header.stamp)
        elif topic == topics.PICK_STATUS:
            status = deserialize_message(data, PickStatus)
            try:
                self._task_state = PickState(status.state).name.lower()
            except ValueError:
                self.get_logger().warning(f'pick_status dropped: unknown state {status.state}')
                return
            self._latest_attempts = status.attempts  # counted from the controller's start-up
            if self.phase in ('starting', 'running', 'stopping'):
                self._on_status(status)

    def _on_status(self, status: PickStatus) -> None:
        state = PickState(status.state)
        if state in PICK_UNDER_WAY and not self._in_attempt:
            self._in_attempt = True
            self._attempt_image = self._last_detection_image
        # the controller counts an attempt when it starts (still WAITING_FOR_GRASPS) and
        # reports its result when it ends (IDLE, EMERGENCY_STOP); a new attempt's statuses
        # still carry the previous result, so a missed end status is caught up here
        started = status.attempts - self._baseline_attempts
        ended = started if state in (PickState.IDLE, PickState.EMERGENCY_STOP) else started - 1
        if (status.last_result != PickOutcome.NONE
                and ended > len(self.picks) - self._round_first_pick):
            self._waited = False
            self._record_pick(status)
            self._in_attempt = state in PICK_UNDER_WAY
            if self._in_attempt:  # caught up during the next attempt
                self._attempt_image = self._last_detection_image
        elif self.phase == 'stopping':
            return  # the round ends in _step once the controller is idle
        elif state == PickState.WAITING_FOR_GRASPS:
            self._waited = True
        elif state == PickState.IDLE and self._waited:
            left = self.objects['in_bin']
            self._end_round('bin empty' if not left else
                            f'no more grasps with {left} objects left in the bin')
        elif state in (PickState.STOPPED, PickState.EMERGENCY_STOP):
            self._end_round(f'controller {state.name.lower()} after '
                            f'{status.consecutive_failures} consecutive failures')

    def _record_pick(self, status: PickStatus) -> None:
        index = len(self.picks) + 1
        outcome = PickOutcome(status.last_result).name
        if status.last_reason.startswith(NO_FEASIBLE_GRASP):
            outcome = NO_GRASP  # nothing moved: not a pick attempt
        image = self._save_image(index, outcome, status.last_cycle_time)
        pick = PickRecord(index, outcome, status.last_reason, status.last_cycle_time,
                          self._now_ns() / NS_PER_S, dict(self.objects), image,
                          len(self.round_results) + 1)
        self.picks.append(pick)
        reason = f' ({pick.reason})' if pick.reason else ''
        print(f'pick {index:3d}: {outcome:<15} cycle {pick.cycle_time:5.2f} s | bin '
              f'{self.objects["in_bin"]:2d} placed {self.objects["placed"]:2d} dropped '
              f'{self.objects["dropped"]:2d}{reason}', flush=True)
        round_outcomes = [p.outcome for p in self.picks[self._round_first_pick:]]
        if (self.phase != 'stopping'
                and attempts_without_success(round_outcomes) >= self.max_failures):
            self._stop_run(f'stop rule: {self.max_failures} consecutive failed attempts')

    def _save_image(self, index: int, outcome: str, cycle_time: float) -> str:
        if self._attempt_image is None:
            return ''
        try:
            image = conversions.image_to_numpy(deserialize_message(self._attempt_image, Image))
        except LitedetError as error:
            self.get_logger().warning(f'pick {index}: no annotated image: {error}')
            return ''
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        color = (0, 160, 0) if outcome == 'SUCCESS' else (0, 0, 200)
        cv2.putText(bgr, f'pick {index}: {outcome} ({cycle_time:.2f} s)', (10, 25),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, 2, cv2.LINE_AA)
        name = f'images/pick_{index:03d}.png'
        cv2.imwrite(str(self.out / name), bgr)
        return name

    # ------------------------------------------------------------------ rounds
    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_wall = time.monotonic()

    def _round_seed_and_objects(self) -> tuple[int, int]:
        seed = self.seed + len(self.round_results)
        if self.num_objects:
            return seed, self.num_objects
        return seed, round_objects(seed)

    def _stop_run(self, reason: str) -> None:
        """Ask the controller to start no other attempt; the round ends once it is idle."""
        self._round_reason = reason
        self._future = self.run_client.call_async(SetBool.Request(data=False))
        self._set_phase('stopping')

    def _end_round(self, reason: str) -> None:
        seed, objects = self._round_seed_and_objects()
        picks = self.picks[self._round_first_pick:]
        self.round_results.append({
            'round': len(self.round_results) + 1, 'seed': seed, 'objects': objects,
            'attempts': sum(p.outcome != NO_GRASP for p in picks),
            'successes': sum(p.outcome == 'SUCCESS' for p in picks),
            'final_objects': dict(self.objects),
            'collisions': sum(e['collisions'] for e in self.collisions.events
                              if e['round'] == len(self.round_results) + 1
                              and e['state'] != BETWEEN_ROUNDS),
            'duration_s': (self._now_ns() - self.run_started_ns) / NS_PER_S,
            'stop_reason': reason})
        self._round_first_pick = len(self.picks)
        self._in_attempt = self._waited = False
        if len(self.round_results) >= self.rounds:
            self.finish(reason if self.rounds == 1 else f'{self.rounds} rounds done')
        else:
            self._set_phase('startup')

    def _step(self) -> None:
        if self.done:
            return
        waited = time.monotonic() - self.phase_wall
        running = time.monotonic() - self.run_started_wall if self.run_started_ns else 0.0
        if self.phase in ('startup', 'resetting', 'settling') and waited > self.startup_timeout:
            self.finish(f'graph not ready after {self.startup_timeout:.0f} s ({self.phase})')
        elif self.phase in ('starting', 'running') and running > self.timeout:
            self._stop_run(f'timeout after {self.timeout:.0f} s')
        elif self.phase == 'stopping':
            # the controller lets a started attempt finish, then starts no other
            if self._future.done() and not self._in_attempt and waited > 2.0:
                self._end_round(self._round_reason)
        elif self.phase == 'startup':
            if self.reset_client.service_is_ready() and self.run_client.service_is_ready():
                seed, objects = self._round_seed_and_objects()
                self.get_logger().info(f'refilling the bin: seed {seed}, {objects} objects')
                self._future = self.reset_client.call_async(
                    ResetBin.Request(seed=seed, num_objects=objects))
                self._set_phase('resetting')
        elif self.phase == 'resetting' and self._future.done():
            response = self._future.result()
            if not response.success:
                self.finish(f'sim/reset_bin refused: {response.message}')
                return
            self.reset_time_ns = self._now_ns()
            self._set_phase('settling')
        elif self.phase == 'settling':
            grasps = self.latency.latest_stamp(topics.GRASPS)
            if (grasps is not None and grasps > self.reset_time_ns
                    and self._objects_stamp_ns > self.reset_time_ns):
                # statuses count from here: the controller may answer after it started
                seed, self._round_objects = self._round_seed_and_objects()
                self._baseline_attempts = self._latest_attempts
                self.run_started_ns = self._now_ns()
                self.run_started_wall = time.monotonic()
                self._future = self.run_client.call_async(SetBool.Request(data=True))
                self._set_phase('starting')
                print(f'round {len(self.round_results) + 1}/{self.rounds}: picking from a '
                      f'bin of {self._round_objects} objects (seed {seed})', flush=True)
        elif self.phase == 'starting' and self._future.done():
            response = self._future.result()
            if not response.success:
                self.finish(f'{RUN_SERVICE} refused: {response.message}')
                return
            self._set_phase('running')

    def finish(self, reason: str) -> None:
        """End the episode: close the recording, write report, table and plot."""
        if self.done:
            return
        self.done = True
        self.stop_reason = reason
        rounds = self.round_results
        final = {name: sum(r['final_objects'][name] for r in rounds) for name in LOCATIONS}
        report = summarize(sum(r['objects'] for r in rounds), self.picks, final,
                           sum(r['duration_s'] for r in rounds), self.latency.samples, reason,
                           collisions=sum(r['collisions'] for r in rounds),
                           collision_states=dict(self.collisions.states.most_common()),
                           collision_events=self.collisions.events,
                           seed=self.seed, rounds=rounds,
                           wall_s=time.monotonic() - self.started_wall,
                           recording='recording.mcap' if self.recorder else '')
        if self.recorder is not None:
            self.recorder.close()
            report['recorded_messages'] = dict(self.recorder.counts)
        text = json.dumps(report, indent=2, allow_nan=False)
        (self.out / 'report.json').write_text(text + '\n')
        (self.out / 'results.txt').write_text(format_table(report) + '\n')
        plot_report(report, self.latency.samples, self.out / 'timing.png')
        self.get_logger().info(f'episode over: {reason}; report in {self.out}')

    def destroy_node(self) -> None:
        """End the episode if the graph was shut down mid-way, and close the recording."""
        self.finish('interrupted: the graph was shut down')  # no-op after a normal end
        if self.recorder is not None:
            self.recorder.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run one episode, then exit."""
    spin_node(DemoNode, args, until=lambda node: node.done)


if __name__ == '__main__':
    main()
