"""TFLM's activation memory plan, computed from the flatbuffer alone.

Reproduces ``AllocationInfoBuilder`` (tensor lifetimes over the operator order) and
``GreedyMemoryPlanner`` (largest buffer first, first gap that fits among buffers alive at
the same time) of TensorFlow Lite Micro, so the non-persistent part of the arena — the
same on a 64-bit host and a 32-bit MCU — is known without running anything.  Also gives
the lower bound no planner can beat: the largest sum of tensors alive at one time.

A model carrying an offline plan (``OfflineMemoryAllocation`` metadata, see
:mod:`.offline_plan`) is planned as TFLM does it: the tensors with an offset keep it,
and the greedy planner fits the others and the kernels' scratch buffers around them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model_info import ModelInfo

ALIGNMENT = 16  # MicroArenaBufferAlignment()


@dataclass(frozen=True)
class Buffer:
    tensor: int | None  # None for a kernel scratch buffer
    name: str
    size: int  # aligned bytes
    first: int  # allocation scope: 0 = subgraph inputs, op k runs at scope k + 1
    last: int
    offset: int
    offline: bool = False  # the offset comes from the model's offline plan


@dataclass
class MemoryPlan:
    buffers: list[Buffer]
    planned_bytes: int  # what TFLM's planner needs (greedy, around any offline offsets)
    lower_bound: int  # max over time of the live buffers' total
    peak_scope: int
    scopes: int
    offline_planned: bool = False  # the model's offline plan placed its tensors

    def live_at(self, scope: int) -> list[Buffer]:
        """The buffers alive while scope ``scope`` runs."""
        return [b for b in self.buffers if b.first <= scope <= b.last]

    def to_dict(self) -> dict:
        peak_op = self.peak_scope - 1 if self.peak_scope > 0 else None
        return {"planned_bytes": self.planned_bytes, "lower_bound_bytes": self.lower_bound,
                "offline_planned": self.offline_planned, "peak_op_index": peak_op,
                "live_at_peak": [{"tensor": b.tensor, "name": b.name, "bytes": b.size}
                                 for b in self.live_at(self.peak_scope)],
                "buffers": [vars(b) for b in self.buffers]}


def align(n: int, alignment: int = ALIGNMENT) -> int:
    """``n`` rounded up to a multiple of ``alignment``."""
    return -(-n // alignment) * alignment


def plan(info: ModelInfo, scratch: dict[int, list[int]] | None = None, *,
         offline: bool = True) -> MemoryPlan:
    """Plan the main subgraph; ``scratch`` maps op index -> scratch buffer sizes that its
    kernel requests (none for the reference kernels of common int8 ops).  ``offline``
    False ignores the model's offline plan (TFLM's greedy plan alone)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def created(t, scope):
        first[t] = scope
        last[t] = scope

    for t in info.input_indices + info.output_indices:
        created(t, 0)
    scratch_entries = []
    for k, op in enumerate(info.operators):
        scope = k + 1
        for t in op.outputs:
            if t >= 0:
                created(t, scope)
        for t in op.inputs:
            if t >= 0:
                last[t] = scope
        for t in op.outputs:
            if t >= 0:
                last[t] = scope
        for size in (scratch or {}).get(k, []):
            scratch_entries.append((f"scratch of op {k} ({op.name})", size, scope))
    scopes = len(info.operators)
    for t in info.output_indices:
        last[t] = scopes

    requests = []  # (tensor, name, size, first, last) in TFLM's order: tensors, scratch
    for t in info.tensors:
        if t.is_constant or t.is_variable or t.index not in first or t.nbytes == 0:
            continue
        requests.append((t.index, t.name, align(t.nbytes), first[t.index], last[t.index]))
    for name, size, scope in scratch_entries:
        requests.append((None, name, align(size), scope, scope))
    given = info.offline_plan if offline else None
    fixed = [given[r[0]] if given is not None and r[0] is not None and given[r[0]] >= 0
             else None for r in requests]
    offsets = greedy_offsets([(r[2], r[3], r[4]) for r in requests], fixed)
    buffers = [Buffer(*r[:2], size=r[2], first=r[3], last=r[4], offset=o, offline=f is not None)
               for r, o, f in zip(requests, offsets, fixed)]
    planned = max((b.offset + b.size for b in buffers), default=0)
    live = [sum(b.size for b in buffers if b.first <= s <= b.last) for s in range(scopes + 1)]
    peak = max(range(len(live)), key=live.__getitem__) if live else 0
    return MemoryPlan(buffers, planned, max(live, default=0), peak, scopes,
                      any(f is not None for f in fixed))


def greedy_offsets(reqs: list[tuple[int, int, int]],
                   fixed: list[int | None] | None = None) -> list[int]:
    """GreedyMemoryPlanner::CalculateOffsetsIfNeeded: ``reqs`` are (size, first, last) in
    the order TFLM adds them; ``fixed`` holds an offline offset or None per request.

    Order: the offline buffers first, as added; then the others listed from the last to
    the first and bubble-sorted by size, descending and stable, so equal sizes go highest
    index first.  An offline buffer keeps its offset; each other buffer goes into the
    first gap, in offset order, between buffers whose lifetimes overlap its own.
    """
    if not reqs:
        return []
    fixed = fixed or [None] * len(reqs)
    offline = [i for i in range(len(reqs)) if fixed[i] is not None]
    online = sorted((i for i in reversed(range(len(reqs))) if fixed[i] is None),
                    key=lambda i: -reqs[i][0])
    return place_lowest(reqs, offline + online, fixed)


def place_lowest(reqs: list[tuple[int, int, int]], order: list[int],
                 fixed: list[int | None] | None = None) -> list[int]:
    """Place the buffers in ``order``, each at its ``fixed`` offset or else at the lowest
    offset where it overlaps no placed buffer alive at the same time (TFLM's gap search)."""
    offsets = [0] * len(reqs)
    placed: list[int] = []  # request ids sorted by offset (insertion-stable)
    for i in order:
        size, first, last = reqs[i]
        candidate = 0
        if fixed is not None and fixed[i] is not None:
            candidate = fixed[i]
        else:
            for j in placed:
                s_j, f_j, l_j = reqs[j]
                if f_j > last or first > l_j:
                    continue  # not alive at the same time
                if offsets[j] - candidate >= size:
                    break
                candidate = max(candidate, offsets[j] + s_j)
        offsets[i] = candidate
        pos = len(placed)
        for n, j in enumerate(placed):
            if offsets[j] > candidate:
                pos = n
                break
        placed.insert(pos, i)
    return offsets
