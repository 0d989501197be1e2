"""The tensor arena a 32-bit MCU needs, derived from the model for a given TFLM release.

``arena_used_bytes()`` after ``AllocateTensors()`` is head + tail.  The head is TFLM's
memory plan of the activation tensors plus kernel scratch buffers, the same on every
build (:mod:`tflm_pipeline.tflite.memory_plan`).  The tail is the interpreter's persistent bookkeeping,
allocated downward from the arena end with per-allocation alignment: allocator objects,
one TfLiteEvalTensor per tensor, one NodeAndRegistration per op, builtin parameters,
kernel data, per-channel quantization arrays, the input/output TfLiteTensors.  Its sizes
depend on pointer width, enum size (arm-none-eabi packs enums) and TFLM release, so they
come from measurements on Cortex-M4 (the releases of ``firmware/tflm_arena.json``), not
from this host.

The smallest arena that works is not always ``arena_used_bytes()``: memory planning and
each kernel's Prepare hold temporary data on top of the tail, and for small models or
layers with many channels that peak is higher than the final state.  :func:`estimate`
returns both, and firmware is sized by the minimum that works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import TflmpError
from ..tflite import memory_plan
from ..tflite.model_info import ModelInfo, OpInfo, TensorInfo
from .releases import DEFAULT_RELEASE, get_release, releases

# For ops without a measured entry: larger than any measured op, and reported, so the
# figure errs on the safe side and is never passed off as exact.
_UNMEASURED_OP = {"builtin": [64, 4], "op_data": 128, "prepare": ["per_channel_output"],
                  "scratch": [], "prepare_temp": ["i*", "o0", "P"]}


@dataclass(frozen=True)
class ArenaEstimate:
    bytes: int  # smallest 16-byte multiple with which AllocateTensors() succeeds
    used: int  # arena_used_bytes() once allocated
    planned: int  # head: activation buffers and scratch
    bookkeeping: int  # tail
    binding: str  # which phase sets `bytes`: final, planning or prepare
    release: str  # the TFLM release it is derived for
    unmeasured_ops: tuple[str, ...] = field(default_factory=tuple)
    measured_release: bool = True  # False: the release's sizes are an allowance

    @property
    def exact(self) -> bool:
        return self.measured_release and not self.unmeasured_ops

    @property
    def release_title(self) -> str:
        return get_release(self.release).title

    def to_dict(self) -> dict:
        # "profile" is the release's key name in report.json since schema 1
        return {"arena_bytes": self.bytes, "arena_used_bytes": self.used,
                "planned_bytes": self.planned, "bookkeeping_bytes": self.bookkeeping,
                "binding_phase": self.binding, "profile": self.release, "exact": self.exact,
                "unmeasured_ops": list(self.unmeasured_ops)}


def _sizes(name: str) -> dict:
    """A release's measured sizes; ``same_as`` releases inherit them and may add an
    allowance."""
    table = releases()
    get_release(name)  # a one-line error for an unknown name
    p = dict(table[name])
    while "same_as" in p:
        base = table[p.pop("same_as")]
        p = {**base, **{k: v for k, v in p.items() if k not in ("title", "source")}}
    return p


def estimate(info: ModelInfo, release: str = DEFAULT_RELEASE) -> ArenaEstimate:
    """Arena figures of ``info`` on a 32-bit build of the TFLM release ``release``."""
    p = _sizes(release)
    if info.subgraphs != 1:
        raise TflmpError("the arena of models with several subgraphs (control flow) is not "
                         "derived; measure it with 'tflmp firmware --check'")
    a, plan_cost = p["allocator"], p["planning"]
    tail = _Tail()
    for key in ("single_arena_buffer_allocator", "memory_planner", "micro_allocator",
                "builtin_data_allocator", "subgraph_allocations"):
        tail.alloc(*a[key])
    tail.alloc(a["eval_tensor"][0] * len(info.tensors), a["eval_tensor"][1])
    tail.alloc(a["node_and_registration"][0] * len(info.operators), a["node_and_registration"][1])
    entries, unmeasured = [], []
    for op in info.operators:
        entry = p["ops"].get(op.name)
        if entry is None:
            entry = _UNMEASURED_OP
            if op.name not in unmeasured:
                unmeasured.append(op.name)
        entries.append(entry)
    for entry in entries:
        if entry["builtin"]:
            tail.alloc(*entry["builtin"])
    for entry in entries:
        if entry["op_data"]:
            tail.alloc(entry["op_data"], 16)
    if p.get("allowance_per_op"):
        tail.alloc(p["allowance_per_op"] * len(info.operators), 16)

    # Prepare: persistent buffers go to the tail while the kernel's temporary
    # TfLiteTensors sit in the head; both must fit at every step.
    request = plan_cost["scratch_buffer_request"] * 1
    per_op_requests = plan_cost["max_scratch_buffers_per_op"]
    scratch: dict[int, list[int]] = {}
    n_requests = 0
    prepare_peak = 0
    for op, entry in zip(info.operators, entries):
        persistent = [size for rule in entry["prepare"] for size in _RULES[rule](info, op)]
        temp = request * (n_requests + per_op_requests)
        placed = False
        for ref in entry.get("prepare_temp", []):
            if ref == "P":
                for size in persistent:
                    tail.alloc(size, 16)
                    prepare_peak = max(prepare_peak, temp + tail.used)
                placed = True
                continue
            for t in _temp_tensors(info, op, ref):
                temp += _temp_size(a, t)
                prepare_peak = max(prepare_peak, temp + tail.used)
        if not placed:
            for size in persistent:
                tail.alloc(size, 16)
        sizes = _op_scratch(info, op, entry, p)
        if sizes:
            scratch[op.index] = sizes
            n_requests += len(sizes)
    if n_requests:
        tail.alloc(a["scratch_buffer_handle"][0] * n_requests, a["scratch_buffer_handle"][1])
    for t in info.tensors:
        if t.is_variable:
            tail.alloc(t.nbytes, 16)

    plan = memory_plan.plan(info, scratch)
    # The planner gets AlignDown16(tail) - AlignUp16(temp) and needs 40 B per buffer:
    # each term rounds up on its own.
    align = memory_plan.align
    planning_peak = (align(request * (n_requests + per_op_requests) + plan_cost["subgraph_offset"]
                           + plan_cost["allocation_info"] * (len(info.tensors) + n_requests))
                     + align(plan_cost["planner_per_buffer"] * len(plan.buffers))
                     + align(tail.used))
    for group in (info.inputs, info.outputs):
        tail.alloc(a["tensor_pointer"][0] * len(group), a["tensor_pointer"][1])
        for t in group:
            tail.alloc(*a["tflite_tensor"])
            if t.scales and t.zero_points:
                tail.alloc(*a["affine_quantization"])
                tail.alloc(a["zero_point_int_array"][0] + 4 * len(t.scales),
                           a["zero_point_int_array"][1])
    used = plan.planned_bytes + tail.used
    phases = {"final": used, "planning": planning_peak, "prepare": prepare_peak}
    binding = max(phases, key=phases.get)
    return ArenaEstimate(memory_plan.align(phases[binding]), used, plan.planned_bytes,
                         tail.used, binding, release, tuple(unmeasured),
                         p.get("measured", True))


def scratch_buffers(info: ModelInfo, release: str = DEFAULT_RELEASE
                    ) -> tuple[dict[int, list[int]], tuple[str, ...]]:
    """The scratch buffers the kernels of ``release`` request (op index -> sizes), and
    the ops whose kernels are not in its table (their scratch is unknown)."""
    p = _sizes(release)
    scratch, unmeasured = {}, []
    for op in info.operators:
        entry = p["ops"].get(op.name)
        if entry is None:
            unmeasured.append(op.name)
            continue
        sizes = _op_scratch(info, op, entry, p)
        if sizes:
            scratch[op.index] = sizes
    return scratch, tuple(dict.fromkeys(unmeasured))


def _op_scratch(info: ModelInfo, op: OpInfo, entry: dict, p: dict) -> list[int]:
    rules = entry["scratch"] + p.get("extra_scratch", {}).get(op.name, [])
    return [s for rule in rules for s in _RULES[rule](info, op)]


def largest(info: ModelInfo, release_names) -> ArenaEstimate:
    """The largest estimate over the TFLM releases a target may link."""
    return max((estimate(info, name) for name in release_names), key=lambda e: e.bytes)


class _Tail:
    """TFLM's persistent allocator: each allocation moves the tail down and aligns it."""

    _END = 1 << 30  # any 16-aligned end gives the same padding

    def __init__(self):
        self.pos = self._END

    def alloc(self, size: int, align: int) -> None:
        self.pos = (self.pos - size) // align * align

    @property
    def used(self) -> int:
        return self._END - self.pos


def _temp_tensors(info: ModelInfo, op: OpInfo, ref: str) -> list[TensorInfo]:
    """The tensors a Prepare step makes temporary TfLiteTensors of ('i0', 'o0', 'i*',
    '..._if_int8')."""
    if ref.endswith("_if_int8"):
        ref = ref[: -len("_if_int8")]
        first = info.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
        if first is None or first.type != "INT8":
            return []
    if ref == "i*":
        return [info.tensors[i] for i in op.inputs if i >= 0]
    indices = op.inputs if ref[0] == "i" else op.outputs
    k = int(ref[1:])
    return [info.tensors[indices[k]]] if k < len(indices) and indices[k] >= 0 else []


def _temp_size(a: dict, t: TensorInfo) -> int:
    size = a["tflite_tensor"][0]
    if t.scales and t.zero_points:
        size += a["affine_quantization"][0] + a["zero_point_int_array"][0] + 4 * len(t.scales)
    return size


def _input(info, op, k=0):
    return info.tensors[op.inputs[k]] if len(op.inputs) > k and op.inputs[k] >= 0 else None


def _per_channel(info, op):
    f = _input(info, op, 1)
    n = f.shape[3] if op.name == "DEPTHWISE_CONV_2D" else f.shape[0]
    return [4 * n, 4 * n]


def _per_channel_if_multiscale(info, op):
    f, x = _input(info, op, 1), _input(info, op)
    if x is None or x.type == "FLOAT32" or f is None or len(f.scales) <= 1 or not f.zero_points:
        return []
    return [4 * len(f.scales)] * 2


def _per_channel_output(info, op):
    out = info.tensors[op.outputs[0]]
    n = out.shape[-1] if out.shape else 1
    return [4 * n, 4 * n]


def _concat_int8_scales(info, op):
    x = _input(info, op)
    return [4 * len(op.inputs)] * 2 if x is not None and x.type == "INT8" else []


def _softmax_int16_lut(info, op):
    x = _input(info, op)
    return [1026, 1026] if x is not None and x.type == "INT16" else []


def _mean_2023(info, op):
    x = _input(info, op)
    out = info.tensors[op.outputs[0]]
    return [4 * out.elements] if x is not None and x.type in ("INT8", "INT16") else []


def _mean_2026(info, op):
    x, axes = _input(info, op), _input(info, op, 1)
    return _mean_2023(info, op) + [4 * len(x.shape), 4 * axes.elements]


def _int4_filter_unpack(info, op):
    f = _input(info, op, 1)
    return [f.elements] if f is not None and f.type == "INT4" else []


def _quantized_input(info, op) -> str | None:
    x = _input(info, op)
    return x.type if x is not None and x.type in ("INT8", "INT16") else None


def _per_channel_if_quantized(info, op):
    return _per_channel(info, op) if _quantized_input(info, op) else []


def _padding(size: int, filt: int, stride: int, dilation: int, padding: str) -> int:
    """TFLM's computed padding on one side (ComputePaddingHeightWidth)."""
    effective = (filt - 1) * dilation + 1
    out = (-(-size // stride) if padding == "SAME" else (size + stride - effective) // stride)
    return max((out - 1) * stride + effective - size, 0) // 2


def _cmsis_conv(info, op):
    """arm_convolve_wrapper_s8/_s16_get_buffer_size on a Cortex-M with DSP."""
    kind = _quantized_input(info, op)
    if kind is None:
        return []
    x, f, o = _input(info, op), _input(info, op, 1), op.options
    in_c, fh, fw = x.shape[3], f.shape[1], f.shape[2]
    size = 4 * in_c * fw * fh
    dilated = o.get("dilation_h", 1) != 1 or o.get("dilation_w", 1) != 1
    if kind == "INT16":
        return [size] if fw * fh * in_c < 512 and not dilated else []
    pad_h = _padding(x.shape[1], fh, o["stride_h"], o.get("dilation_h", 1), o["padding"])
    pad_w = _padding(x.shape[2], fw, o["stride_w"], o.get("dilation_w", 1), o["padding"])
    fast_1x1 = (fh == fw == 1 and o["stride_h"] == o["stride_w"] == 1 and not dilated
                and pad_h == pad_w == 0)
    return [] if fast_1x1 else [size]


def _cmsis_dwconv_s8(info, op):
    x, f, out = _input(info, op), _input(info, op, 1), info.tensors[op.outputs[0]]
    o = op.options
    if (x is None or x.type != "INT8" or x.shape[3] != out.shape[3] or x.shape[0] != 1
            or o.get("dilation_h", 1) != 1 or o.get("dilation_w", 1) != 1):
        return []
    return [2 * x.shape[3] * f.shape[1] * f.shape[2]]


def _cmsis_avgpool_s8(info, op):
    x = _input(info, op)
    return [4 * x.shape[3]] if x is not None and x.type == "INT8" else []


def _cmsis_avgpool_s8_s16(info, op):
    return [4 * _input(info, op).shape[3]] if _quantized_input(info, op) else []


def _esp_nn_softmax(info, op):
    x = _input(info, op)
    return [4 * x.shape[1]] if x is not None and len(x.shape) > 1 else []


def _cmsis_fc_per_channel_4d(info, op):
    x, f, out = _input(info, op), _input(info, op, 1), info.tensors[op.outputs[0]]
    if x is None or x.type != "INT8" or len(out.shape) <= 2 or f.shape[-1] % 4:
        return []
    return [4 * out.shape[-1]] * 2


_RULES = {
    "per_channel": _per_channel,
    "per_channel_if_multiscale": _per_channel_if_multiscale,
    "per_channel_output": _per_channel_output,
    "concat_int8_scales": _concat_int8_scales,
    "softmax_int16_lut": _softmax_int16_lut,
    "mean_2026": _mean_2026,
    "mean_2023": _mean_2023,
    "int4_filter_unpack": _int4_filter_unpack,
    "per_channel_if_quantized": _per_channel_if_quantized,
    "cmsis_conv": _cmsis_conv,
    "cmsis_dwconv_s8": _cmsis_dwconv_s8,
    "cmsis_avgpool_s8": _cmsis_avgpool_s8,
    "cmsis_avgpool_s8_s16": _cmsis_avgpool_s8_s16,
    "cmsis_fc_per_channel_4d": _cmsis_fc_per_channel_4d,
    "esp_nn_softmax": _esp_nn_softmax,
}
