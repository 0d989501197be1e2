"""Per layer of a ``.tflite``: op, shapes, parameters, MACs and activation bytes.

MACs count the multiply-accumulates of the layers that have them (convolutions, fully
connected, LSTM, batch matmul), the convention of MLPerf Tiny and of hand counts; pooling
and element-wise ops count zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .model_info import ModelInfo, OpInfo


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

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def elements(self) -> int:
        """Elements the op reads and writes (its non-constant inputs and its outputs)."""
        return sum(_elements(s) for s in self.input_shapes + self.output_shapes)


def layers(info: ModelInfo) -> list[LayerProfile]:
    """One row per op, in execution order."""
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
    """Ops, parameters, MACs and activation bytes of the whole model."""
    return row_totals(layers(info))


def row_totals(rows: list[LayerProfile]) -> dict:
    """Ops, parameters, MACs and activation bytes of ``rows``."""
    return {"ops": len(rows), "params": sum(r.params for r in rows),
            "macs": sum(r.macs for r in rows),
            "activation_bytes": sum(r.activation_bytes for r in rows)}


def _elements(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
