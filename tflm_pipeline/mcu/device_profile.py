"""A model on the devices: memory plan and arenas, flash, and the fit and latency band on
every board of the database.  ``tflmp profile`` prints it; ``tflmp train`` stores its
totals, memory, flash and board rows in the run record."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..tflite import memory_plan
from ..tflite.layers import LayerProfile, layers, row_totals
from ..tflite.model_info import ModelInfo
from . import boards as board_db
from .arena import ArenaEstimate, estimate
from .arena_plan import decide
from .known_issues import REFUSE, board_issues, refusal_message
from .latency import Band, Measurement, latency_band
from .releases import DEFAULT_RELEASE


@dataclass(frozen=True)
class MemoryFigures:
    lower_bound_bytes: int  # the most bytes alive at once: no planner needs less
    planned_bytes: int  # what TFLM's greedy planner needs
    peak_op: str  # "#12 CONV_2D", or "inputs"
    live_at_peak: list[tuple[str, int]]  # (tensor, bytes) alive at the peak
    arena_32bit: ArenaEstimate
    arena_host_bytes: int  # 64-bit host, measured in the TFLM interpreter
    offline_planned: bool = False  # planned_bytes follows the model's offline plan
    offline_plan_bytes: int | None = None  # what an offline plan would need, if it saves

    @property
    def gap_bytes(self) -> int:
        """32-bit arena minus the lower bound."""
        return self.arena_32bit.bytes - self.lower_bound_bytes

    @property
    def fragmentation_bytes(self) -> int:
        """What TFLM's planner adds over the lower bound."""
        return self.planned_bytes - self.lower_bound_bytes

    def to_dict(self) -> dict:
        return {
            "lower_bound_bytes": self.lower_bound_bytes, "planned_bytes": self.planned_bytes,
            "peak_op": self.peak_op,
            "live_at_peak": [{"tensor": t, "bytes": b} for t, b in self.live_at_peak],
            "arena_32bit_bytes": self.arena_32bit.bytes,
            "arena_32bit_profile": self.arena_32bit.release,
            "arena_32bit_exact": self.arena_32bit.exact,
            "arena_host_bytes": self.arena_host_bytes, "gap_bytes": self.gap_bytes,
            "offline_planned": self.offline_planned,
            "offline_plan_bytes": self.offline_plan_bytes,
            "gap_basis": "32-bit arena - lower bound: planner fragmentation "
                         f"{self.fragmentation_bytes:,} B + TFLM bookkeeping, kernel data and "
                         "scratch"}


@dataclass(frozen=True)
class FlashFigures:
    model_bytes: int
    code_bytes: int  # TFLM's core and the kernels of exactly the model's ops
    code_basis: str
    library: str  # kernel_sizes.json library the code size comes from

    def to_dict(self) -> dict:
        return {"model_bytes": self.model_bytes, "code_bytes": self.code_bytes,
                "code_basis": self.code_basis, "library": self.library}


@dataclass(frozen=True)
class BoardRow:
    """One board of the database: the fit verdict and the latency band."""

    board: board_db.Board
    fit: board_db.FitResult
    latency: Band

    @property
    def arena_bytes(self) -> int:
        """The 32-bit arena this row's fit counts (for the TFLM release the board links)."""
        return self.fit.ram.get("arena") or self.fit.psram.get("arena", 0)

    @property
    def model_flash_bytes(self) -> int:
        """Flash the model and TFLM's code take."""
        return self.fit.flash["model"] + self.fit.flash["TFLM code"]

    @property
    def flash_room_bytes(self) -> int:
        """Flash the framework leaves for them."""
        return self.board.flash_bytes - self.board.reserved_flash_bytes

    def to_dict(self) -> dict:
        return {"board": self.board.name, "fits": self.fit.fits, "reasons": list(self.fit.reasons),
                "arena_bytes": self.arena_bytes, "tflm_release": self.board.tflm_release,
                "ram_needed": sum(self.fit.ram.values()), "ram": self.board.ram_bytes,
                "flash_needed": sum(self.fit.flash.values()), "flash": self.board.flash_bytes,
                "latency_ms": self.latency.text}


@dataclass(frozen=True)
class DeviceProfile:
    model_bytes: int
    sha256: str
    layers: list[LayerProfile]
    memory: MemoryFigures
    flash: FlashFigures
    boards: list[BoardRow]
    board: BoardRow | None = None  # the board asked for, latency narrowed by a measurement
    known_issues: list = field(default_factory=list)  # known_issues.FiredRule on `board`
    # per op of one inference counted under QEMU (profile --measure): index, op, instructions
    measured_ops: list[dict] | None = None

    @property
    def totals(self) -> dict:
        return row_totals(self.layers)

    @property
    def refusal(self) -> str | None:
        """The one-line reason ``tflmp firmware`` refuses this model for ``board`` (a
        known-issues rule), or None."""
        rule = next((r for r in self.known_issues if r.issue.remedy == REFUSE), None)
        return (refusal_message(rule, f"{self.board.board.name} ({', '.join(rule.platforms)})")
                if rule is not None else None)

    def to_dict(self) -> dict:
        out = {"model_bytes": self.model_bytes, "sha256": self.sha256,
               "layers": [r.to_dict() for r in self.layers], "totals": self.totals,
               "memory": self.memory.to_dict(), "flash": self.flash.to_dict(),
               "boards": [b.to_dict() for b in self.boards]}
        if self.board is not None:
            b = self.board
            out["board"] = {**b.fit.to_dict(), "title": b.board.title,
                            "clock_mhz": b.board.clock_mhz, "latency": b.latency.to_dict()}
            out["known_issues"] = [r.to_dict() for r in self.known_issues]
        if self.measured_ops is not None:
            out["measured_ops"] = self.measured_ops
        return out

    def record_profile(self) -> dict:
        """What the run record keeps as ``profile``: totals, memory and flash."""
        d = self.to_dict()
        return {"totals": d["totals"], "memory": d["memory"], "flash": d["flash"]}


def device_profile(info: ModelInfo, host_arena_bytes: int, *, board: str | None = None,
                   boards_file=None, measured: Measurement | None = None) -> DeviceProfile:
    """Everything ``tflmp profile`` prints about ``info``.

    ``board`` adds the detailed fit of that board (and sizes the 32-bit arena for the
    TFLM it links); ``measured`` narrows its latency band.  ``host_arena_bytes`` is the
    arena the TFLM interpreter needs on this host (the caller measures it).
    """
    rows = layers(info)
    chosen = board_db.get_board(board, boards_file) if board else None
    mem = memory_plan.plan(info)
    a32 = estimate(info, chosen.tflm_release if chosen else DEFAULT_RELEASE)
    peak_op = info.operators[mem.peak_scope - 1] if mem.peak_scope > 0 else None
    library = chosen.kernels.code_sizes if chosen else board_db.DEFAULT_CODE_SIZES
    code, code_basis = board_db.kernel_code_bytes(info.op_names, library)
    memory = MemoryFigures(
        mem.lower_bound, mem.planned_bytes,
        f"#{peak_op.index} {peak_op.name}" if peak_op else "inputs",
        [(b.name or "(scratch)", b.size) for b in mem.live_at(mem.peak_scope)],
        a32, host_arena_bytes, mem.offline_planned,
        _offline_plan_bytes(info, mem, a32.release))
    table = [BoardRow(b, board_db.fit_model(info, b), latency_band(rows, b))
             for b in board_db.boards(boards_file).values()]
    detail = None
    if chosen is not None:
        row = next(r for r in table if r.board.name == chosen.name)
        detail = BoardRow(chosen, row.fit, latency_band(rows, chosen, measured))
    return DeviceProfile(info.size, info.sha256, rows, memory,
                         FlashFigures(info.size, code, code_basis, library), table, detail,
                         board_issues(info, chosen) if chosen is not None else [])


def _offline_plan_bytes(info: ModelInfo, mem, release: str) -> int | None:
    """The activation bytes of the offline plan tflmp would write, when it saves some."""
    if mem.offline_planned or mem.planned_bytes <= mem.lower_bound:
        return None
    outcome = decide(info, release)
    return outcome.plan.planned_bytes if outcome.applied else None
