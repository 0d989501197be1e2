"""``<name>_golden.h``: inputs and the exact outputs TFLM gives for them, for the boot
self-test that proves the board computes what tflmp verified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, emulate
from ..artifacts import write_text
from ..data import Dataset
from ..model_info import ModelInfo
from .c_array import format_bytes
from .templates import render

DEFAULT_COUNT = 4


@dataclass
class GoldenVectors:
    inputs: np.ndarray  # (count, *input shape) in the input tensor's type
    outputs: np.ndarray  # (count, *output shape) as TFLM computed them
    labels: list  # true label per vector, or None entries for synthetic inputs
    source: str  # where the inputs came from


def golden_vectors(model: bytes, info: ModelInfo, dataset: Dataset | None = None,
                   count: int = DEFAULT_COUNT) -> GoldenVectors:
    """Test-set samples of distinct classes when a dataset is given, else seeded random
    inputs; outputs from the TFLM interpreter."""
    t_in = info.inputs[0]
    if dataset is not None:
        x, y = dataset.inputs("test")
        picks = _distinct_classes(y, count)
        inputs = emulate.quantize(x[picks].reshape((len(picks), *t_in.shape[1:])), t_in)
        labels = [int(y[i]) for i in picks]
        source = f"{dataset.name} test samples {', '.join(str(i) for i in picks)}"
    else:
        rng = np.random.default_rng(int(info.sha256[:8], 16))
        limits = np.iinfo(t_in.dtype)
        inputs = rng.integers(limits.min, limits.max + 1, size=(count, *t_in.shape[1:]),
                              endpoint=False).astype(t_in.dtype)
        labels = [None] * count
        source = "seeded random inputs"
    outputs = emulate.run(model, inputs, info=info, workers=1)[0]
    return GoldenVectors(inputs, outputs, labels, source)


def write_golden_header(vectors: GoldenVectors, info: ModelInfo, ident: str,
                        out_dir: str | Path) -> Path:
    file_name = f"{ident}_golden.h"
    inputs = [{"label": label, "body": _indent(format_bytes(v.tobytes()))}
              for v, label in zip(vectors.inputs, vectors.labels)]
    outputs = [{"top": int(np.argmax(o)), "body": _indent(format_bytes(o.tobytes()))}
               for o in vectors.outputs]
    text = render("common/golden.h.j2", file_name=file_name, name=ident, macro=ident.upper(),
                  guard=f"{ident.upper()}_GOLDEN_H_", tool_version=__version__,
                  tflm_version=emulate.tflm_version(), golden_count=len(inputs),
                  golden_source=vectors.source, input_bytes=info.inputs[0].nbytes,
                  output_bytes=info.outputs[0].nbytes, inputs=inputs, outputs=outputs)
    return write_text(Path(out_dir) / file_name, text)


def _distinct_classes(y: np.ndarray, count: int) -> list[int]:
    picks, seen = [], set()
    for i, label in enumerate(y.tolist()):
        if label not in seen:
            seen.add(label)
            picks.append(i)
        if len(picks) == count:
            break
    for i in range(len(y)):  # fewer classes than vectors: fill with the next samples
        if len(picks) == count:
            break
        if i not in picks:
            picks.append(i)
    return sorted(picks)


def _indent(body: str) -> str:
    return "\n".join("  " + line for line in body.splitlines())
