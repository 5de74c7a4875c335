import random

from queueapp.dispatch.lanes import Lane, Lanes, Timer, TimerHeap, pack, take_best, unpack_id


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
    timers = TimerHeap()
    for run_at, job_id in [(30, 1), (10, 2), (20, 3)]:
        timers.push(Timer(run_at, job_id, 3, "q", "n"))
    timers.kill(10, 2)
    assert timers.next_due() == 20
    assert [t.job_id for t in timers.pop_due(25)] == [3]
    assert timers.pop_due(25) == []
    assert [t.job_id for t in timers.pop_due(30)] == [1]
    assert len(timers) == 0


def test_lanes_take_in_global_order_across_many_names_with_kills_and_put_backs():
    rng = random.Random(7)
    lanes = Lanes("q", lambda name: False)
    live: dict[int, int] = {}
    next_id = 1
    for _ in range(3000):
        roll = rng.random()
        if roll < 0.6:
            key = pack(rng.randint(1, 5), rng.randint(0, 50), next_id)
            lanes.push(lanes.lane(f"n{rng.randrange(300)}"), key)
            live[next_id] = key
            next_id += 1
        elif roll < 0.7 and live:
            job_id = rng.choice(list(live))
            key = live.pop(job_id)
            name = next(n for n, lane in lanes.by_name.items() if key in lane.heap)
            lanes.by_name[name].kill(key)
        else:
            n = rng.randint(1, 20)
            taken = lanes.take(n, local=False)
            expected = sorted(live.values())[:n]
            assert [key for _, key in taken.entries] == expected
            if rng.random() < 0.3:
                taken.put_back()  # a claim that failed: back in line, order intact
            else:
                for key in expected:
                    live.pop(unpack_id(key))
    assert [k for _, k in lanes.take(10**6, local=False).entries] == sorted(live.values())


def test_in_process_and_leased_lanes_are_taken_apart():
    lanes = Lanes("q", lambda name: name == "inproc")
    lanes.push(lanes.lane("inproc"), pack(1, 0, 1))
    lanes.push(lanes.lane("remote"), pack(3, 0, 2))
    assert lanes.take(5, local=False).ids == [2]
    assert lanes.take(5, local=True).ids == [1]


def test_taking_from_thirty_thousand_names_looks_at_few_lanes():
    """O(max log lanes): a take of 1,000 over 30,000 names touches each lane's top
    once at most, not 30,000 lanes per job."""
    lanes = Lanes("q", lambda name: False)
    for i in range(30_000):
        lanes.add_unordered(lanes.lane(f"name-{i}"), pack(3, i, i + 1))
    lanes.rebuild()
    peeks = 0
    original = Lane.peek

    def counting(self):
        nonlocal peeks
        peeks += 1
        return original(self)

    Lane.peek = counting
    try:
        taken = lanes.take(1000, local=False)
    finally:
        Lane.peek = original
    assert taken.ids == list(range(1, 1001))
    assert peeks < 5 * 1000


def test_push_many_keeps_global_order_with_single_pushes_and_takes():
    rng = random.Random(7)
    lanes = Lanes("q", lambda name: False)
    expected: list[int] = []
    next_id = 1
    for round_ in range(30):
        lane = lanes.lane(rng.choice(["a", "b", "c"]))
        count = rng.choice([1, 5, 200])
        priority, run_at = rng.randint(1, 5), rng.randint(0, 100)
        keys = [pack(priority, run_at, next_id + i) for i in range(count)]
        next_id += count
        if count == 1:
            lanes.push(lane, keys[0])
        else:
            lanes.push_many(lane, keys)
        expected += keys
        if round_ % 7 == 6:  # take some in between: the tops must stay right
            taken = lanes.take(50, local=False).entries
            expected.sort()
            assert [key for _, key in taken] == expected[:len(taken)]
            del expected[:len(taken)]
    expected.sort()
    assert [key for _, key in lanes.take(10_000, local=False).entries] == expected
