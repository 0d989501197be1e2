"""The offline memory plan: the search, the metadata TFLM reads, and the proof in TFLM that
the arena shrinks by what the plan says while every output stays bit for bit."""

import itertools
import random
import re

import flatbuffers
import numpy as np
import pytest

from conftest import run_cli, shared
from tflm_pipeline.mcu import arena, arena_plan
from tflm_pipeline.tflite import memory_plan, offline_plan
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.tflm import interpreter

# The audio preprocessor's SignalRfft asks for fft_length * sizeof(int16) = 1024 bytes of
# scratch (signal/micro/kernels/rfft.cc) at op 3, which tflmp's release table lacks.
AUDIO = "audio_preprocessor_int8.tflite"
AUDIO_SCRATCH = {3: [1024]}


def _no_overlap(info, offsets):
    """No two tensors alive at the same op share a byte."""
    bufs = [b for b in memory_plan.plan(info).buffers if b.tensor is not None]
    for a, b in itertools.combinations(bufs, 2):
        if a.first <= b.last and b.first <= a.last:
            oa, ob = offsets[a.tensor], offsets[b.tensor]
            assert oa + a.size <= ob or ob + b.size <= oa, (a, b)


def test_tflm_keeps_the_offsets_and_fits_scratch_around_them_as_predicted():
    model = shared("models", AUDIO).read_bytes()
    info = read_model(model)
    # planned without the RFFT scratch, the tensors meet their bound (greedy: 3,040 B) ...
    plan = offline_plan.compute(info)
    assert plan.greedy_bytes == 3040 and plan.planned_bytes == plan.lower_bound == 2096
    assert plan.optimal
    _no_overlap(info, plan.offsets)
    planned = offline_plan.write(model, plan.offsets)
    again = read_model(planned)
    assert again.offline_plan == plan.offsets
    assert memory_plan.plan(again, offline=False).planned_bytes == 3040
    # ... but TFLM fits the 1 KiB scratch above them: 3,120 B, as memory_plan predicts,
    # 80 B worse than greedy; which is why a plan needs every kernel's scratch known
    predicted = memory_plan.plan(again, AUDIO_SCRATCH)
    assert predicted.offline_planned and predicted.planned_bytes == 3120
    before = interpreter.recorded_allocations(model, 1 << 16)
    after = interpreter.recorded_allocations(planned, 1 << 16)
    assert (before.head, after.head) == (3040, 3120) and after.tail == before.tail
    # TFLM's preserve-all-tensors mode refuses offline plans: all_tensors strips it
    x = np.random.default_rng(0).integers(-2000, 2000, (1, 480)).astype(np.int16)
    (plain,), (stripped,) = (interpreter.all_tensors(m, x) for m in (model, planned))
    assert plain.keys() == stripped.keys()
    assert all(np.array_equal(plain[t], stripped[t]) for t in plain)
    # tuned with the scratch, the plan cannot beat greedy here, and says so
    tuned = offline_plan.compute(info, AUDIO_SCRATCH)
    assert tuned.lower_bound == tuned.planned_bytes == 3040 and not tuned.worthwhile


def test_metadata_is_tflms_format_replaced_and_stripped():
    model = shared("models", "hello_world_int8.tflite").read_bytes()
    info = read_model(model)
    offsets = offline_plan.compute(info).offsets
    planned = offline_plan.write(model, offsets)
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.Model.GetRootAs(planned, 0)
    entries = [m.Metadata(k) for k in range(m.MetadataLength())
               if m.Metadata(k).Name() == b"OfflineMemoryAllocation"]
    assert len(entries) == 1
    data = m.Buffers(entries[0].Buffer()).DataAsNumpy()
    words = np.frombuffer(data.tobytes(), "<i4")
    assert list(words[:3]) == [1, 1, len(info.tensors)] and tuple(words[3:]) == offsets
    for k in range(m.BuffersLength()):  # every buffer's data on a 16-byte boundary
        b = m.Buffers(k)
        if b.DataLength():
            assert b._tab.Vector(b._tab.Offset(4)) % 16 == 0
    # a second plan replaces the first; strip removes it; the model is otherwise the same
    shifted = tuple(o + 16 if o >= 0 else o for o in offsets)
    replanned = offline_plan.write(planned, shifted)
    assert read_model(replanned).offline_plan == shifted
    stripped = offline_plan.strip(replanned)
    assert read_model(stripped).offline_plan is None
    a, b = read_model(model), read_model(stripped)
    assert (a.tensors, a.operators, a.input_indices) == (b.tensors, b.operators, b.input_indices)


@pytest.mark.parametrize("words, message", [
    ([1, 1, 3, 0, 0, 0], "offline memory plan has 3 offsets for 10 tensors"),
    ([1, 1, 10, 0, -16, *[-1] * 8], "places a tensor at offset -16"),
    ([1, 1, 9, 0], "does not hold [version, subgraphs, n, n offsets]"),
])
def test_a_plan_tflm_would_refuse_or_misuse_is_one_line(words, message):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    from tflm_pipeline.errors import TflmpError

    model = shared("models", "hello_world_int8.tflite").read_bytes()  # 10 tensors
    planned = schema.ModelT.InitFromPackedBuf(offline_plan.write(model, [-1] * 10), 0)
    entry = next(m for m in planned.metadata if m.name == b"OfflineMemoryAllocation")
    planned.buffers[entry.buffer].data = np.frombuffer(np.array(words, "<i4").tobytes(),
                                                       np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(planned.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(TflmpError, match=re.escape(message)):
        read_model(bytes(builder.Output()))


def test_greedy_with_offline_offsets_is_tflms_order():
    # offline buffers keep their offsets; the online ones fill the first gap around them
    reqs = [(32, 0, 1), (16, 0, 1), (16, 1, 2), (48, 2, 3)]
    assert memory_plan.greedy_offsets(reqs, [64, None, 0, None]) == [64, 16, 0, 16]
    # an offline plan may overlap buffers whose lifetimes do not
    assert memory_plan.greedy_offsets([(16, 0, 0), (16, 1, 1)], [0, 0]) == [0, 0]


def test_exact_search_finds_the_best_order():
    rng = random.Random(3)
    for _ in range(5):
        reqs = [(16 * rng.randint(1, 6), a, a + rng.randint(0, 3))
                for a in (rng.randint(0, 5) for _ in range(6))]
        best = min(max(o + r[0] for o, r in zip(memory_plan.place_lowest(reqs, list(p)), reqs))
                   for p in itertools.permutations(range(6)))
        assert offline_plan.place(reqs).peak == best
        # the exhaustive search alone, told of no bound to stop at, finds it too
        search = offline_plan._Search(reqs, [], 0)
        search.best = 10 ** 9
        order, finished = offline_plan._branch_and_bound(search, list(range(6)))
        assert finished and search.best == best


def test_models_whose_scratch_is_unknown_keep_tflms_plan():
    model = shared("models", AUDIO).read_bytes()
    same, outcome = arena_plan.plan_model(model)
    assert same == model and not outcome.applied and "SignalRfft" in outcome.reason
    model = shared("models", "person_detect.tflite").read_bytes()
    same, outcome = arena_plan.plan_model(model)
    assert same == model and not outcome.applied and "lower bound" in outcome.reason


@pytest.fixture(scope="module")
def branchy_model():
    """A small MobileNet-like int8 model (stride-2 conv, depthwise and pointwise layers that
    double the channels): TFLM's greedy plan needs a third more than the bound."""
    from tflm_pipeline.quantize.int8 import to_int8_tflite
    from tflm_pipeline.tf_env import load

    _, keras, _ = load()
    layers = keras.layers
    x = inp = keras.Input((24, 24, 3), batch_size=1)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, layers.Dense(4)(x))
    calibration = np.random.default_rng(0).random((16, 24, 24, 3), dtype=np.float32)
    return to_int8_tflite(model, calibration)


@pytest.mark.slow  # converts a Keras model
def test_tflm_arena_drops_by_the_plan_and_outputs_are_bit_identical(branchy_model, tmp_path):
    model = branchy_model
    planned, outcome = arena_plan.plan_model(model)
    plan = outcome.plan
    assert outcome.applied and plan.saved_bytes == 1152 and plan.planned_bytes == plan.lower_bound
    before = interpreter.recorded_allocations(model, 1 << 16)
    after = interpreter.recorded_allocations(planned, 1 << 16)
    # arena_used_bytes() = head + tail: it drops by exactly what the plan says
    assert (before.head, after.head) == (plan.greedy_bytes, plan.planned_bytes)
    assert (before.head + before.tail) - (after.head + after.tail) == plan.saved_bytes
    info = read_model(model)
    x = np.random.default_rng(1).integers(-128, 128, (16, 24, 24, 3)).astype(np.int8)
    (y0,), (y1,) = (interpreter.run(m, x, workers=1) for m in (model, planned))
    assert y0.dtype == np.int8 and np.array_equal(y0, y1)
    # the derived 32-bit arena follows the plan; profile tells what a plan would save
    e0, e1 = arena.estimate(info), arena.estimate(read_model(planned))
    assert e0.used - e1.used == plan.saved_bytes
    from tflm_pipeline.mcu.device_profile import device_profile

    assert device_profile(info, 0).memory.offline_plan_bytes == plan.planned_bytes
    after_memory = device_profile(read_model(planned), 0).memory
    assert after_memory.offline_planned and after_memory.offline_plan_bytes is None
    # the CLI writes the plan by default and says so; --no-offline-plan keeps the model
    src = tmp_path / "branchy.tflite"
    src.write_bytes(model)
    p = run_cli("convert", src, "--c-array", "--out", tmp_path / "a")
    assert p.returncode == 0 and "saves 1,152 B" in p.stdout, p.stderr
    assert (tmp_path / "a" / "branchy_int8.tflite").read_bytes() == planned
    p = run_cli("convert", src, "--c-array", "--out", tmp_path / "b", "--no-offline-plan")
    assert p.returncode == 0 and "offline" not in p.stdout
    assert not (tmp_path / "b" / "branchy_int8.tflite").exists()
    # a firmware project carries the plan and is sized for it
    from tflm_pipeline.commands.firmware import firmware

    with_plan = firmware(src, "esp-idf", tmp_path / "fw", name="branchy").project
    without = firmware(src, "esp-idf", tmp_path / "fw0", name="branchy",
                       offline_plan=False).project
    assert (without.arena.planned, with_plan.arena.planned) == (plan.greedy_bytes,
                                                                plan.planned_bytes)
    assert any("offline memory plan" in n for n in with_plan.notes)
