import random

from queueapp.dispatch.lanes import Lane, pack, unpack_id
from queueapp.dispatch.order import Lanes
from queueapp.dispatch.timers import Timer, TimerHeap


def put(lanes: Lanes, name: str, key: int, group: str | None = None) -> None:
    lanes.push(lanes.lane(name, key >> 90, group), key)


def test_a_queue_orders_by_priority_then_due_time_then_arrival():
    lanes = Lanes("q", lambda name: False)
    entries = [(p, run_at, i) for i, (p, run_at) in enumerate(
        [(3, 10), (1, 50), (3, 5), (5, 1), (1, 50), (2, 99)], start=1)]
    random.Random(1).shuffle(entries)
    for p, run_at, i in entries:
        put(lanes, "n", pack(p, run_at, i))
    assert lanes.take(10, local=False).ids == [2, 5, 6, 3, 1, 4]


def test_lanes_of_several_names_merge_in_global_order():
    lanes = Lanes("q", lambda name: False)
    put(lanes, "a", pack(3, 1, 1))
    put(lanes, "b", pack(1, 2, 2))
    put(lanes, "a", pack(1, 3, 3))
    put(lanes, "b", pack(5, 0, 4))
    assert lanes.take(3, local=False).ids == [2, 3, 1]
    assert lanes.take(3, local=False).ids == [4]
    assert lanes.take(3, local=False).ids == []


def test_tombstones_skip_exactly_one_copy():
    lanes = Lanes("q", lambda name: False)
    key = pack(3, 100, 7)
    put(lanes, "n", key)
    lanes.lane("n", 3).kill(key)
    put(lanes, "n", key)  # the same job back in the same place: one live copy remains
    assert len(lanes) == 1
    assert lanes.take(5, local=False).ids == [7]
    assert lanes.lane("n", 3).peek() is None


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
            put(lanes, f"n{rng.randrange(300)}", key)
            live[next_id] = key
            next_id += 1
        elif roll < 0.7 and live:
            job_id = rng.choice(list(live))
            key = live.pop(job_id)
            next(lane for lane in lanes.all_lanes() if key in lane.heap).kill(key)
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
    put(lanes, "inproc", pack(1, 0, 1))
    put(lanes, "remote", pack(3, 0, 2))
    assert lanes.take(5, local=False).ids == [2]
    assert lanes.take(5, local=True).ids == [1]


def test_taking_from_thirty_thousand_names_looks_at_few_lanes():
    """O(max log lanes): a take of 1,000 over 30,000 names touches each lane's top
    once at most, not 30,000 lanes per job."""
    lanes = Lanes("q", lambda name: False)
    for i in range(30_000):
        lanes.add_unordered(lanes.lane(f"name-{i}", 3), pack(3, i, i + 1))
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
        count = rng.choice([1, 5, 200])
        priority, run_at = rng.randint(1, 5), rng.randint(0, 100)
        lane = lanes.lane(rng.choice(["a", "b", "c"]), priority)
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


# -- groups and aging ---------------------------------------------------------------

from queueapp.flow import Aging, GroupLimits, GroupPolicy  # noqa: E402


class Now:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def grouped(policy: GroupPolicy | None = None, aging: Aging | None = None) -> tuple[Lanes, Now]:
    now = Now()
    return Lanes("q", lambda name: False, policy, aging, now), now


def test_keys_take_turns_a_job_each_whatever_their_backlog():
    lanes, _ = grouped()
    for i in range(1, 101):
        put(lanes, "n", pack(3, 0, i), "A")
    for i in range(101, 104):
        put(lanes, "n", pack(3, 0, i), "B")
    order = lanes.take(8, local=False).ids
    assert order == [1, 101, 2, 102, 3, 103, 4, 5]


def test_priority_goes_before_turns_and_jobs_without_a_key_are_a_key_too():
    lanes, _ = grouped()
    put(lanes, "n", pack(3, 0, 1), "A")
    put(lanes, "n", pack(3, 0, 2), "A")
    put(lanes, "n", pack(1, 0, 3), "B")
    put(lanes, "n", pack(3, 0, 4))
    put(lanes, "n", pack(3, 0, 5))
    assert lanes.take(5, local=False).ids == [3, 1, 4, 2, 5]


def test_a_key_at_its_limit_waits_for_a_finish():
    lanes, _ = grouped(GroupPolicy(GroupLimits(concurrency=2)))
    for i in range(1, 6):
        put(lanes, "n", pack(3, 0, i), "A")
    put(lanes, "n", pack(3, 0, 6), "B")
    first = lanes.take(10, local=False)
    assert first.ids == [1, 6, 2]
    assert lanes.take(10, local=False).ids == []
    assert not lanes.claimed(first, set(first.ids))  # all started: A is still full
    assert lanes.ran("A", -1)  # one of A's finished: A reopens
    assert lanes.take(10, local=False).ids == [3]


def test_a_claim_that_found_its_job_gone_gives_the_room_back():
    lanes, _ = grouped(GroupPolicy(GroupLimits(concurrency=1)))
    put(lanes, "n", pack(3, 0, 1), "A")
    put(lanes, "n", pack(3, 0, 2), "A")
    taken = lanes.take(10, local=False)
    assert taken.ids == [1]
    assert lanes.claimed(taken, set())  # job 1 had been cancelled meanwhile
    assert lanes.take(10, local=False).ids == [2]


def test_a_put_back_claim_restores_order_and_room():
    lanes, _ = grouped(GroupPolicy(GroupLimits(concurrency=1)))
    put(lanes, "n", pack(3, 0, 1), "A")
    put(lanes, "n", pack(3, 0, 2), "A")
    lanes.take(10, local=False).put_back()
    assert lanes.take(10, local=False).ids == [1]


def test_rate_limit_counts_starts_in_a_sliding_window():
    lanes, now = grouped(GroupPolicy(GroupLimits(rate_max=2, rate_per_ms=1000)))
    reopen: list[int] = []
    lanes.closed_until = lambda line, at: reopen.append(at)
    for i in range(1, 7):
        put(lanes, "n", pack(3, 0, i), "A")
    assert lanes.take(10, local=False).ids == [1, 2]
    assert reopen == [now.ms + 1000]
    now.ms += 999
    assert not lanes.reopen(lanes.line("A"))
    assert lanes.take(10, local=False).ids == []
    now.ms += 1
    assert lanes.reopen(lanes.line("A"))
    assert lanes.take(10, local=False).ids == [3, 4]


def test_a_paused_key_waits_and_the_others_go_on():
    lanes, now = grouped(GroupPolicy(paused={"A": 1_000_500}))
    put(lanes, "n", pack(3, 0, 1), "A")
    put(lanes, "n", pack(3, 0, 2), "B")
    assert lanes.take(10, local=False).ids == [2]
    now.ms = 1_000_500
    assert lanes.reopen(lanes.line("A"))
    assert lanes.take(10, local=False).ids == [1]


def test_a_key_limit_of_its_own_and_a_new_policy():
    policy = GroupPolicy(GroupLimits(concurrency=1), overrides={"big": GroupLimits(concurrency=3)})
    lanes, _ = grouped(policy)
    for i in range(1, 5):
        put(lanes, "n", pack(3, 0, i), "big")
        put(lanes, "n", pack(3, 0, 10 + i), "small")
    assert sorted(lanes.take(10, local=False).ids) == [1, 2, 3, 11]
    lanes.apply(GroupPolicy())  # no limits now
    assert sorted(lanes.take(10, local=False).ids) == [4, 12, 13, 14]


def test_take_named_respects_limits_and_turns():
    lanes, _ = grouped(GroupPolicy(GroupLimits(concurrency=2)))
    for i in range(1, 5):
        put(lanes, "x", pack(3, 0, i), "A")
    put(lanes, "x", pack(3, 0, 5), "B")
    put(lanes, "y", pack(1, 0, 6), "B")
    assert lanes.take_named(["x"], 10).ids == [1, 5, 2]
    assert lanes.take(10, local=False).ids == [6]  # A is full; B has room for one more
    assert lanes.line("B").gate.busy == 2


def test_aging_lifts_a_low_job_over_newer_high_ones_up_to_its_bound():
    lanes, now = grouped(aging=Aging(every_ms=60_000, max_levels=2))
    start = now.ms
    put(lanes, "n", pack(4, start, 1))  # LOW
    put(lanes, "n", pack(1, start + 1, 2))  # CRITICAL, due just after
    now.ms = start + 120_000  # LOW has aged two levels: HIGH
    put(lanes, "n", pack(2, now.ms, 3))  # HIGH, due now
    put(lanes, "n", pack(2, start + 60_000, 4))  # HIGH, due a minute ago: aging stops at HIGH
    lanes.rebuild()
    assert lanes.take(10, local=False).ids == [2, 1, 4, 3]


def test_aging_with_a_bound_never_passes_critical():
    lanes, now = grouped(aging=Aging(every_ms=1_000, max_levels=2))
    put(lanes, "n", pack(5, now.ms, 1))
    now.ms += 1_000_000  # aged far past its bound: BACKGROUND counts as NORMAL at most
    put(lanes, "n", pack(2, now.ms, 2))
    put(lanes, "n", pack(3, now.ms, 3))
    assert lanes.take(10, local=False).ids == [2, 1, 3]


def test_random_groups_never_exceed_their_limit_and_every_job_is_taken_once():
    rng = random.Random(3)
    lanes, now = grouped(GroupPolicy(GroupLimits(concurrency=2)))
    keys = ["k0", "k1", "k2", None]
    running: dict[int, str | None] = {}
    pending: set[int] = set()
    done: list[int] = []
    for i in range(1, 2001):
        group = rng.choice(keys)
        put(lanes, rng.choice(["a", "b"]), pack(rng.randint(1, 5), rng.randint(0, 9), i), group)
        pending.add(i)
    group_of = {unpack_id(k): lane.group for lane in lanes.all_lanes() for k in lane.heap}
    while pending or running:
        taken = lanes.take(rng.randint(1, 7), local=False)
        lanes.claimed(taken, set(taken.ids))
        for job_id in taken.ids:
            running[job_id] = group_of[job_id]
            pending.discard(job_id)
        by_key: dict[str | None, int] = {}
        for g in running.values():
            by_key[g] = by_key.get(g, 0) + 1
        assert all(n <= 2 for g, n in by_key.items() if g is not None)
        for job_id in rng.sample(sorted(running), k=min(len(running), rng.randint(0, 4))):
            lanes.ran(running.pop(job_id), -1)
            done.append(job_id)
        now.ms += 1
    assert sorted(done) == list(range(1, 2001))
