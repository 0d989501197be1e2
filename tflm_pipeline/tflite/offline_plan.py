"""An offline memory plan: a tighter placement of the activation tensors than TFLM's
greedy planner, written into the model where TFLM reads it at start-up.

TFLM (``AllocationInfoBuilder::GetOfflinePlannedOffsets``, every release tflmp targets)
takes per-tensor arena offsets from the model's ``OfflineMemoryAllocation`` metadata: an
int32 buffer ``[version, subgraphs, n, offset of tensor 0 .. n-1]`` with -1 for a tensor
it should plan itself.  It keeps those offsets and lets its greedy planner fit the other
buffers around them — the kernels' scratch buffers always, since only Prepare knows
them.  So a better plan costs nothing at run time and shrinks the arena by what it saves.
Offline buffers go into the greedy planner's list first, in tensor order; the others
follow, largest first, each in the lowest gap free while it lives
(``GreedyMemoryPlanner::CalculateOffsetsIfNeeded``, identical in tflite-micro 90b983c of
2026 and in Chirale_TensorFlowLite 2.0.0, TFLM of 2023-01; esp-tflite-micro and the
2023 Arduino examples sit between the two).  Variable tensors stay -1 (with an offset
TFLM would move them from the persistent tail into the overlaid head).  TFLM's
``LinearMemoryPlanner`` (its preserve-all-tensors debugging mode) refuses offline
offsets; :func:`strip` removes a plan for it.

The search (no TensorFlow): every placement is "each buffer, in some order, at the
lowest offset free while it lives"; any packing is one of these for some order, so the
search is over orders.  A handful of orderings (by size, lifetime, area, first use,
conflicts, the op with the most live bytes first), then a seeded local search on the
best, then, for small graphs, an exhaustive branch and bound.  Scratch buffers always
come last in TFLM's own order, so the figure each order gives is the one TFLM will plan.
It stops early at the lower bound (the largest sum of buffers alive at one op).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from typing import Sequence

import flatbuffers
import numpy as np

from . import memory_plan
from .model_info import OFFLINE_PLAN_METADATA, ModelInfo, read_model

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

FORMAT_VERSION = 1  # TFLM reads only the offsets; version and subgraphs are informative
BUFFER_ALIGNMENT = 16  # every buffer's data, as TensorFlow 2.21's converter aligns it
EXACT_MAX_BUFFERS = 9  # exhaustive search over orders up to this many tensor buffers
EXACT_MAX_NODES = 200_000
LOCAL_SEARCH_STEPS = 20_000  # moves tried at most
LOCAL_SEARCH_WORK = 10_000_000  # neighbour visits at most (seconds): big graphs try fewer moves


@dataclass(frozen=True)
class OfflinePlan:
    """A plan for one model, with TFLM's figures with and without it."""

    offsets: tuple[int, ...]  # per tensor: arena offset, or -1 (TFLM plans it)
    greedy_bytes: int  # TFLM's greedy plan
    planned_bytes: int  # TFLM's plan with these offsets (scratch buffers fitted around)
    lower_bound: int  # no placement of this op order needs less
    method: str  # the search that found it
    optimal: bool  # proven: it meets the lower bound or the exact search finished
    # for each further scratch scenario (e.g. another TFLM release's kernels):
    # (greedy bytes, planned bytes)
    scenarios: tuple[tuple[int, int], ...] = ()

    @property
    def saved_bytes(self) -> int:
        return self.greedy_bytes - self.planned_bytes

    @property
    def worthwhile(self) -> bool:
        """Saves bytes, and costs none under any scratch scenario."""
        return self.saved_bytes > 0 and all(p <= g for g, p in self.scenarios)

    @property
    def gap(self) -> float:
        """Planned bytes above the lower bound, as a fraction of it."""
        return self.planned_bytes / self.lower_bound - 1 if self.lower_bound else 0.0

    def to_dict(self) -> dict:
        return {"greedy_bytes": self.greedy_bytes, "planned_bytes": self.planned_bytes,
                "lower_bound_bytes": self.lower_bound, "saved_bytes": self.saved_bytes,
                "gap_to_lower_bound": round(self.gap, 4), "method": self.method,
                "optimal": self.optimal,
                "scenarios": [{"greedy_bytes": g, "planned_bytes": p}
                              for g, p in self.scenarios]}


def compute(info: ModelInfo, scratch: dict[int, list[int]] | None = None,
            more_scratch: Sequence[dict[int, list[int]]] = (), *, seed: int = 0) -> OfflinePlan:
    """The best placement found for ``info``'s activation tensors.

    ``scratch`` is the op index -> scratch sizes of the kernels the plan is tuned for
    (none: TFLM's reference kernels); ``more_scratch`` are other kernels' scratch the
    plan is checked against (see :attr:`OfflinePlan.worthwhile`).  Any plan the model
    already carries is ignored.
    """
    if info.subgraphs != 1:
        raise ValueError("offline plans are made for single-subgraph models")
    info = dataclasses.replace(info, offline_plan=None)
    greedy = memory_plan.plan(info, scratch)
    reqs = [(b.size, b.first, b.last) for b in greedy.buffers]
    tensors = [i for i, b in enumerate(greedy.buffers) if b.tensor is not None]
    found = place(reqs, tensors, seed=seed)
    offsets = found.offsets
    plan_offsets = [-1] * len(info.tensors)
    for i in tensors:
        plan_offsets[greedy.buffers[i].tensor] = offsets[i]
    plan_offsets = tuple(plan_offsets)
    planned = dataclasses.replace(info, offline_plan=plan_offsets)
    result = memory_plan.plan(planned, scratch).planned_bytes
    assert result == found.peak, (result, found.peak)  # the search models TFLM exactly
    scenarios = tuple((memory_plan.plan(info, s).planned_bytes,
                       memory_plan.plan(planned, s).planned_bytes) for s in more_scratch)
    return OfflinePlan(plan_offsets, greedy.planned_bytes, result, greedy.lower_bound,
                       found.method, found.optimal, scenarios)


@dataclass(frozen=True)
class Placement:
    offsets: list[int]  # per request
    peak: int  # bytes from offset 0 to the end of the highest buffer
    lower_bound: int  # the most bytes alive at one scope
    method: str  # the search that found it
    optimal: bool  # proven: meets the lower bound or the exact search finished


def place(reqs: list[tuple[int, int, int]], movable: list[int] | None = None, *,
          seed: int = 0) -> Placement:
    """The best placement found of the (size, first, last) requests ``reqs``.

    ``movable`` are the requests the search may order (default all); the others (a
    kernel's scratch buffers, which TFLM plans itself) are placed after them in TFLM's
    greedy order: listed last to first, size descending.
    """
    movable = list(range(len(reqs))) if movable is None else list(movable)
    rest = set(range(len(reqs))) - set(movable)
    tail = sorted((i for i in reversed(range(len(reqs))) if i in rest),
                  key=lambda i: -reqs[i][0])
    scopes = max((r[2] for r in reqs), default=-1) + 1
    bound = max((sum(r[0] for r in reqs if r[1] <= s <= r[2]) for s in range(scopes)),
                default=0)
    search = _Search(reqs, tail, bound)
    best_order, method = _heuristics(search, movable, scopes)
    if search.best > search.bound:
        best_order = _local_search(search, best_order, seed)
        method = search.best_method
    optimal = search.best <= search.bound
    if not optimal and len(movable) <= EXACT_MAX_BUFFERS:
        order, finished = _branch_and_bound(search, movable)
        if order is not None:
            best_order, method = order, "branch and bound"
        optimal = finished
    return Placement(search.offsets(best_order), search.best, bound, method, optimal)


class _Search:
    """Evaluates orders of the tensor buffers (the scratch buffers follow, TFLM's way)."""

    def __init__(self, reqs, tail, bound):
        self.reqs, self.tail, self.bound = reqs, tail, bound
        self.best = None
        self.best_method = None
        # who lives at the same time as whom: only those can collide
        self.neighbours = [[j for j, (_, f, l) in enumerate(reqs)
                            if j != i and f <= last and first <= l]
                           for i, (_, first, last) in enumerate(reqs)]

    def offsets(self, order):
        return memory_plan.place_lowest(self.reqs, list(order) + self.tail)

    def peak(self, order) -> int:
        """The peak :meth:`offsets` gives, computed faster: each buffer goes below the
        first gap among its placed neighbours (ties in offset do not change the gap)."""
        reqs, offsets, top = self.reqs, {}, 0
        for i in itertools.chain(order, self.tail):
            size = reqs[i][0]
            candidate = 0
            for start, end in sorted((offsets[j], offsets[j] + reqs[j][0])
                                     for j in self.neighbours[i] if j in offsets):
                if start - candidate >= size:
                    break
                candidate = max(candidate, end)
            offsets[i] = candidate
            top = max(top, candidate + size)
        return top

    def offer(self, order, method) -> bool:
        peak = self.peak(order)
        if self.best is None or peak < self.best:
            self.best, self.best_method = peak, method
            return True
        return False


def _heuristics(search: _Search, tensors: list[int], n_scopes: int) -> tuple[list[int], str]:
    reqs = search.reqs
    size = {i: reqs[i][0] for i in tensors}
    span = {i: reqs[i][2] - reqs[i][1] + 1 for i in tensors}

    def overlaps(i, j):
        return reqs[i][1] <= reqs[j][2] and reqs[j][1] <= reqs[i][2]

    conflict = {i: sum(size[j] for j in tensors if j != i and overlaps(i, j)) for i in tensors}
    # greedy by breadth: the ops with the most live bytes first, their buffers largest first
    scopes = range(n_scopes)
    live = {s: [i for i in tensors if reqs[i][1] <= s <= reqs[i][2]] for s in scopes}
    breadth = []
    for s in sorted(scopes, key=lambda s: -sum(size[i] for i in live[s])):
        breadth += [i for i in sorted(live[s], key=lambda i: -size[i]) if i not in breadth]
    breadth += [i for i in tensors if i not in breadth]
    orders = {
        "TFLM greedy order": sorted(reversed(tensors), key=lambda i: -size[i]),
        "size, then lifetime": sorted(tensors, key=lambda i: (-size[i], -span[i])),
        "lifetime, then size": sorted(tensors, key=lambda i: (-span[i], -size[i])),
        "area": sorted(tensors, key=lambda i: (-size[i] * span[i], -size[i])),
        "first use": sorted(tensors, key=lambda i: (reqs[i][1], -size[i])),
        "conflicts": sorted(tensors, key=lambda i: (-conflict[i] - size[i], -size[i])),
        "greedy by breadth": breadth,
    }
    best = None
    for name, order in orders.items():
        if search.offer(order, name):
            best = (order, name)
        if search.best <= search.bound:
            break
    return best


def _local_search(search: _Search, order: list[int], seed: int) -> list[int]:
    """Move or swap buffers in the order, keeping changes that do not make it worse."""
    rng = random.Random(seed)
    current, current_peak = list(order), search.best
    n = len(current)
    if n < 2:
        return current
    # a budget in work, not time, so the same model always gets the same plan
    cost = len(search.reqs) + sum(len(x) for x in search.neighbours)
    for step in range(min(LOCAL_SEARCH_STEPS, LOCAL_SEARCH_WORK // cost)):
        if current_peak <= search.bound:
            break
        trial = list(current)
        a, b = rng.sample(range(n), 2)
        if rng.random() < 0.5:
            trial[a], trial[b] = trial[b], trial[a]
        else:
            trial.insert(b, trial.pop(a))
        peak = search.peak(trial)
        if peak <= current_peak:
            if peak < search.best:
                search.best, search.best_method = peak, "local search"
            current, current_peak = trial, peak
    return current if current_peak <= search.best else order


def _branch_and_bound(search: _Search, tensors: list[int]) -> tuple[list[int] | None, bool]:
    """Every order of a few buffers, cut where a prefix already needs the best figure.

    Returns a better order (or None) and whether the search finished (then the best
    figure is optimal among all placements)."""
    reqs = search.reqs
    found, nodes = None, 0

    def dfs(prefix, offsets, peak, rest):
        nonlocal found, nodes
        nodes += 1
        if nodes > EXACT_MAX_NODES:
            raise _Exhausted
        if not rest:
            total = search.peak(prefix)  # with the scratch buffers
            if total < search.best:
                search.best, found = total, list(prefix)
            return
        for i in rest:
            o = _lowest(reqs, offsets, i)
            p = max(peak, o + reqs[i][0])
            if p >= search.best:
                continue
            offsets[i] = o
            dfs(prefix + [i], offsets, p, [j for j in rest if j != i])
            del offsets[i]
            if search.best <= search.bound:
                return

    try:
        dfs([], {}, 0, list(tensors))
    except _Exhausted:
        return found, False
    return found, True


class _Exhausted(Exception):
    pass


def _lowest(reqs, offsets: dict[int, int], i: int) -> int:
    size, first, last = reqs[i]
    candidate = 0
    for j in sorted(offsets, key=offsets.get):
        s_j, f_j, l_j = reqs[j]
        if f_j > last or first > l_j:
            continue
        if offsets[j] - candidate >= size:
            break
        candidate = max(candidate, offsets[j] + s_j)
    return candidate


def write(model: bytes, offsets: Sequence[int] | None) -> bytes:
    """``model`` with ``offsets`` as its OfflineMemoryAllocation metadata (None: without
    any offline plan).  Every buffer's data stays 16-byte aligned."""
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    metadata = list(m.metadata or [])
    old = [md for md in metadata if _name(md) == OFFLINE_PLAN_METADATA]
    for md in old:
        m.buffers[md.buffer].data = None  # left empty: buffer indices stay as they are
    metadata = [md for md in metadata if _name(md) != OFFLINE_PLAN_METADATA]
    if offsets is not None:
        words = np.array([FORMAT_VERSION, len(m.subgraphs), len(offsets), *offsets], "<i4")
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(words.tobytes(), np.uint8)
        if old:
            index = old[0].buffer
            m.buffers[index] = buffer
        else:
            index = len(m.buffers)
            m.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = OFFLINE_PLAN_METADATA, index
        metadata.append(entry)
    m.metadata = metadata or None
    m.buffers = [_AlignedBuffer.of(b) for b in m.buffers]
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def strip(model: bytes) -> bytes:
    """``model`` without an offline plan (unchanged if it has none)."""
    return write(model, None) if read_model(model).offline_plan is not None else model


def _name(md) -> str:
    name = md.name or b""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


class _AlignedBuffer(schema.BufferT):
    """A buffer packed with its data on a 16-byte boundary (the object API packs with 1)."""

    @classmethod
    def of(cls, b: schema.BufferT) -> "_AlignedBuffer":
        new = cls()
        new.data, new.offset, new.size = b.data, b.offset, b.size
        return new

    def Pack(self, builder):
        data = None
        if self.data is not None:
            raw = np.asarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head -= len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)
