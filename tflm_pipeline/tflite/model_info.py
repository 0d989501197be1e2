"""Read a ``.tflite`` flatbuffer into :class:`ModelInfo` and validate it.

Parsing uses the schema module the ``tflite-micro`` package ships, so the op names and
enums are the ones TFLM itself is built from.  Every offset and vector length is
checked against the file size first: TFLM does not verify flatbuffers and a corrupt
model can take a process down, so nothing reaches the interpreter before it passes
here.  This module never imports TensorFlow or the TFLM runtime.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..artifacts import sha256_bytes
from ..errors import TflmpError

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

_FIXED_SHAPES = ("TFLM allocates fixed shapes; convert the model with a fixed input shape "
                 "(e.g. keras.Input(shape=..., batch_size=1))")
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NUMPY_DTYPES = {
    "FLOAT32": "float32", "FLOAT16": "float16", "FLOAT64": "float64", "INT8": "int8",
    "UINT8": "uint8", "INT16": "int16", "UINT16": "uint16", "INT32": "int32",
    "UINT32": "uint32", "INT64": "int64", "UINT64": "uint64", "BOOL": "bool",
}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    type: str  # TFLite type name: INT8, FLOAT32, ...
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0
    is_constant: bool = False
    is_variable: bool = False

    @property
    def dtype(self) -> np.dtype | None:
        name = _NUMPY_DTYPES.get(self.type)
        return np.dtype(name) if name else None

    @property
    def elements(self) -> int:
        """Values in the tensor (1 for a scalar)."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        item = self.dtype.itemsize if self.dtype is not None else 1
        return self.elements * item

    @property
    def is_quantized(self) -> bool:
        return bool(self.scales)

    @property
    def is_dynamic(self) -> bool:
        return self.shape_signature is not None and any(d < 0 for d in self.shape_signature)


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin name (CONV_2D) or the custom op's code
    custom: bool
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    # Convolution/pooling geometry and FC layout when the op has them: padding ("SAME" or
    # "VALID"), stride_h/w, dilation_h/w, filter_h/w (pooling), keep_num_dims (FC).
    options: dict = field(default_factory=dict, compare=False)


@dataclass
class ModelInfo:
    size: int
    sha256: str
    schema_version: int
    description: str
    subgraphs: int
    tensors: list[TensorInfo]
    operators: list[OpInfo]
    input_indices: list[int]
    output_indices: list[int]
    notes: list[str] = field(default_factory=list)
    # per tensor: an arena offset or -1, from OfflineMemoryAllocation metadata (None: absent)
    offline_plan: tuple[int, ...] | None = None

    @property
    def inputs(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.input_indices]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.output_indices]

    @cached_property
    def op_names(self) -> list[str]:
        """Distinct op names in order of first use."""
        return list(dict.fromkeys(op.name for op in self.operators))

    @property
    def is_full_int8(self) -> bool:
        """int8 input and output tensors (what ``tflmp`` produces for MCUs)."""
        return all(t.type == "INT8" for t in self.inputs + self.outputs)

    def to_dict(self) -> dict:
        return {
            "bytes": self.size, "sha256": self.sha256, "ops": self.op_names,
            "operators": len(self.operators), "subgraphs": self.subgraphs,
            "inputs": [_tensor_dict(t) for t in self.inputs],
            "outputs": [_tensor_dict(t) for t in self.outputs],
        }


def per_channel_dense_layers(info: ModelInfo) -> list[int]:
    """Indices of FULLY_CONNECTED ops whose weights carry more than one scale."""
    return [op.index for op in info.operators if op.name == "FULLY_CONNECTED"
            and len(op.inputs) > 1 and len(info.tensors[op.inputs[1]].scales) > 1]


def _tensor_dict(t: TensorInfo) -> dict:
    return {"name": t.name, "type": t.type, "shape": list(t.shape),
            "scale": list(t.scales), "zero_point": list(t.zero_points)}


def read_model(source: bytes | str | os.PathLike) -> ModelInfo:
    """Parse and validate a TFLite model given as bytes or a file path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "model"
    else:
        where = str(source)
        data = read_model_bytes(source)
    try:
        return _parse(data)
    except _Unsuitable as e:
        raise TflmpError(f"{where}: {e}") from None
    except _Corrupt as e:
        raise TflmpError(f"{where} is a corrupt or truncated TFLite model ({e}); "
                         "re-export it with 'tflmp train' or the TFLite converter") from None
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError,
            OverflowError, AttributeError) as e:
        raise TflmpError(f"{where} is a corrupt or truncated TFLite model "
                         f"({type(e).__name__}: {e}); re-export it") from None


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """Read a model file, with one-line errors for the usual mistakes."""
    path = Path(path)
    if path.is_dir():
        raise TflmpError(f"{path} is a directory; pass the .tflite file inside it")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TflmpError(f"model file {path} does not exist") from None
    except OSError as e:
        raise TflmpError(f"cannot read model file {path}: {e.strerror}") from None
    return data


class _Corrupt(Exception):
    pass


class _Unsuitable(Exception):
    """A well-formed file tflmp cannot use; the message says why and what to do."""


def _parse(data: bytes) -> ModelInfo:
    size = len(data)
    if size < 24:
        raise _Corrupt(f"only {size} bytes")
    if data[4:8] != b"TFL3":
        shown = data[4:8].decode("latin-1").encode("unicode_escape").decode()
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            hint = "it is a PNG image"
        else:
            hint = f"file identifier is '{shown}', expected 'TFL3'"
        raise _Unsuitable(f"not a TFLite flatbuffer: {hint}; pass a .tflite model")
    root = struct.unpack_from("<I", data, 0)[0]
    if root + 4 > size:
        raise _Corrupt("root offset points past the end of the file")

    def count(n: int, what: str, elem: int = 4) -> int:
        if n < 0 or n * elem > size:
            raise _Corrupt(f"{what} claims {n} entries")
        return n

    model = schema.Model.GetRootAs(data, 0)
    version = model.Version()
    if version != 3:
        raise _Corrupt(f"schema version {version}, expected 3")
    n_buffers = count(model.BuffersLength(), "buffer table")
    n_codes = count(model.OperatorCodesLength(), "operator code table")
    n_subgraphs = count(model.SubgraphsLength(), "subgraph table")
    if n_subgraphs < 1:
        raise _Corrupt("no subgraphs")

    buffer_has_data = []
    for b in range(n_buffers):
        buf = model.Buffers(b)
        n = count(buf.DataLength(), f"buffer {b}", 1)
        offset, bsize = buf.Offset(), buf.Size()
        if offset > 1 and offset + bsize > size:
            raise _Corrupt(f"buffer {b} lies outside the file")
        buffer_has_data.append(n > 0 or offset > 1)

    codes = []
    for c in range(n_codes):
        code = model.OperatorCodes(c)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            codes.append(((custom or b"?").decode("utf-8", "replace"), True, code.Version()))
        else:
            codes.append((_OP_NAMES.get(builtin, f"BUILTIN_{builtin}"), False, code.Version()))

    sg = model.Subgraphs(0)
    n_tensors = count(sg.TensorsLength(), "tensor table")
    tensors = []
    for i in range(n_tensors):
        t = sg.Tensors(i)
        shape = tuple(int(d) for d in _ints(t.ShapeAsNumpy(), count(t.ShapeLength(), "shape")))
        sig = None
        if t.ShapeSignatureLength():
            count(t.ShapeSignatureLength(), "shape signature")
            sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy())
        if t.Buffer() >= n_buffers:
            raise _Corrupt(f"tensor {i} refers to missing buffer {t.Buffer()}")
        if any(d < 0 for d in shape):
            raise _Unsuitable(f"tensor {i} has a dynamic dimension (shape {list(shape)}): "
                              f"{_FIXED_SHAPES}")
        q = t.Quantization()
        scales, zps, qdim = (), (), 0
        if q is not None:
            count(q.ScaleLength(), "scale vector")
            count(q.ZeroPointLength(), "zero-point vector", 8)
            scales = tuple(float(s) for s in _ints(q.ScaleAsNumpy(), q.ScaleLength()))
            zps = tuple(int(z) for z in _ints(q.ZeroPointAsNumpy(), q.ZeroPointLength()))
            qdim = q.QuantizedDimension()
        type_name = _TYPE_NAMES.get(t.Type(), f"TYPE_{t.Type()}")
        tensors.append(TensorInfo(
            index=i, name=(t.Name() or b"").decode("utf-8", "replace"), type=type_name,
            shape=shape, shape_signature=sig, scales=scales, zero_points=zps,
            quantized_dimension=qdim,
            is_constant=t.Buffer() > 0 and buffer_has_data[t.Buffer()],
            is_variable=bool(t.IsVariable())))

    def indices(vec, n, what):
        idx = [int(v) for v in _ints(vec, count(n, what))]
        bad = [v for v in idx if v < -1 or v >= n_tensors]
        if bad:
            raise _Corrupt(f"{what} refers to missing tensor {bad[0]}")
        return idx

    operators = []
    for k in range(count(sg.OperatorsLength(), "operator list")):
        op = sg.Operators(k)
        if op.OpcodeIndex() >= n_codes:
            raise _Corrupt(f"operator {k} uses missing opcode {op.OpcodeIndex()}")
        name, custom, ver = codes[op.OpcodeIndex()]
        operators.append(OpInfo(
            index=k, name=name, custom=custom, version=ver,
            inputs=tuple(indices(op.InputsAsNumpy(), op.InputsLength(), f"operator {k} inputs")),
            outputs=tuple(indices(op.OutputsAsNumpy(), op.OutputsLength(), f"operator {k} outputs")),
            options=_options(op)))
    ins = indices(sg.InputsAsNumpy(), sg.InputsLength(), "subgraph inputs")
    outs = indices(sg.OutputsAsNumpy(), sg.OutputsLength(), "subgraph outputs")
    if not ins or not outs or -1 in ins or -1 in outs:
        raise _Corrupt("the main subgraph has no inputs or outputs")
    for t in (tensors[i] for i in ins):
        # A dynamic batch runs as batch 1 (TFLM uses `shape`); any other dynamic
        # dimension was frozen to a placeholder size by the converter.
        if t.shape_signature and any(d < 0 for d in t.shape_signature[1:]):
            raise _Unsuitable(f"input '{t.name}' has a dynamic dimension (shape signature "
                              f"{list(t.shape_signature)}): {_FIXED_SHAPES}")
    for op in operators:
        _check_signature(op, tensors)
    description = (model.Description() or b"").decode("utf-8", "replace")
    return ModelInfo(size=size, sha256=sha256_bytes(data), schema_version=version,
                     description=description, subgraphs=n_subgraphs, tensors=tensors,
                     operators=operators, input_indices=ins, output_indices=outs,
                     offline_plan=_offline_plan(model, n_buffers, count))


OFFLINE_PLAN_METADATA = "OfflineMemoryAllocation"  # TFLM's name (micro_allocation_info.cc)


def _offline_plan(model, n_buffers: int, count) -> tuple[int, ...] | None:
    """The tensor offsets of TFLM's offline plan: int32 [version, subgraphs, n, offsets],
    one per tensor of every subgraph in turn.  TFLM takes the last entry of that name."""
    entries = [model.Metadata(m) for m in range(count(model.MetadataLength(), "metadata table"))]
    entries = [e for e in entries
               if (e.Name() or b"").decode("utf-8", "replace") == OFFLINE_PLAN_METADATA]
    if not entries:
        return None
    n_tensors = sum(model.Subgraphs(g).TensorsLength() for g in range(model.SubgraphsLength()))
    meta = entries[-1]
    if meta.Buffer() >= n_buffers:
        raise _Corrupt(f"the offline memory plan refers to missing buffer {meta.Buffer()}")
    buffer = model.Buffers(meta.Buffer())
    raw = buffer.DataAsNumpy() if buffer.DataLength() % 4 == 0 else None
    words = np.frombuffer(raw.tobytes(), "<i4") if buffer.DataLength() and raw is not None \
        else np.zeros(0, "<i4")
    if len(words) < 3 or words[2] < 0 or len(words) < 3 + words[2]:
        # TFLM would read past the buffer
        raise _Corrupt("the offline memory plan's buffer does not hold "
                       "[version, subgraphs, n, n offsets]")
    if words[2] != n_tensors:
        raise _Unsuitable(f"its offline memory plan has {words[2]} offsets for "
                          f"{n_tensors} tensors, which TFLM refuses; re-export the model "
                          "with one offset per tensor or without the plan")
    offsets = tuple(int(w) for w in words[3:3 + n_tensors])
    if any(o < -1 for o in offsets):  # TFLM would write before the arena
        raise _Corrupt(f"the offline memory plan places a tensor at offset {min(offsets)}")
    return offsets


# What the ops tflmp reasons about (MACs, arena rules, resolver) must look like, as TFLM's
# kernels check in Prepare: (tensor inputs required, {input position: rank}, output rank,
# option keys).  A model that breaks one is malformed and never reaches TFLM.
_SIGNATURES = {
    "CONV_2D": (2, {0: 4, 1: 4}, 4, ("padding", "stride_h", "dilation_h")),
    "DEPTHWISE_CONV_2D": (2, {0: 4, 1: 4}, 4, ("padding", "stride_h", "dilation_h")),
    "TRANSPOSE_CONV": (3, {1: 4, 2: 4}, 4, ()),
    "AVERAGE_POOL_2D": (1, {0: 4}, 4, ("padding", "stride_h", "filter_h")),
    "MAX_POOL_2D": (1, {0: 4}, 4, ("padding", "stride_h", "filter_h")),
    "FULLY_CONNECTED": (2, {1: 2}, None, ()),
    "BATCH_MATMUL": (2, {}, None, ()),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (1, {}, None, ()),
    "SOFTMAX": (1, {}, None, ()),
    "MEAN": (2, {}, None, ()),
}


def _check_signature(op: OpInfo, tensors: list[TensorInfo]) -> None:
    if not op.outputs or op.outputs[0] < 0:
        raise _Corrupt(f"operator {op.index} ({op.name}) has no output")
    rule = None if op.custom else _SIGNATURES.get(op.name)
    if rule is None:
        return
    n_inputs, ranks, out_rank, keys = rule
    ins = op.inputs
    if len(ins) < n_inputs or any(i < 0 for i in ins[:n_inputs]):
        raise _Corrupt(f"operator {op.index} ({op.name}) has {len(ins)} inputs, it needs "
                       f"{n_inputs}")
    for pos, rank in ranks.items():
        if pos < len(ins) and ins[pos] >= 0 and len(tensors[ins[pos]].shape) != rank:
            raise _Corrupt(f"operator {op.index} ({op.name}) input {pos} has shape "
                           f"{list(tensors[ins[pos]].shape)}, not rank {rank}")
    if out_rank is not None and len(tensors[op.outputs[0]].shape) != out_rank:
        raise _Corrupt(f"operator {op.index} ({op.name}) output has shape "
                       f"{list(tensors[op.outputs[0]].shape)}, not rank {out_rank}")
    if any(k not in op.options for k in keys):
        raise _Corrupt(f"operator {op.index} ({op.name}) lacks its {op.name.lower()} options")
    bad = [k for k in ("stride_h", "stride_w", "dilation_h", "dilation_w", "filter_h", "filter_w")
           if k in op.options and op.options[k] < 1]
    if bad:
        raise _Corrupt(f"operator {op.index} ({op.name}) has {bad[0]} {op.options[bad[0]]}; "
                       "it must be at least 1")


_PADDING = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}
_OPTION_TYPES = {
    schema.BuiltinOptions.Conv2DOptions: (schema.Conv2DOptions, True),
    schema.BuiltinOptions.DepthwiseConv2DOptions: (schema.DepthwiseConv2DOptions, True),
    schema.BuiltinOptions.Pool2DOptions: (schema.Pool2DOptions, False),
}


def _options(op) -> dict:
    """The geometry fields of conv, depthwise, pooling and FC options."""
    kind = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if kind == schema.BuiltinOptions.FullyConnectedOptions:
        fc = schema.FullyConnectedOptions()
        fc.Init(table.Bytes, table.Pos)
        return {"keep_num_dims": bool(fc.KeepNumDims())}
    if kind not in _OPTION_TYPES:
        return {}
    cls, dilated = _OPTION_TYPES[kind]
    o = cls()
    o.Init(table.Bytes, table.Pos)
    out = {"padding": _PADDING.get(o.Padding(), "SAME"), "stride_h": o.StrideH(),
           "stride_w": o.StrideW()}
    if dilated:
        out.update(dilation_h=o.DilationHFactor(), dilation_w=o.DilationWFactor())
    else:
        out.update(filter_h=o.FilterHeight(), filter_w=o.FilterWidth())
    return out


def _ints(vec, n):
    """flatbuffers returns 0 instead of an empty array for absent vectors."""
    return vec if n else ()
