"""What ``tflmp tune`` searches, and the limits a trial must keep: no TensorFlow, no Optuna.

A zoo module (or a user's ``.py`` builder) declares its own knobs next to its builder::

    SEARCH_SPACE = {"depth": {"int": [1, 4]}, "base_filters": {"int": [4, 32], "step": 4},
                    "kernel_size": {"choice": [3, 5, 7]}, "dropout": {"float": [0, 0.5]},
                    "lr_decay": {"float": [1e-4, 1e-1], "log": True}}

    def hyper_from_search(params):  # optional: sampled values -> the builder's arguments
        return {"filters": tuple(params["base_filters"] * 2 ** i for i in range(params["depth"]))}

The tuner adds the training knobs (learning rate, batch size, optimizer, epochs, QAT
epochs) and, where the data allows, the input: window length for sensor CSV files, input
resolution for image folders.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from ..config import OPTIMIZERS, RunConfig
from ..errors import TflmpError

MODEL_PREFIX = "model."  # sampled model knobs are named "model.<knob>" in the study
BATCH_SIZES = (8, 16, 32, 64, 128)
MIN_STEPS_PER_EPOCH = 4  # a batch no larger than a quarter of the training set
LR_RANGE = (1e-4, 1e-2)
INPUT_SCALES = (0.5, 0.75, 1.0)  # of the given --window or --image-size


@dataclass(frozen=True)
class Param:
    """One searched knob: an int or float range (optionally stepped or log), or choices."""

    name: str
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, False, ())}


def parse_param(name: str, spec) -> Param:
    """One SEARCH_SPACE entry as a :class:`Param`; a one-line error naming the entry."""
    where = f"search space entry '{name}'"
    if not isinstance(spec, dict):
        raise TflmpError(f"{where} must be a dict like {{'int': [1, 4]}}, not {spec!r}")
    kinds = [k for k in ("int", "float", "choice") if k in spec]
    unknown = set(spec) - {"int", "float", "choice", "step", "log"}
    if len(kinds) != 1 or unknown:
        raise TflmpError(f"{where} needs exactly one of 'int': [low, high], 'float': "
                         f"[low, high] or 'choice': [values] (optional 'step', 'log'), got "
                         f"{spec!r}")
    kind = kinds[0]
    if kind == "choice":
        choices = tuple(spec["choice"]) if isinstance(spec["choice"], (list, tuple)) else ()
        if not choices:
            raise TflmpError(f"{where}: 'choice' needs a non-empty list of values")
        return Param(name, "choice", choices=choices)
    bounds = spec[kind]
    if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
            or bounds[0] > bounds[1]):
        raise TflmpError(f"{where}: '{kind}' needs [low, high] numbers with low <= high, "
                         f"got {bounds!r}")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and (bounds[0] <= 0 or step is not None):
        raise TflmpError(f"{where}: a 'log' range needs low > 0 and no 'step'")
    if step is not None and not (isinstance(step, (int, float)) and step > 0):
        raise TflmpError(f"{where}: 'step' must be a number > 0, got {step!r}")
    if kind == "int":
        return Param(name, "int", int(bounds[0]), int(bounds[1]),
                     int(step) if step is not None else None, log)
    return Param(name, "float", float(bounds[0]), float(bounds[1]),
                 float(step) if step is not None else None, log)


def model_space(module) -> list[Param]:
    """The knobs a zoo module or a user's builder file declares (``SEARCH_SPACE``)."""
    space = getattr(module, "SEARCH_SPACE", None) or {}
    if not isinstance(space, dict):
        raise TflmpError(f"{getattr(module, '__file__', module)}: SEARCH_SPACE must be a dict "
                         "of knob name -> {'int'|'float'|'choice': ...}")
    return [parse_param(MODEL_PREFIX + name, spec) for name, spec in space.items()]


def model_hyper(module, params: dict) -> dict:
    """The builder's keyword arguments for sampled ``params`` (names without the prefix)."""
    knobs = {k[len(MODEL_PREFIX):]: v for k, v in params.items() if k.startswith(MODEL_PREFIX)}
    convert = getattr(module, "hyper_from_search", None)
    hyper = convert(dict(knobs)) if callable(convert) else knobs
    return {k: list(v) if isinstance(v, tuple) else v for k, v in hyper.items()}


@dataclass(frozen=True)
class Limits:
    """What every trial's int8 model must keep.  ``max_flash`` counts the model's
    flatbuffer (the C array); ``max_ram`` its 32-bit tensor arena; ``board`` the whole
    firmware fit of ``tflmp profile`` (arena + input buffer + stack <= RAM, model + TFLM
    kernel code <= flash); ``max_latency_ms`` the upper end of the board's latency band."""

    board: str | None = None
    max_flash: int | None = None
    max_ram: int | None = None
    max_latency_ms: float | None = None

    def check(self) -> None:
        if self.max_latency_ms is not None and not self.board:
            raise TflmpError("--max-latency-ms needs --board (its clock and kernels give the "
                             "latency)")
        for flag, value in (("--max-flash", self.max_flash), ("--max-ram", self.max_ram),
                            ("--max-latency-ms", self.max_latency_ms)):
            if value is not None and not value > 0:
                raise TflmpError(f"{flag} must be positive, got {value}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Footprint:
    """An int8 model's cost on the device, as ``tflmp profile`` figures it."""

    flash_bytes: int  # the model's flatbuffer
    ram_bytes: int  # the 32-bit tensor arena
    latency_ms: float | None = None  # upper end of the board's band (None: no board)
    code_bytes: int | None = None  # TFLM's kernel code (with a board)
    board_fits: bool | None = None
    board_reasons: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["board_reasons"] = list(self.board_reasons)
        return d


def violations(fp: Footprint, limits: Limits) -> list[str]:
    """Why ``fp`` breaks ``limits`` (empty when it keeps them all)."""
    out = []
    if limits.max_flash is not None and fp.flash_bytes > limits.max_flash:
        out.append(f"flash {fp.flash_bytes:,} B > --max-flash {limits.max_flash:,} B")
    if limits.max_ram is not None and fp.ram_bytes > limits.max_ram:
        out.append(f"arena {fp.ram_bytes:,} B > --max-ram {limits.max_ram:,} B")
    if limits.board and fp.board_fits is False:
        out.append(f"does not fit {limits.board}: {'; '.join(fp.board_reasons)}")
    if (limits.max_latency_ms is not None and fp.latency_ms is not None
            and fp.latency_ms > limits.max_latency_ms):
        out.append(f"latency up to {fp.latency_ms:.3g} ms > --max-latency-ms "
                   f"{limits.max_latency_ms:g}")
    return out


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]i?[bB]?|[bB])?\s*$")


def parse_bytes(text: str | int, flag: str) -> int:
    """'16KB', '16k', '1.5MB', '20000' -> bytes (K = 1024)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise TflmpError(f"{flag} takes a size like 16KB, 256K, 1MB or 20000, not '{text}'")
    unit = (m.group(2) or "b")[0].lower()
    return int(float(m.group(1)) * {"b": 1, "k": 1024, "m": 1024 ** 2}[unit])


def training_space(config: RunConfig, n_train: int | None = None) -> list[Param]:
    """The training knobs: lr (log), batch (at most ``n_train`` / 4 when the training set
    size is known), optimizer, epochs up to ``config.epochs``, QAT epochs up to
    ``config.qat_epochs``."""
    config = config.classic()
    batches = tuple(b for b in BATCH_SIZES
                    if n_train is None or b <= n_train // MIN_STEPS_PER_EPOCH) or BATCH_SIZES[:1]
    space = [Param("lr", "float", *LR_RANGE, log=True),
             Param("batch_size", "choice", choices=batches),
             Param("optimizer", "choice", choices=OPTIMIZERS)]
    if config.epochs > 1:
        space.append(Param("epochs", "int", max(1, math.ceil(config.epochs / 3)),
                           config.epochs))
    if config.qat_epochs > 0:
        space.append(Param("qat_epochs", "int", 0, config.qat_epochs))
    return space


def input_space(config: RunConfig, data_kind: str) -> list[Param]:
    """Input size knobs the data layer supports: the window of sensor CSV files and the
    resolution of image folders, as fractions of the given size."""
    if data_kind == "csv" and config.window:
        return [Param("input_scale", "choice", choices=INPUT_SCALES)]
    if data_kind == "image" and config.image_size:
        return [Param("input_scale", "choice", choices=INPUT_SCALES)]
    return []


def apply_params(config: RunConfig, params: dict, hyper: dict) -> RunConfig:
    """The trial's run config: ``config`` with the sampled training and input knobs and
    the model's builder arguments."""
    import dataclasses

    changes: dict = {"model_options": hyper or None}
    for key in ("lr", "batch_size", "optimizer", "epochs", "qat_epochs"):
        if key in params:
            changes[key] = params[key]
    scale = params.get("input_scale")
    if scale is not None and config.window:
        window = max(4, round(config.window * scale))
        stride = max(1, round((config.stride or config.window) * scale))
        changes.update(window=window, stride=stride)
    elif scale is not None and config.image_size:
        h, w = config.image_size
        changes["image_size"] = (max(8, round(h * scale)), max(8, round(w * scale)))
    return dataclasses.replace(config, **changes)
