"""The TFLM harness: exact arena, parallel runs equal to one-process runs, crash safety."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tflm_pipeline.tflite import quant
from tflm_pipeline.tflm import interpreter
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.tflite.model_info import read_model

PROBE = textwrap.dedent("""
    import sys, numpy as np
    from tflite_micro.python.tflite_micro import runtime
    model = open(sys.argv[1], "rb").read()
    it = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], d["dtype"]), 0)
    it.invoke()
""")


def _tflm_accepts(model_path, size) -> bool:
    return subprocess.run([sys.executable, "-c", PROBE, str(model_path), str(size)],
                          capture_output=True).returncode == 0


def test_arena_is_the_smallest_that_works(tmp_path, trained_lenet):
    path = tmp_path / "m.tflite"
    path.write_bytes(trained_lenet["qat_tflite"])
    arena = interpreter.find_arena_size(trained_lenet["qat_tflite"])
    assert arena.bytes % 16 == 0 and "64-bit host" in arena.basis
    assert _tflm_accepts(path, arena.bytes)
    assert not _tflm_accepts(path, arena.bytes - 16)


def test_parallel_run_equals_per_sample_loop(trained_lenet, digits):
    model = trained_lenet["ptq_tflite"]
    info = read_model(model)
    x, _ = digits.inputs("test")
    q = quant.quantize(x, info.inputs[0])
    both = interpreter.run(model, q, workers=2)[0]
    one = interpreter.run(model, q, workers=1)[0]
    np.testing.assert_array_equal(both, one)
    # and equal to the interpreter driven directly in this test
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model, arena_size=64 * 1024)
    for i in (0, 57, len(q) - 1):
        it.set_input(q[i:i + 1], 0)
        it.invoke()
        np.testing.assert_array_equal(it.get_output(0)[0], both[i])


def test_quantize_rounds_half_away_from_zero_and_saturates():
    from tflm_pipeline.tflite.model_info import TensorInfo

    t = TensorInfo(0, "x", "INT8", (1, 6), None, scales=(0.5,), zero_points=(3,))
    x = np.array([0.0, 0.25, -0.25, 0.75, 1e9, -1e9], np.float32)
    q = quant.quantize(x, t)
    assert q.dtype == np.int8
    # std::round semantics (NumPy's own np.round would give 0, -0, 2 for the middle three)
    assert q.tolist() == [3, 4, 2, 5, 127, -128]
    np.testing.assert_allclose(quant.dequantize(q[:4], t), [0.0, 0.5, -0.5, 1.0])


def test_crash_in_tflm_is_contained(hello_world_int8):
    # A 100-byte arena makes this TFLM build segfault (measured); the caller must survive.
    x = np.zeros((4, 1), np.int8)
    with pytest.raises(TflmpError, match="crashed|could not run"):
        interpreter.run(hello_world_int8, x, arena_size=100)


def test_input_type_and_shape_are_checked(hello_world_int8):
    with pytest.raises(TflmpError, match="is INT8; got float32"):
        interpreter.run(hello_world_int8, np.zeros((2, 1), np.float32))
    with pytest.raises(TflmpError, match="has shape"):
        interpreter.run(hello_world_int8, np.zeros((2, 3), np.int8))
