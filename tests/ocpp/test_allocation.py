"""The pure allocation function: limits, minimum, fairness, priorities, phases."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from sitegate.ocpp_server.allocation import Demand, allocate

THREE = frozenset({1, 2, 3})
MIN = D(6)


def per_phase_sum(result: dict, demands: list[Demand], phase: int) -> D:
    return sum((result[d.key] for d in demands if phase in d.phases), D(0))


def test_even_split_exact() -> None:
    demands = [Demand(i, THREE, D(32), order=i) for i in range(3)]
    # 40 A spare on each phase, three sessions: 13.333.. floored to 13.3 each.
    assert allocate({1: D(40), 2: D(40), 3: D(40)}, demands, MIN) == {0: D("13.3"),
                                                                     1: D("13.3"),
                                                                     2: D("13.3")}


def test_max_current_caps_and_rest_goes_to_others() -> None:
    demands = [Demand("small", THREE, D(10)), Demand("big", THREE, D(32), order=1)]
    assert allocate({1: D(40), 2: D(40), 3: D(40)}, demands, MIN) == {"small": D(10),
                                                                     "big": D(30)}


def test_not_enough_for_everyone_pauses_the_latest() -> None:
    demands = [Demand(i, THREE, D(32), order=i) for i in range(4)]
    # 20 A: three sessions at 6 A fit (18 A), the fourth (latest) is paused.
    r = allocate({1: D(20), 2: D(20), 3: D(20)}, demands, MIN)
    assert r[3] == 0
    assert [r[0], r[1], r[2]] == [D("6.6"), D("6.6"), D("6.6")]


def test_priority_class_first() -> None:
    demands = [Demand("low", THREE, D(32), priority=0, order=0),
               Demand("high", THREE, D(32), priority=1, order=1)]
    assert allocate({1: D(30), 2: D(30), 3: D(30)}, demands, MIN) == {"low": D(6),
                                                                     "high": D(24)}
    # Only room for one: the high class wins although it arrived later.
    assert allocate({1: D(8), 2: D(8), 3: D(8)}, demands, MIN) == {"low": D(0),
                                                                  "high": D(8)}


def test_single_phase_chargers_use_their_own_phase() -> None:
    demands = [Demand("l1", frozenset({1}), D(32)), Demand("l2", frozenset({2}), D(32)),
               Demand("three", THREE, D(32))]
    r = allocate({1: D(20), 2: D(40), 3: D(40)}, demands, MIN)
    # L1 is shared by l1 and three: 10 A each; three is then stuck at 10 A by L1, so l2
    # takes the rest of L2 (30 A capped at 32 -> 30).
    assert r == {"l1": D(10), "three": D(10), "l2": D(30)}


def test_negative_headroom_pauses_everybody() -> None:
    demands = [Demand(i, THREE, D(32), order=i) for i in range(2)]
    assert allocate({1: D(-5), 2: D(50), 3: D(50)}, demands, MIN) == {0: D(0), 1: D(0)}


def test_charger_that_cannot_reach_minimum_is_paused() -> None:
    assert allocate({1: D(50), 2: D(50), 3: D(50)}, [Demand("x", THREE, D(5))], MIN) == {
        "x": D(0)}


def test_ten_chargers_behind_63_a_with_varying_base_load() -> None:
    """The acceptance scenario: 10 chargers, 63 A connection, base load varying over a day."""
    demands = [Demand(f"CP{i}", THREE, D(16) if i % 3 else D(32), priority=1 if i < 2 else 0,
                      order=i) for i in range(10)]
    for base in [D(0), D("5.5"), D(12), D(20), D("33.3"), D(40), D(50), D(57), D(60), D(63)]:
        room = D(63) - base
        r = allocate({1: room, 2: room, 3: room}, demands, MIN)
        assert sum(r.values()) <= room
        running = [k for k, v in r.items() if v > 0]
        assert all(r[k] >= MIN for k in running)
        assert len(running) == min(10, int(room // MIN))
        # Priority sessions are never paused while a normal one runs.
        if any(r[f"CP{i}"] > 0 for i in range(2, 10)):
            assert r["CP0"] > 0 and r["CP1"] > 0


@settings(max_examples=300, deadline=None)
@given(
    room=st.tuples(*[st.decimals(min_value=-10, max_value=120, places=1)] * 3),
    specs=st.lists(st.tuples(
        st.sampled_from([frozenset({1}), frozenset({2}), frozenset({3}), THREE,
                         frozenset({1, 2})]),
        st.sampled_from([D(6), D(10), D(16), D(32), D("7.5")]),
        st.integers(0, 2)), min_size=0, max_size=12),
)
def test_properties(room: tuple[D, D, D], specs: list[tuple[frozenset[int], D, int]]) -> None:
    demands = [Demand(i, ph, mx, prio, i) for i, (ph, mx, prio) in enumerate(specs)]
    headroom = {1: room[0], 2: room[1], 3: room[2]}
    r = allocate(headroom, demands, MIN)
    assert set(r) == {d.key for d in demands}
    for p in (1, 2, 3):
        assert per_phase_sum(r, demands, p) <= max(headroom[p], D(0))
    for d in demands:
        assert r[d.key] == 0 or MIN <= r[d.key] <= d.max_current
        assert r[d.key] == r[d.key].quantize(D("0.1"))
    # Fairness: two running sessions of one class on the same phases differ by at most
    # one rounding step unless the smaller one is at its own maximum.
    for a in demands:
        for b in demands:
            if (a.priority == b.priority and a.phases == b.phases and r[a.key] > 0
                    and r[b.key] > 0 and r[a.key] < a.max_current):
                assert r[b.key] - r[a.key] <= D("0.1")
    # Nobody is paused while a session of the same or lower class with the same phases
    # runs and could have made room (admission goes by class, then arrival).
    for a in demands:
        if r[a.key] == 0 and a.max_current >= MIN:
            later = [b for b in demands if r[b.key] > 0 and b.phases == a.phases
                     and (b.priority, -b.order) < (a.priority, -a.order)]
            assert not later
