"""Profile of a ``.tflite`` before flashing: per layer op, shapes, parameters, MACs and
activation bytes; the memory plan (tensors alive at the peak, the lower bound no planner
beats, the arena TFLM needs); flash (model + kernel code of exactly the ops used);
latency bands and fit per board (``boards.yaml``).

MACs count the multiply-accumulates of the layers that have them (convolutions, fully
connected, LSTM, batch matmul), the convention of MLPerf Tiny and of hand counts; pooling
and element-wise ops count zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .model_info import ModelInfo, OpInfo, read_model


@dataclass(frozen=True)
class LayerProfile:
    index: int
    op: str
    name: str  # the output tensor's name (carries the Keras layer name)
    input_shapes: list
    output_shapes: list
    params: int
    macs: int
    activation_bytes: int  # bytes of the op's outputs


def layers(info: ModelInfo) -> list[LayerProfile]:
    out = []
    for op in info.operators:
        ins = [info.tensors[i] for i in op.inputs if i >= 0]
        outs = [info.tensors[i] for i in op.outputs if i >= 0]
        out.append(LayerProfile(
            index=op.index, op=op.name, name=outs[0].name if outs else "",
            input_shapes=[list(t.shape) for t in ins if not t.is_constant],
            output_shapes=[list(t.shape) for t in outs],
            params=sum(_elements(t.shape) for t in ins if t.is_constant),
            macs=op_macs(info, op), activation_bytes=sum(t.nbytes for t in outs)))
    return out


def op_macs(info: ModelInfo, op: OpInfo) -> int:
    """Multiply-accumulates of one op (0 for ops without them)."""
    t = info.tensors
    ins = [t[i] if i >= 0 else None for i in op.inputs]
    out = t[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
    if out is None or len(ins) < 2 or ins[1] is None:
        return 0
    out_elems = _elements(out.shape)
    w = ins[1].shape
    if op.name in ("CONV_2D", "CONV_3D"):
        return out_elems * _elements(w[1:])  # [Cout, KH, KW, Cin/groups]
    if op.name == "DEPTHWISE_CONV_2D":
        return out_elems * _elements(w[1:3])  # [1, KH, KW, Cout]
    if op.name == "FULLY_CONNECTED":
        return out_elems * w[-1]  # [units, in]
    if op.name == "TRANSPOSE_CONV":
        # inputs: output_shape, weights [Cout, KH, KW, Cin], input
        data = ins[2] if len(ins) > 2 and ins[2] is not None else None
        return _elements(data.shape) * _elements(w[:3]) if data is not None else 0
    if op.name == "BATCH_MATMUL":
        k = ins[0].shape[-1]
        return out_elems * k
    if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        x = ins[0].shape  # [batch, time, input] (time-major models: [time, batch, input])
        hidden = out.shape[-1]
        steps = _elements(x[:-1])
        return steps * 4 * hidden * (x[-1] + hidden)
    return 0


def totals(info: ModelInfo) -> dict:
    rows = layers(info)
    return {"macs": sum(r.macs for r in rows), "params": sum(r.params for r in rows),
            "layers": len(rows)}


def layer_table(model: bytes | str) -> list[dict]:
    return [asdict(r) for r in layers(read_model(model))]


def model_profile(model: bytes | str, *, board: str | None = None, boards_file=None,
                  measured=None, host_arena_bytes: int | None = None) -> dict:
    """Everything ``tflmp profile`` prints, as a dict.

    ``board`` adds the detailed fit of that board (and sizes the arena for the TFLM it
    links); ``measured`` (:class:`latency.Measurement`) narrows its latency band.  The
    64-bit host arena is measured in the TFLM interpreter unless ``host_arena_bytes``
    gives it.  Every board of the database gets a one-line fit and latency band.
    """
    from . import arena, boards, emulate, latency, memory_plan
    from .codegen.settings import DEFAULT_ARENA_PROFILE
    from .model_info import read_model_bytes

    model = model if isinstance(model, (bytes, bytearray)) else read_model_bytes(model)
    info = read_model(model)
    rows = layers(info)
    chosen = boards.get_board(board, boards_file) if board else None
    mem = memory_plan.plan(info)
    a32 = arena.estimate(info, chosen.arena_profile if chosen else DEFAULT_ARENA_PROFILE)
    if host_arena_bytes is None:
        host_arena_bytes = emulate.find_arena_size(model, info=info).bytes
    peak_op = info.operators[mem.peak_scope - 1] if mem.peak_scope > 0 else None
    library = chosen.kernels.code_sizes if chosen else boards.DEFAULT_CODE_SIZES
    code, code_basis = boards.kernel_code_bytes(info.op_names, library)
    out = {
        "model_bytes": info.size, "sha256": info.sha256,
        "layers": [asdict(r) for r in rows],
        "totals": {"ops": len(rows), "params": sum(r.params for r in rows),
                   "macs": sum(r.macs for r in rows),
                   "activation_bytes": sum(r.activation_bytes for r in rows)},
        "memory": {
            "lower_bound_bytes": mem.lower_bound, "planned_bytes": mem.planned_bytes,
            "peak_op": (f"#{peak_op.index} {peak_op.name}" if peak_op else "inputs"),
            "live_at_peak": [{"tensor": b.name or "(scratch)", "bytes": b.size}
                             for b in mem.live_at(mem.peak_scope)],
            "arena_32bit_bytes": a32.bytes, "arena_32bit_profile": a32.profile,
            "arena_32bit_exact": a32.exact, "arena_host_bytes": host_arena_bytes,
            "gap_bytes": a32.bytes - mem.lower_bound,
            "gap_basis": "32-bit arena - lower bound: planner fragmentation "
                         f"{mem.planned_bytes - mem.lower_bound:,} B + TFLM bookkeeping, "
                         "kernel data and scratch"},
        "flash": {"model_bytes": info.size, "code_bytes": code, "code_basis": code_basis,
                  "library": library},
        "boards": [],
    }
    for b in boards.boards(boards_file).values():
        fit = boards.fit_model(info, b)
        band = latency.latency_band(rows, b)
        out["boards"].append({
            "board": b.name, "fits": fit.fits, "ram_needed": sum(fit.ram.values()),
            "ram": b.ram_bytes, "flash_needed": sum(fit.flash.values()), "flash": b.flash_bytes,
            "latency_ms": f"{_ms(band.low_ms)}-{_ms(band.high_ms)}"})
        if b.name == board:
            band = latency.latency_band(rows, b, measured)
            out["board"] = {**fit.to_dict(), "title": b.title, "clock_mhz": b.clock_mhz,
                            "latency": band.to_dict()}
    return out


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _elements(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
