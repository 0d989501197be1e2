"""``<name>_golden.h``: inputs and the exact outputs TFLM gave for them, for the boot
self-test that proves the board computes what tflmp verified.  The vectors are handed
in (``tflmp firmware`` computes them in the TFLM interpreter)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..artifacts import write_text
from ..firmware_files import render
from ..tflite.model_info import ModelInfo
from .c_array import format_bytes
from .c_literals import c_double, c_float


@dataclass(frozen=True)
class GoldenVectors:
    inputs: np.ndarray  # (count, *input shape) in the input tensor's type
    outputs: np.ndarray  # (count, *output shape) as TFLM computed them
    labels: list  # true label per vector, or None entries for synthetic inputs
    source: str  # where the inputs came from
    interpreter: str  # the TFLM build that computed the outputs ("tflite-micro 0.dev...")
    scores: np.ndarray | None = None  # an anomaly detector's score of each vector (float64)
    raw: "RawVector | None" = None  # a vector that starts from raw input (audio: PCM)
    raw_sample: "RawSample | None" = None  # a vector as raw float values (sensor rows, pixels)


@dataclass(frozen=True)
class RawVector:
    """Golden vector ``vector`` as raw input: a 16-bit PCM clip, and the int16 features
    the front end must compute from it (they map to that vector's int8 input)."""

    vector: int
    pcm: np.ndarray  # int16 (clip samples,)
    features: np.ndarray  # int16 (frames * outputs,)
    source: str  # which clip


@dataclass(frozen=True)
class RawSample:
    """Golden vector ``vector`` as the raw values ``Classify(const float* raw)`` takes (sensor
    rows, pixels: as the training data stored them, before standardization); the self-test
    runs the runner's raw -> int8 code on them and must get that vector's input exactly."""

    vector: int
    values: np.ndarray  # float32, flattened (channels innermost)
    source: str  # which sample
    margin: float  # closest distance, in input steps, of a value to a rounding boundary


def write_golden_header(vectors: GoldenVectors, info: ModelInfo, ident: str,
                        out_dir: str | Path) -> Path:
    """Write ``<ident>_golden.h`` with the inputs and outputs as byte arrays."""
    file_name = f"{ident}_golden.h"
    inputs = [{"label": label, "body": _indent(format_bytes(v.tobytes()))}
              for v, label in zip(vectors.inputs, vectors.labels)]
    outputs = [{"top": int(np.argmax(o)), "body": _indent(format_bytes(o.tobytes()))}
               for o in vectors.outputs]
    text = render("common/golden.h.j2", file_name=file_name, name=ident, macro=ident.upper(),
                  guard=f"{ident.upper()}_GOLDEN_H_", tool_version=__version__,
                  interpreter=vectors.interpreter, golden_count=len(inputs),
                  golden_source=vectors.source, input_bytes=info.inputs[0].nbytes,
                  output_bytes=info.outputs[0].nbytes, inputs=inputs, outputs=outputs,
                  scores=None if vectors.scores is None else [c_double(s) for s in vectors.scores],
                  raw=None if vectors.raw is None else {
                      "vector": vectors.raw.vector, "source": vectors.raw.source,
                      "pcm": _indent(_int_lines(vectors.raw.pcm)),
                      "pcm_count": len(vectors.raw.pcm),
                      "features": _indent(_int_lines(vectors.raw.features)),
                      "feature_count": len(vectors.raw.features)},
                  raw_sample=None if vectors.raw_sample is None else {
                      "vector": vectors.raw_sample.vector, "source": vectors.raw_sample.source,
                      "count": int(vectors.raw_sample.values.size),
                      "margin": f"{vectors.raw_sample.margin:.3g}",
                      **_raw_values(vectors.raw_sample.values)})
    return write_text(Path(out_dir) / file_name, text)


def _int_lines(values: np.ndarray, per_line: int = 16) -> str:
    v = [str(int(x)) for x in np.asarray(values).reshape(-1)]
    return "\n".join(", ".join(v[i:i + per_line]) + "," for i in range(0, len(v), per_line))


def _raw_values(values: np.ndarray) -> dict:
    """The smallest C type that holds the raw values exactly (pixels: uint8_t, integer
    sensor counts: int16_t, else float) and the values as C lines."""
    v = np.asarray(values, np.float32).reshape(-1)
    for ctype, dtype in (("uint8_t", np.uint8), ("int16_t", np.int16)):
        limits = np.iinfo(dtype)
        if np.all(v == np.round(v)) and v.min() >= limits.min and v.max() <= limits.max:
            return {"ctype": ctype, "body": _indent(_int_lines(v.astype(dtype)))}
    return {"ctype": "float", "body": _indent(_float_lines(v))}


def _float_lines(values: np.ndarray, per_line: int = 8) -> str:
    v = [c_float(x) for x in np.asarray(values, np.float32).reshape(-1)]
    return "\n".join(", ".join(v[i:i + per_line]) + "," for i in range(0, len(v), per_line))


def _indent(body: str) -> str:
    return "\n".join("  " + line for line in body.splitlines())
