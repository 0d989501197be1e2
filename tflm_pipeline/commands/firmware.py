"""``tflmp firmware``: a ready-to-build project for one target from a run or a model.

Checks first, writes second: the model must be full int8, every op must exist in the
TFLM releases the target links, and the known kernel bugs of those releases
(``firmware/known_issues.yaml``) are remedied or refuse the model: Dense layers are
quantized the way that TFLM computes correctly (a run's model is re-converted, and
re-scored in TFLM with the run's task, when needed), Dense outputs of rank > 2 are
computed in 2-D where the kernel reads only that.  Then the arena is sized for the
target, golden vectors are computed in the TFLM interpreter, and codegen writes the
project.  ``check`` compiles it against
a TFLM source tree and runs its self-test on this host and under QEMU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codegen.c_literals import c_identifier
from ..codegen.golden import GoldenVectors, RawSample, RawVector
from ..codegen.project import Project, ProjectSpec, check_sketch_folder, write_firmware_project
from ..data import DataSpec, load_dataset, load_run_dataset
from ..data.audio_frontend import Frontend, frontend_for, to_pcm
from ..data.wav_folder import read_wav, split_files
from ..errors import TflmpError
from ..mcu.arena_plan import plan_model
from ..mcu.build_check import CheckResult, check_project, find_tree
from ..mcu.known_issues import (REFUSE, REQUANTIZE, RESHAPE_DENSE, FiredRule, fired_rules,
                                 other_chip_rules, refusal)
from ..mcu.targets import get_target
from ..models import task_for
from ..quantize.int8 import representative_samples, to_int8_tflite
from ..quantize.qat import load_qat
from ..record import QAT_INT8
from ..runs import resolve
from ..tasks import (AUTOENCODER, CLASSIFICATION, Task, Threshold, choose_positive_threshold,
                     get_task)
from ..tflite.dense_reshape import dense_outputs_2d, high_rank_dense_layers
from ..tflite.model_info import per_channel_dense_layers, read_model, read_model_bytes
from ..tflite.quant import quantize, rounding_margin
from ..tflite.requantize import per_tensor_dense
from ..tflm import interpreter
from ..tflm.harness import anomaly_threshold, evaluate
from ..training.keras_io import load_keras_model

log = logging.getLogger(__name__)
GOLDEN_COUNT = 4
RANDOM_INPUTS = 64  # inputs a re-quantization is measured on when no data is given


@dataclass
class FirmwareResult:
    project: Project
    checks: list[CheckResult] = field(default_factory=list)  # with check=True
    known_issues: list[FiredRule] = field(default_factory=list)  # rules applied (remedied)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {"project": self.project.to_dict(), "checks": [c.to_dict() for c in self.checks],
                "known_issues": [r.to_dict() for r in self.known_issues]}


def firmware(source: str | Path, target: str, out_dir: str | Path | None = None, *,
             name: str | None = None, task: str | None = None,
             threshold: float | str | None = None,
             labels: list[str] | None = None, dataset: str | None = None,
             data_dir: str | None = None, check: bool = False,
             tflm_dir: str | Path | None = None, qemu: bool | None = None,
             offline_plan: bool = True) -> FirmwareResult:
    """Write the ``target`` project for ``source`` (run folder or ``.tflite``); with
    ``check``, build it against the TFLM tree ``tflm_dir`` and run its self-test (on
    this host, and under QEMU unless ``qemu`` is False).

    A model from a run has the run's task and class names.  For any other ``.tflite``,
    ``task`` says what its output is (default classification), ``labels`` names the
    classes (default ``class_0`` ... ``class_<N-1>``), and ``dataset`` gives test data
    for the golden vectors and for measuring a Dense re-quantization.  ``offline_plan``
    writes a tighter tensor placement than TFLM's into the model when it saves arena
    bytes on the target's TFLM releases (:mod:`..mcu.arena_plan`).

    An anomaly detector's firmware reports a verdict against a threshold: a number, or
    "auto" (chosen on the validation split of the run's data or of ``dataset``); by
    default the run's, re-chosen when the model had to be re-converted for the target.
    """
    if check and not tflm_dir:
        raise TflmpError("--check needs --tflm-dir PATH: a TFLM source tree (e.g. the src/ of "
                         "your Arduino TFLM library, or esp-tflite-micro)")
    if tflm_dir and not check:
        raise TflmpError("--tflm-dir is the tree --check builds against; add --check, or drop "
                         "--tflm-dir")
    # a tree it cannot build is refused before anything is written
    tree = find_tree(Path(tflm_dir)) if check else None
    t = get_target(target)
    src = resolve(source)
    run = src.run
    model = read_model_bytes(src.model_path)
    info = read_model(model)
    ident = c_identifier(name if name is not None else src.default_name)
    out = Path(out_dir) if out_dir is not None else (
        run.firmware_dir(t.name) if run is not None else Path("build") / "firmware" / t.name)
    check_sketch_folder(t, out)
    if not info.is_full_int8:
        raise TflmpError(f"{src.model_path.name} has {info.inputs[0].type} input / "
                         f"{info.outputs[0].type} output; firmware needs a full-int8 model "
                         "(tflmp train writes one)")
    spec, dataset = _dataset(run, dataset, data_dir)
    preprocessing = src.preprocessing or (dataset.preprocessing if dataset else None)
    the_task, class_names = _task_and_labels(run, preprocessing, info, task, labels)
    notes: list[str] = []
    fired = _apply_known_issues(info, t)  # a rule that refuses: one line, nothing written
    model, info, reconverted = _fit_dense_quantization(model, info, src, t, the_task, dataset,
                                                       fired)
    if reconverted:
        notes.append(reconverted)
    model, info = _reshape_dense(model, info, fired)
    left = fired_rules(info, t.platforms)
    if left:  # the remedy must clear its rule
        raise TflmpError(f"known issue {left[0].id} still applies after its remedy")
    notes += [f"known issue {r.id} ({r.issue.source}) {r.action}"
              for r in other_chip_rules(info, t.platforms)]
    if offline_plan:  # placement only: outputs (and so the threshold below) do not change
        model, outcome = plan_model(model, t.releases[0])
        if outcome.applied:
            info = read_model(model)
            notes.append(f"offline memory plan in the model: {outcome.reason}")
    chosen = _threshold(the_task, threshold, run, model, info, dataset, reconverted)
    if chosen is not None:
        kind = "anomaly" if the_task.firmware_output == "anomaly_score" else "class-1"
        notes.append(f"{kind} threshold {chosen.value:.6g}: {chosen.method}")
    audio = _AudioFrontend.of(preprocessing, info)
    ops = t.registrations(info)  # every op exists in this TFLM, or a clear error
    arena = t.arena_for(info)
    if arena.unmeasured_ops:
        notes.append("ops without measured 32-bit bookkeeping ("
                     + ", ".join(arena.unmeasured_ops) + ") were sized generously; "
                     "check arena_used_bytes on the board or with --check")
    if not arena.measured_release:
        notes.append("the arena is derived from TFLM's Cortex-M sizes plus an allowance for "
                     "this board's architecture, which cannot be measured here; the board "
                     "prints arena_used_bytes at boot")
    project = write_firmware_project(ProjectSpec(
        target=t, ident=ident, out_dir=out, model=model, info=info, source=src.model_path.name,
        preprocessing=preprocessing, output=the_task.firmware_output,
        labels=class_names, ops=ops, arena=arena,
        vectors=_golden_vectors(model, info, dataset, the_task, audio, spec,
                                raw_floats=dataset is not None
                                and preprocessing == dataset.preprocessing),
        reconverted=reconverted, notes=notes, threshold=chosen,
        audio_frontend=audio.made.c_tables(audio.levels) if audio is not None else None,
        stream_hop=_stream_hop(run),
        channel_names=dataset.channel_names if dataset is not None else None))
    checks = check_project(project.out_dir, tree, qemu=qemu) if tree is not None else []
    return FirmwareResult(project, checks, fired)


def _stream_hop(run) -> int | None:
    """A sensor-window run's stride: the hop of the firmware's streaming helpers."""
    if run is None or not getattr(run.config, "window", None):
        return None
    return int(run.config.stride or run.config.window)


def _apply_known_issues(info, target) -> list[FiredRule]:
    """The known-issues rules the model meets on the target (firmware/known_issues.yaml);
    a ``refuse`` rule raises its one-line reason."""
    fired = fired_rules(info, target.platforms)
    for rule in fired:
        if rule.issue.remedy == REFUSE:
            raise refusal(rule, f"{target.name} ({', '.join(rule.platforms)})")
    return fired


def _reshape_dense(model: bytes, info, fired: list[FiredRule]):
    """Dense layers with an output of rank > 2 computed as [rows, units] and reshaped,
    when a known-issues rule asks for it; the outputs are compared in TFLM on seeded
    random inputs and must be identical."""
    rule = next((r for r in fired if r.issue.remedy == RESHAPE_DENSE), None)
    layers = high_rank_dense_layers(info)
    if rule is None or not layers:
        return model, info
    new = dense_outputs_2d(model)
    new_info = read_model(new)
    x = _random_inputs(info.inputs[0], RANDOM_INPUTS, 0)
    before, after = (interpreter.run(m, x, info=i) for m, i in ((model, info), (new, new_info)))
    if not all(np.array_equal(a, b) for a, b in zip(before, after)):
        raise TflmpError("computing the Dense layers as [rows, units] changed the model's "
                         "outputs in TFLM; please report this model")
    rule.action = (f"{len(layers)} Dense layer(s) with an output of rank > 2 computed as "
                   f"[rows, units] and reshaped back (RESHAPE): outputs identical in TFLM on "
                   f"{RANDOM_INPUTS} random inputs")
    return new, new_info


def _random_inputs(t_in, count: int, seed: int) -> np.ndarray:
    """``count`` seeded random int inputs of the model input ``t_in`` (batch dimension
    replaced by ``count``)."""
    rng = np.random.default_rng(seed)
    limits = np.iinfo(t_in.dtype)
    return rng.integers(limits.min, limits.max + 1, (count, *t_in.shape[1:]),
                        endpoint=False).astype(t_in.dtype)


@dataclass(frozen=True)
class _AudioFrontend:
    """An audio model's front end with the int16 feature -> int8 input levels of the model
    the project runs (the same map training's preprocessing and quantization give)."""

    made: Frontend
    levels: tuple[int, np.ndarray]

    @classmethod
    def of(cls, preprocessing, info) -> "_AudioFrontend | None":
        made = frontend_for(preprocessing.features if preprocessing is not None else None)
        if made is None:
            return None
        return cls(made, made.input_levels(preprocessing, lambda x: quantize(x, info.inputs[0])))

    def raw_vector(self, spec: DataSpec | None, preprocessing, pick: int, vector: int,
                   expected_input: np.ndarray) -> RawVector | None:
        """Test clip ``pick`` of a WAV-folder dataset as PCM with the features the front end
        gives; None without the clip files."""
        if spec is None or not spec.path.is_dir():
            return None
        _, parts = split_files(spec.path, seed=spec.seed, split=spec.split,
                               group_column=spec.group_column)
        path = parts["test"][0][pick]
        clip = int(preprocessing.features["clip_samples"])
        samples = to_pcm(read_wav(path, self.made.params.sample_rate))
        pcm = np.zeros(clip, np.int16)
        pcm[:min(clip, len(samples))] = samples[:clip]
        features = self.made.features(pcm).reshape(-1)
        if not np.array_equal(Frontend.inputs(self.levels, features),
                              expected_input.reshape(-1)):
            raise RuntimeError(f"the front end's int8 inputs of {path} differ from the "
                               "dataset's: the features and the model went out of step")
        return RawVector(vector, pcm, features, f"test clip {path.parent.name}/{path.name}")


def _dataset(run, dataset: str | None, data_dir: str | None):
    """The data's spec and the data, with its splits: the run's, or the data given for a
    model from outside a run (None, None without)."""
    if run is not None:
        if dataset is not None:
            raise TflmpError("a run's firmware uses the run's data; drop --dataset")
        return DataSpec.of(run.config), load_run_dataset(run)
    if dataset is None:
        return None, None
    spec = DataSpec(dataset, data_dir)
    spec.check()
    return spec, load_dataset(spec)


def _task_and_labels(run, preprocessing, info, task: str | None, labels: list[str] | None):
    """The task the project's runner serves and its class names (empty unless it
    classifies)."""
    if run is not None:
        run_task = get_task(task_for(run.config))
        if task is not None and task != run_task.name:
            raise TflmpError(f"the run's model is a {run_task.name} model; drop --task {task}")
        the_task = run_task
    else:
        the_task = get_task(task) if task is not None else CLASSIFICATION
    if the_task.firmware_output != "class":
        if labels:
            raise TflmpError(f"--labels names classes; a {the_task.name} model has none")
        return the_task, []
    outputs = info.outputs[0].elements
    names = list(labels) if labels else (preprocessing.labels if preprocessing
                                         else [f"class_{i}" for i in range(outputs)])
    if len(names) != outputs:
        raise TflmpError(f"{len(names)} labels for a model with {outputs} output values; give "
                         f"one label per output with --labels")
    return the_task, names


def _threshold(task: Task, given: float | str | None, run, model: bytes, info, dataset,
               reconverted: str | None) -> Threshold | None:
    """The anomaly threshold the firmware states (None unless ``task`` scores anomalies),
    or a binary classifier's class-1 threshold (None without one)."""
    if task.firmware_output == "class" and info.outputs[0].elements == 2:
        return _positive_threshold(task, given, run, model, info, dataset, reconverted)
    if task.firmware_output != "anomaly_score":
        if given is not None:
            raise TflmpError(f"--threshold is an anomaly detector's or a binary classifier's; "
                             f"a {task.name} model with {info.outputs[0].elements} outputs "
                             "has none")
        return None
    if isinstance(given, (int, float)):
        return Threshold(float(given), "given with --threshold", {})
    recorded = run.record().threshold if run is not None and run.has_record else None
    if given is None and recorded is not None and not reconverted:
        return Threshold.from_dict(recorded)
    if dataset is None:
        raise TflmpError("an anomaly detector's firmware needs its threshold: give --threshold "
                         "VALUE, or --dataset DATA to choose it on that data's validation split")
    x, y = dataset.inputs("val")
    chosen = anomaly_threshold(model, x, y, info=info)
    why = ("re-chosen for the re-converted model: " if reconverted and given is None else "")
    return Threshold(chosen.value, why + chosen.method, chosen.validation)


def _positive_threshold(task: Task, given: float | str | None, run, model: bytes, info,
                        dataset, reconverted: str | None) -> Threshold | None:
    """A binary classifier's class-1 threshold: given, the run's, or chosen on the
    validation split (``auto``, or the run's model re-converted); None for plain argmax."""
    if isinstance(given, (int, float)):
        return Threshold(float(given), "given with --threshold", {})
    recorded = run.record().threshold if run is not None and run.has_record else None
    if given is None and recorded is not None and not reconverted:
        return Threshold.from_dict(recorded)
    if dataset is None or (given is None and recorded is None):
        if given == "auto":
            raise TflmpError("--threshold auto chooses on validation data; give --dataset "
                             "DATA or --threshold VALUE")
        return None
    x, y = dataset.inputs("val")
    scores = evaluate(model, task, {"val": (x, y)}, 2, info=info).outputs["val"][:, 1]
    chosen = choose_positive_threshold(scores, y)
    why = ("re-chosen for the re-converted model: " if reconverted and given is None else "")
    return Threshold(chosen.value, why + chosen.method, chosen.validation)


def _fit_dense_quantization(model: bytes, info, src, target, task: Task, dataset,
                            fired: list[FiredRule]):
    """Re-convert with per-tensor Dense weights when a known-issues rule asks for it
    (TFLM releases that compute per-channel Dense layers wrong); return (model, info, note
    or None) and record the note as the rule's action."""
    rule = next((r for r in fired if r.issue.remedy == REQUANTIZE), None)
    if rule is None:
        return model, info, None
    model, info, note = _per_tensor_dense_model(model, info, src, target, task, dataset)
    rule.action = note
    return model, info, note


def _per_tensor_dense_model(model: bytes, info, src, target, task: Task, dataset):
    layers = per_channel_dense_layers(info)
    run = src.run
    if run is None or not run.has_record:
        return _requantize_dense(model, info, target, task, dataset, layers)

    record = run.record()
    key = run.candidate_key(src.model_path, record.selected)  # which conversion this file is
    if key is None:
        raise TflmpError(f"{src.model_path} has per-channel Dense weights, which "
                         f"{target.tflm_library} computes wrong, and is not a model of the run "
                         f"in {run.path}; pass the run folder so tflmp can re-convert its model")
    keras_model = (load_qat(run.float_model, run.qat_weights) if key == QAT_INT8
                   else load_keras_model(run.float_model))
    x_train, _ = dataset.inputs("train")
    calibration = representative_samples(x_train, run.config.calibration_samples,
                                         run.config.seed)
    model = to_int8_tflite(keras_model, calibration, per_channel_dense=False)
    info = read_model(model)
    x, y = dataset.inputs("test")
    score = evaluate(model, task, {"test": (x, y)}, dataset.preprocessing.num_classes,
                     info=info, label="TFLM per-tensor Dense")["test"][task.metric]
    before = record.scores[key][task.metric]
    return model, info, (f"{_value(score)} {task.metric} on the test set (per-channel Dense: "
                         f"{_value(before)}); re-converted for {target.tflm_library}")


def _requantize_dense(model: bytes, info, target, task: Task, dataset, layers):
    """A model from outside a run: its per-channel Dense weights re-quantized to one scale
    per layer from the int8 weights, and what that changes measured in TFLM (on the
    test split of ``dataset`` when given, else on seeded random inputs)."""
    new = per_tensor_dense(model)
    new_info = read_model(new)
    where = f"{len(layers)} per-channel Dense layer(s) re-quantized to one scale each"
    if dataset is not None:
        x, y = dataset.inputs("test")
        scores = [evaluate(m, task, {"test": (x, y)}, dataset.preprocessing.num_classes,
                           label="TFLM Dense re-quantization")["test"][task.metric]
                  for m in (model, new)]
        return new, new_info, (f"{_value(scores[1])} {task.metric} on the test set of "
                               f"{dataset.name} (per-channel: {_value(scores[0])}); {where} "
                               f"for {target.tflm_library}")
    t_in, t_out = info.inputs[0], info.outputs[0]
    x = _random_inputs(t_in, RANDOM_INPUTS, 0)
    before, after = (interpreter.run(m, x, info=i)[0]
                     for m, i in ((model, info), (new, new_info)))
    steps = int(np.abs(before.astype(np.int32) - after.astype(np.int32)).max())
    agree = task.agreement(after, before)
    same = f", the same top class on {agree:.0%}" if agree is not None else ""
    return new, new_info, (f"outputs change by up to {steps} int8 steps "
                           f"({steps * t_out.scales[0]:.3g} in output units) on "
                           f"{RANDOM_INPUTS} random inputs{same}; {where} for "
                           f"{target.tflm_library} (pass --dataset to measure the accuracy)")


def _value(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _golden_vectors(model: bytes, info, dataset, task: Task, audio: _AudioFrontend | None = None,
                    spec: DataSpec | None = None, raw_floats: bool = False) -> GoldenVectors:
    """Test-set samples of distinct classes when a dataset is given, else seeded random
    inputs; outputs from the TFLM interpreter (and an anomaly detector's scores of them).
    An audio model's first vector also comes as its clip's raw PCM; with ``raw_floats``
    (the project's preprocessing is the dataset's) another model's test sample nearest a
    rounding boundary of the input quantization is one vector, also as its raw values."""
    t_in = info.inputs[0]
    raw_pick = None
    if dataset is not None:
        x, y = dataset.inputs("test")
        picks = _distinct_classes(y, GOLDEN_COUNT)
        if raw_floats and audio is None and len(x):  # raw values reach the board as floats
            picks, raw_pick = _with_raw_pick(picks, y, x, t_in)
        inputs = quantize(x[picks].reshape((len(picks), *t_in.shape[1:])), t_in)
        labels = [int(y[i]) for i in picks]
        source = f"{dataset.name} test samples {', '.join(str(i) for i in picks)}"
    else:
        rng = np.random.default_rng(int(info.sha256[:8], 16))
        limits = np.iinfo(t_in.dtype)
        inputs = rng.integers(limits.min, limits.max + 1, size=(GOLDEN_COUNT, *t_in.shape[1:]),
                              endpoint=False).astype(t_in.dtype)
        labels = [None] * GOLDEN_COUNT
        source = "seeded random inputs"
    outputs = interpreter.run(model, inputs, info=info, workers=1)[0]
    scores = None
    if task.firmware_output == "anomaly_score":
        t_out = info.outputs[0]
        scores = AUTOENCODER.int8_scores(inputs, outputs, (t_in.scales[0], t_in.zero_points[0]),
                                         (t_out.scales[0], t_out.zero_points[0]))
    raw = (audio.raw_vector(spec, dataset.preprocessing, picks[0], 0, inputs[0])
           if audio is not None and dataset is not None else None)
    raw_sample = None
    if raw_pick is not None:
        vector = picks.index(raw_pick)
        values = np.asarray(dataset.raw("test")[0][raw_pick], np.float32).reshape(-1)
        margin = float(rounding_margin(x[raw_pick], t_in).min())
        raw_sample = RawSample(vector, values, f"{dataset.name} test sample {raw_pick}", margin)
    return GoldenVectors(inputs, outputs, labels, source,
                         f"tflite-micro {interpreter.tflm_version()}", scores, raw,
                         raw_sample)


def _with_raw_pick(picks: list[int], y: np.ndarray, x: np.ndarray, t_in) -> tuple[list[int], int]:
    """The golden picks with the test sample whose values come nearest a rounding boundary
    of the input quantization (the hardest raw-input vector) in place of the pick of its
    class (or of the last pick); and that sample."""
    margins = rounding_margin(x.reshape(len(x), -1), t_in).min(axis=1)
    best = int(np.argmin(margins))
    if best not in picks:
        same = [p for p in picks if y[p] == y[best]]
        picks = sorted([p for p in picks if p != (same[0] if same else picks[-1])] + [best])
    return picks, best


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
