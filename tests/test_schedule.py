"""Session-parallel schedule invariants and equality with a step-by-step simulation."""

import numpy as np
import pytest

from bench.core.schedule import build_schedule
from tests.conftest import make_sessions


def simulate(offsets, items, batch, min_active=1):
    """Independent slot-by-slot model of the official iterator: after every step, each
    slot whose session has no next event takes the next unused session (in slot order);
    with none left it is removed. Returns per step a list of (slot session, in, out, reset)."""
    n = len(offsets) - 1
    slots = []  # [session, position, fresh]
    nxt = 0
    for _ in range(min(batch, n)):
        slots.append([nxt, 0, True])
        nxt += 1
    steps = []

    def refill():
        nonlocal nxt, slots
        changed = True
        while changed:
            changed = False
            kept = []
            for sl in slots:
                s, p, _fresh = sl
                if offsets[s] + p + 1 >= offsets[s + 1]:  # no next event: session done
                    if nxt < n:
                        kept.append([nxt, 0, True])
                        nxt += 1
                        changed = True
                    continue
                kept.append(sl)
            slots = kept

    refill()
    while len(slots) >= min_active and slots:
        step = []
        for sl in slots:
            s, p, fresh = sl
            a = offsets[s] + p
            step.append((s, items[a], items[a + 1], fresh))
            sl[1] += 1
            sl[2] = False
        steps.append(step)
        refill()
    return steps


@pytest.mark.parametrize("batch", [1, 3, 4, 7])
def test_schedule_matches_simulation(batch):
    sess = make_sessions([2, 5, 1, 3, 2, 8, 2, 4, 3, 1, 2, 6], n_items=50, seed=batch)
    sch = build_schedule(sess.offsets, sess.items, batch)
    ref = simulate(sess.offsets, sess.items, batch)
    assert sch.n_steps == len(ref)
    for s, step in enumerate(ref):
        a, b = sch.step_offsets[s], sch.step_offsets[s + 1]
        assert sch.session_of_event[a:b].tolist() == [r[0] for r in step]
        assert sch.inputs[a:b].tolist() == [r[1] for r in step]
        assert sch.targets[a:b].tolist() == [r[2] for r in step]
        assert sch.reset[a:b].tolist() == [r[3] for r in step]


def test_every_event_predicted_once_and_tail_kept():
    lengths = np.random.default_rng(3).integers(1, 12, size=200)
    sess = make_sessions(lengths, n_items=100, seed=3)
    sch = build_schedule(sess.offsets, sess.items, 16)
    # Each (session, target position) pair exactly once; count = events - sessions.
    assert sch.n_events == int((lengths - 1).clip(min=0).sum())
    per_session = np.bincount(sch.session_of_event, minlength=len(lengths))
    assert (per_session == (lengths - 1).clip(min=0)).all()  # nothing of the tail dropped
    # The batch only ever shrinks at the end, never grows back.
    widths = np.diff(sch.step_offsets)
    assert widths.max() == 16 and (np.diff(widths) <= 0).all() and widths[-1] >= 1


def test_reset_only_on_first_step_of_each_session():
    lengths = np.random.default_rng(4).integers(2, 9, size=60)
    sess = make_sessions(lengths, n_items=30, seed=4)
    sch = build_schedule(sess.offsets, sess.items, 5)
    seen = set()
    for a, b in zip(sch.step_offsets[:-1], sch.step_offsets[1:]):
        for e in range(a, b):
            s = sch.session_of_event[e]
            assert sch.reset[e] == (s not in seen)  # first step of its session, and only then
            seen.add(s)


def test_shrink_keeps_the_right_rows():
    sess = make_sessions([3, 2, 6, 2], n_items=20)
    sch = build_schedule(sess.offsets, sess.items, 4)
    sessions_at = [
        sch.session_of_event[a:b].tolist()
        for a, b in zip(sch.step_offsets[:-1], sch.step_offsets[1:])
    ]
    for s, rows in sch.keep.items():
        before, after = sessions_at[s - 1], sessions_at[s]
        assert [before[r] for r in rows] == after


def test_in_batch_only_stops_below_two_sessions():
    sess = make_sessions([2, 2, 9], n_items=20)
    full = build_schedule(sess.offsets, sess.items, 3, min_active=1)
    stop = build_schedule(sess.offsets, sess.items, 3, min_active=2)
    assert np.diff(stop.step_offsets).min() >= 2
    assert stop.n_steps < full.n_steps
    assert stop.n_steps == len(simulate(sess.offsets, sess.items, 3, min_active=2))


def test_deterministic():
    sess = make_sessions(np.full(40, 4), n_items=30)
    a = build_schedule(sess.offsets, sess.items, 8)
    b = build_schedule(sess.offsets, sess.items, 8)
    assert (a.inputs == b.inputs).all() and (a.reset == b.reset).all()
