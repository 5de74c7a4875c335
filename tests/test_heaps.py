import random

from queueapp.heaps import Lane, Timer, TimerHeap, pack, take_best, unpack_id


def test_lane_orders_by_priority_then_due_time_then_arrival():
    lane = Lane("q", "n")
    entries = [(p, run_at, i) for i, (p, run_at) in enumerate(
        [(3, 10), (1, 50), (3, 5), (5, 1), (1, 50), (2, 99)], start=1)]
    random.Random(1).shuffle(entries)
    for p, run_at, i in entries:
        lane.push(pack(p, run_at, i))
    assert take_best([lane], 10).ids == [2, 5, 6, 3, 1, 4]


def test_take_best_merges_lanes_in_global_order():
    a, b = Lane("q", "a"), Lane("q", "b")
    a.push(pack(3, 1, 1))
    b.push(pack(1, 2, 2))
    a.push(pack(1, 3, 3))
    b.push(pack(5, 0, 4))
    assert take_best([a, b], 3).ids == [2, 3, 1]
    assert take_best([a, b], 3).ids == [4]
    assert take_best([a, b], 3).ids == []


def test_tombstones_skip_exactly_one_copy():
    lane = Lane("q", "n")
    key = pack(3, 100, 7)
    lane.push(key)
    lane.kill(key)
    lane.push(key)  # the same job back in the same place: one live copy remains
    assert len(lane) == 1
    assert take_best([lane], 5).ids == [7]
    assert lane.peek() is None


def test_pack_keeps_large_values_apart():
    key = pack(5, 2**41, 2**47)
    assert unpack_id(key) == 2**47
    assert pack(1, 2**41, 2**47) < pack(2, 0, 0)


def test_timer_heap_pops_only_due_and_skips_killed():
    lane = Lane("q", "n")
    timers = TimerHeap()
    for run_at, job_id in [(30, 1), (10, 2), (20, 3)]:
        timers.push(Timer(run_at, job_id, 3, lane))
    timers.kill(10, 2)
    assert timers.next_due() == 20
    assert [t.job_id for t in timers.pop_due(25)] == [3]
    assert timers.pop_due(25) == []
    assert [t.job_id for t in timers.pop_due(30)] == [1]
    assert len(timers) == 0
