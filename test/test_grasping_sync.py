"""Approximate-time pairing of detections, depth and camera info (message_filters stand-in)."""

import pytest

from litedet_ros.errors import LitedetError
from litedet_ros.grasping.sync import ApproximateTimeSync

STREAMS = ('detections', 'depth', 'info')
MS = 1_000_000


def test_matches_within_slop_when_the_slowest_stream_arrives():
    sync = ApproximateTimeSync(STREAMS, slop_ns=5 * MS)
    assert sync.add('depth', 100 * MS, 'd100') is None
    assert sync.add('info', 100 * MS, 'i100') is None
    assert sync.add('depth', 133 * MS, 'd133') is None
    assert sync.add('info', 133 * MS, 'i133') is None
    # detections come late (inference); they pair with the depth of their own image
    assert sync.add('detections', 102 * MS, 'n102') == {
        'detections': 'n102', 'depth': 'd100', 'info': 'i100'}
    assert sync.add('detections', 134 * MS, 'n134') == {
        'detections': 'n134', 'depth': 'd133', 'info': 'i133'}
    assert sum(sync.drops.values()) == 0


def test_unmatched_backwards_and_stale_inputs_are_counted():
    sync = ApproximateTimeSync(STREAMS, slop_ns=5 * MS, queue_duration_ns=50 * MS)
    for stamp in (100, 133, 166):  # the oldest falls out of the 50 ms window
        sync.add('depth', stamp * MS, stamp)
    assert sync.drops['unmatched'] == 1
    sync.add('depth', 150 * MS, 150)  # going backwards on its stream
    assert sync.drops['backwards'] == 1
    sync.add('info', 166 * MS, 166)
    assert sync.add('detections', 166 * MS, 166) is not None
    assert sync.drops['unmatched'] == 2  # depth 133 skipped by the match
    sync.add('info', 160 * MS, 160)  # backwards on info
    sync.add('detections', 165 * MS, 165)  # backwards on detections
    assert sync.drops['backwards'] == 3
    assert sync.add('detections', 170 * MS, 170) is None
    assert sync.add('depth', 200 * MS, 200) is None
    assert sync.stream_drops == {('depth', 'unmatched'): 2, ('depth', 'backwards'): 1,
                                 ('info', 'backwards'): 1, ('detections', 'backwards'): 1}


def test_spread_beyond_slop_does_not_match():
    sync = ApproximateTimeSync(STREAMS, slop_ns=5 * MS)
    sync.add('depth', 100 * MS, 'd')
    sync.add('info', 100 * MS, 'i')
    assert sync.add('detections', 110 * MS, 'n') is None
    assert sync.add('depth', 111 * MS, 'd2') is None  # pivot 110: info 100 still too far
    assert sync.add('info', 111 * MS, 'i2') == {'detections': 'n', 'depth': 'd2', 'info': 'i2'}
    assert sync.drops['unmatched'] == 2  # d and i


def test_reset_forgets_stamps_after_a_clock_jump():
    sync = ApproximateTimeSync(STREAMS, slop_ns=0)
    for name in STREAMS:
        sync.add(name, 500, name)
    sync.reset()
    for name in STREAMS[:2]:
        assert sync.add(name, 10, name) is None
    assert sync.add('info', 10, 'info') is not None
    assert sync.drops == {}


@pytest.mark.parametrize('streams, slop, duration', [(('a',), 1, 1), (('a', 'a'), 1, 1),
                                                     (STREAMS, -1, 1), (STREAMS, 1, 0)])
def test_bad_configuration_is_refused(streams, slop, duration):
    with pytest.raises(LitedetError):
        ApproximateTimeSync(streams, slop, duration)


def test_unknown_stream_is_refused():
    with pytest.raises(LitedetError):
        ApproximateTimeSync(STREAMS, 1).add('rgb', 1, None)


@pytest.mark.parametrize('duration_ms, matched', [(2000, 64 - 18), (600, 0)])
def test_detections_later_than_the_queue_duration_find_no_depth(duration_ms, matched):
    """Detections 1.2 s behind 15 Hz depth (a loaded detector) need the depth still queued."""
    sync = ApproximateTimeSync(STREAMS, slop_ns=5 * MS, queue_duration_ns=duration_ms * MS)
    frames = [round(k * 1000 / 15) * MS for k in range(64)]
    sets = []
    for k, stamp in enumerate(frames):
        for stream in ('depth', 'info'):
            sets.append(sync.add(stream, stamp, (stream, k)))
        late = k - 18  # 18 frames = 1.2 s
        if late >= 0:
            sets.append(sync.add('detections', frames[late], ('detections', late)))
    sets = [s for s in sets if s is not None]
    assert len(sets) == matched
    assert all(s['depth'][1] == s['info'][1] == s['detections'][1] for s in sets)
    held = sum(len(queue) for queue in sync._queues.values())
    assert held <= 3 * (duration_ms * 15 // 1000 + 1)  # memory stays bounded by the duration
