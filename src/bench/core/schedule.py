"""Session-parallel mini-batches, precomputed once and kept on the device.

GRU4Rec trains B sessions side by side: slot j feeds item t of its session and
targets item t+1; when a slot's session ends it takes the next unused session and its
hidden state is zeroed before that session's first step (and only then). When no
sessions are left, finished slots are dropped and the batch shrinks; the tail is
kept. The order is fully determined by the data, so the whole epoch's plan is built
once with numpy and uploaded: training then slices device tensors, with no per-step
host-to-device copies of indices and no host sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Schedule:
    """One epoch of session-parallel steps as flat arrays.

    Step s uses entries [step_offsets[s], step_offsets[s+1]) of `inputs`, `targets`
    and `reset`. Before step s, the hidden rows listed in `keep[s]` (if present) are
    the ones that survive a shrink, in order; then rows with `reset` set are zeroed.
    """

    inputs: np.ndarray
    targets: np.ndarray
    reset: np.ndarray  # bool: slot starts a new session at this step
    step_offsets: np.ndarray  # int64, n_steps + 1
    keep: dict[int, np.ndarray]  # step -> surviving slot rows (only where the batch shrinks)
    session_of_event: np.ndarray  # index of the session each entry belongs to
    initial_width: int  # hidden rows before step 0 (min(batch_size, n_sessions))

    @property
    def n_steps(self) -> int:
        return len(self.step_offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.inputs)


def build_schedule(
    offsets: np.ndarray, items: np.ndarray, batch_size: int, min_active: int = 1
) -> Schedule:
    """Plan the official GRU4Rec iteration order (SessionDataIterator) for one epoch.

    `min_active=2` reproduces the official stop when only in-batch negatives exist
    (n_sample=0) and fewer than two sessions remain.
    """
    n_sessions = len(offsets) - 1
    if n_sessions == 0:
        raise ValueError("no sessions to schedule")
    width = min(batch_size, n_sessions)
    slot_sess = np.arange(width)  # session index held by each active slot
    start = offsets[slot_sess].copy()
    end = offsets[slot_sess + 1].copy()
    next_session = width
    fresh = np.ones(width, dtype=bool)  # slot needs its hidden state zeroed at its next step
    steps = _Steps()
    keep: dict[int, np.ndarray] = {}
    while True:
        minlen = int((end - start).min())
        if minlen > 1:
            # minlen-1 steps in which no slot finishes: emit them as one block.
            steps.add_block(items, start, fresh, slot_sess, minlen - 1)
            start = start + minlen - 1
            fresh = np.zeros(len(start), dtype=bool)
        finished = (end - start) <= 1
        n_fin = int(finished.sum())
        n_new = min(n_fin, n_sessions - next_session)
        fin_idx = np.flatnonzero(finished)
        refill, drop = fin_idx[:n_new], fin_idx[n_new:]
        new_sess = np.arange(next_session, next_session + n_new)
        next_session += n_new
        slot_sess[refill] = new_sess
        start[refill] = offsets[new_sess]
        end[refill] = offsets[new_sess + 1]
        fresh[refill] = True
        if len(drop):
            alive = np.ones(len(start), dtype=bool)
            alive[drop] = False
            if alive.sum() < min_active:
                break
            keep[steps.n_steps] = np.flatnonzero(alive)
            slot_sess, start, end, fresh = slot_sess[alive], start[alive], end[alive], fresh[alive]
    return steps.schedule(keep, width)


class _Steps:
    """The steps planned so far, emitted in blocks of steps in which no slot finishes."""

    def __init__(self):
        self.ins, self.outs, self.resets, self.sess_of, self.sizes = [], [], [], [], []
        self.n_steps = 0

    def add_block(self, items, start, fresh, slot_sess, n: int) -> None:
        k = np.arange(n)[:, None]
        self.ins.append((items[start + k]).ravel())
        self.outs.append((items[start + k + 1]).ravel())
        rs = np.zeros((n, len(start)), dtype=bool)
        rs[0] = fresh
        self.resets.append(rs.ravel())
        self.sess_of.append(np.tile(slot_sess, n))
        self.sizes.append(np.full(n, len(start), dtype=np.int64))
        self.n_steps += n

    def schedule(self, keep: dict[int, np.ndarray], width: int) -> Schedule:
        def cat(xs, dt):
            return np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt)

        return Schedule(
            inputs=cat(self.ins, np.int64),
            targets=cat(self.outs, np.int64),
            reset=cat(self.resets, bool),
            step_offsets=np.r_[0, np.cumsum(cat(self.sizes, np.int64))].astype(np.int64),
            keep={s: v for s, v in keep.items() if s < self.n_steps},
            session_of_event=cat(self.sess_of, np.int64),
            initial_width=width,
        )


class DeviceSchedule:
    """The schedule's arrays as device tensors plus host-side step boundaries.

    Slicing a device tensor with host integers needs no synchronisation, so a step
    costs no host-to-device traffic.
    """

    def __init__(self, schedule: Schedule, device: torch.device):
        self.schedule = schedule
        self.device = device
        self.inputs = torch.as_tensor(schedule.inputs, device=device)
        self.targets = torch.as_tensor(schedule.targets, device=device)
        # 1.0 keeps the hidden row, 0.0 zeroes it (multiplication avoids a masked write).
        self.carry = torch.as_tensor(~schedule.reset, device=device, dtype=torch.float32)[:, None]
        self.bounds = schedule.step_offsets.tolist()
        self.keep = {s: torch.as_tensor(v, device=device) for s, v in schedule.keep.items()}
        nonempty = schedule.step_offsets[:-1] < schedule.step_offsets[1:]
        self.needs_reset = np.zeros(self.n_steps, dtype=bool)
        if nonempty.any():
            self.needs_reset[nonempty] = np.logical_or.reduceat(
                schedule.reset, schedule.step_offsets[:-1][nonempty]
            )
        self.needs_reset = self.needs_reset.tolist()
        self.initial_width = schedule.initial_width

    @property
    def n_steps(self) -> int:
        return len(self.bounds) - 1

    def step(self, s: int):
        """(inputs, targets, carry-or-None, keep-or-None) of step s, all on the device."""
        a, b = self.bounds[s], self.bounds[s + 1]
        carry = self.carry[a:b] if self.needs_reset[s] else None
        return self.inputs[a:b], self.targets[a:b], carry, self.keep.get(s)
