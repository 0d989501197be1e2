"""Assertions for users' own tests: their model's outputs in the real TFLM interpreter.

As a pytest plugin (installed with tflmp, entry point ``pytest11``) it provides the
``tflm`` fixture::

    def test_my_model(tflm):
        tflm.assert_matches_goldens("model_int8.tflite", inputs, expected_int8)
        tflm.assert_close_to_float("model_int8.tflite", x_float, keras_model.predict(x_float),
                                   atol=0.05)

The functions work without pytest too.  TFLM runs in child processes, so a model that
crashes the interpreter fails the test instead of killing the test session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tflite.model_info import read_model, read_model_bytes
from .tflite.quant import dequantize, quantize
from .tflm import interpreter


def _model(model: bytes | str | Path) -> bytes:
    return model if isinstance(model, (bytes, bytearray)) else read_model_bytes(model)


def run(model: bytes | str | Path, inputs: np.ndarray) -> np.ndarray:
    """Raw outputs of TFLM for ``inputs`` (float inputs are quantized first)."""
    model = _model(model)
    info = read_model(model)
    x = np.asarray(inputs)
    if x.dtype != info.inputs[0].dtype:
        x = quantize(x, info.inputs[0])
    return interpreter.run(model, x.reshape((-1, *info.inputs[0].shape[1:])), info=info)[0]


def assert_matches_goldens(model, inputs: np.ndarray, expected: np.ndarray,
                           tolerance: int = 0) -> None:
    """TFLM's outputs equal ``expected`` (raw int8/uint8 values) within ``tolerance``."""
    got = run(model, inputs).astype(np.int64)
    want = np.asarray(expected).reshape(got.shape).astype(np.int64)
    diff = np.abs(got - want)
    if diff.max() > tolerance:
        sample = int(np.unravel_index(diff.argmax(), diff.shape)[0])
        raise AssertionError(
            f"TFLM output differs from the golden by up to {int(diff.max())} (tolerance "
            f"{tolerance}) in {int((diff.reshape(len(diff), -1).max(1) > tolerance).sum())} of "
            f"{len(diff)} samples; first worst sample {sample}")


def assert_close_to_float(model, inputs: np.ndarray, reference: np.ndarray,
                          atol: float, agreement: float | None = None) -> None:
    """Dequantized TFLM outputs are within ``atol`` (mean absolute) of a float reference
    (e.g. the Keras model's outputs); optionally the argmax agrees on at least
    ``agreement`` of the samples."""
    model = _model(model)
    info = read_model(model)
    got = dequantize(run(model, inputs), info.outputs[0]).reshape(len(reference), -1)
    ref = np.asarray(reference, np.float32).reshape(len(reference), -1)
    err = float(np.abs(got - ref).mean())
    if err > atol:
        raise AssertionError(f"TFLM outputs are {err:.4g} from the float reference on average "
                             f"(allowed {atol})")
    if agreement is not None:
        share = float((got.argmax(1) == ref.argmax(1)).mean())
        if share < agreement:
            raise AssertionError(f"TFLM's top class agrees with the float reference on "
                                 f"{share:.2%} of samples (required {agreement:.2%})")


class _Tflm:
    run = staticmethod(run)
    assert_matches_goldens = staticmethod(assert_matches_goldens)
    assert_close_to_float = staticmethod(assert_close_to_float)


try:
    import pytest
except ImportError:  # the plugin needs pytest; the functions above do not
    pytest = None

if pytest is not None:
    @pytest.fixture
    def tflm():
        """TFLM assertions for the test: run, assert_matches_goldens, assert_close_to_float."""
        return _Tflm()
