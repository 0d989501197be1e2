"""Boards (``firmware/boards.yaml``, extendable by a user YAML file) and whether a model
fits one: RAM for arena, input buffer, stack and framework; flash for model, TFLM code
and framework.  TFLM's code size per op comes from ``firmware/kernel_sizes.json``,
measured by linking real Cortex-M builds."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import TflmpError
from ..firmware_files import table
from ..tflite.model_info import ModelInfo
from .arena import estimate
from .cpi import FAMILIES
from .releases import releases
from .targets import targets

# kernel_sizes.json library for a flash estimate without a board: the most common case,
# a Cortex-M4 with CMSIS-NN kernels (Arduino TFLM libraries)
DEFAULT_CODE_SIZES = "cortex-m4/cmsis-nn"


@dataclass(frozen=True)
class KernelClass:
    name: str
    title: str
    cycles_per_mac: tuple[float, float]
    cycles_per_element: tuple[float, float]
    code_sizes: str  # library in kernel_sizes.json
    sources: str
    # clock cycles per Cortex-M4 instruction counted by `firmware --check` under QEMU
    # (-icount), by kernel family (mcu/cpi.py), calibrated on published results; None
    # where nothing calibrates it
    cycles_per_instruction: dict[str, "InstructionFactor"] | None = None

    def instruction_factor(self, family: str) -> "InstructionFactor":
        """The calibrated cycles per instruction of a kernel family's models."""
        factors = self.cycles_per_instruction or {}
        if family in factors:
            return factors[family]
        if ALL_FAMILIES in factors:
            return factors[ALL_FAMILIES]
        raise TflmpError(f"{self.name} has no calibrated cycles per instruction for {family} "
                         f"models (calibrated: {', '.join(sorted(factors)) or 'none'}); "
                         "use --measured-us from the board instead")


ALL_FAMILIES = "all"  # a [low, high] cycles_per_instruction for every family


@dataclass(frozen=True)
class InstructionFactor:
    """Cycles per counted instruction of one kernel family: the factors its calibration
    fitted (one per calibration model) and the largest error predicting the family's
    other published model."""

    factors: tuple[float, float]
    validation_error: float = 0.0

    @property
    def band(self) -> tuple[float, float]:
        """The factors' spread widened by the validation error."""
        lo, hi = self.factors
        return lo * (1 - self.validation_error), hi * (1 + self.validation_error)


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    mcu: str
    core: str
    clock_mhz: float
    ram_bytes: int
    flash_bytes: int
    reserved_ram_bytes: int
    reserved_flash_bytes: int
    stack_bytes: int
    kernels: KernelClass
    tflm_release: str  # the TFLM release it links (tflm_arena.json)
    targets: tuple[str, ...]
    psram_bytes: int = 0
    arena_in_psram: bool = False
    largest_block_bytes: int | None = None


@dataclass(frozen=True)
class FitResult:
    board: str
    fits: bool
    ram: dict  # name -> bytes in internal RAM
    psram: dict  # name -> bytes in PSRAM
    flash: dict  # name -> bytes in flash
    message: str  # one line with the numbers
    reasons: tuple[str, ...] = ()  # why it does not fit, short (empty when it fits)

    def to_dict(self) -> dict:
        return {"board": self.board, "fits": self.fits, "ram": self.ram, "psram": self.psram,
                "flash": self.flash, "message": self.message, "reasons": list(self.reasons)}


_KERNEL_FIELDS = {"title": str, "cycles_per_mac": "range", "cycles_per_element": "range",
                  "code_sizes": str, "sources": str}
_BOARD_FIELDS = {"title": str, "mcu": str, "core": str, "clock_mhz": "number",
                 "ram_bytes": "bytes", "flash_bytes": "bytes", "reserved_ram_bytes": "bytes",
                 "reserved_flash_bytes": "bytes", "stack_bytes": "bytes", "kernels": str,
                 "tflm_release": str, "targets": "names"}
_BOARD_OPTIONAL = {"psram_bytes": "bytes", "arena_in_psram": bool,
                   "largest_block_bytes": "bytes"}


def boards(user_file: str | Path | None = None) -> dict[str, Board]:
    """All boards: the built-in ones, with ``user_file`` merged over them."""
    return _load(str(user_file) if user_file is not None else None)


def get_board(name: str, user_file: str | Path | None = None) -> Board:
    """One board of :func:`boards`; a one-line error naming the known ones."""
    known = boards(user_file)
    if name not in known:
        raise TflmpError(f"unknown board '{name}': choose one of {', '.join(known)}"
                         " (or add it with --boards-file)")
    return known[name]


@lru_cache(maxsize=8)
def _load(user_file: str | None) -> dict[str, Board]:
    raw = copy.deepcopy(table("boards.yaml"))
    if user_file is not None:
        user = _read_yaml(Path(user_file))
        for section in user:
            if section not in ("boards", "kernels"):
                raise TflmpError(f"{user_file}: unknown section '{section}' "
                                 "(a boards file has 'boards' and 'kernels')")
        for section in ("kernels", "boards"):
            entries = user.get(section) or {}
            if not isinstance(entries, dict):
                raise TflmpError(f"{user_file}: '{section}' must map names to entries")
            for name, entry in entries.items():
                if not isinstance(entry, dict):
                    raise TflmpError(f"{user_file}: {section[:-1]} '{name}' must be a "
                                     "mapping of fields")
                raw[section][name] = {**raw[section].get(name, {}), **entry}
    where = user_file or "firmware/boards.yaml"
    kernels = {name: _kernel_class(name, e, where) for name, e in raw["kernels"].items()}
    return {name: _board(name, e, kernels, where) for name, e in raw["boards"].items()}


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TflmpError(f"boards file {path} does not exist") from None
    except OSError as e:
        raise TflmpError(f"cannot read boards file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise TflmpError(f"{path} is not valid YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise TflmpError(f"{path} must hold a mapping with 'boards' and/or 'kernels'")
    return data


def _check(kind: str, name: str, entry: dict, fields: dict, optional: dict, where) -> dict:
    """Validated copy of one entry: every field present, known and of the right type."""
    if "arena_profile" in entry:
        raise TflmpError(f"{where}: {kind} '{name}': the field arena_profile is now called "
                         "tflm_release; rename it")
    unknown = sorted(set(entry) - set(fields) - set(optional))
    if unknown:
        raise TflmpError(f"{where}: {kind} '{name}' has unknown field '{unknown[0]}' "
                         f"(fields: {', '.join(list(fields) + list(optional))})")
    missing = [f for f in fields if f not in entry]
    if missing:
        raise TflmpError(f"{where}: {kind} '{name}' lacks {', '.join(missing)}")
    out = {}
    for field, kind_of in {**fields, **optional}.items():
        if field not in entry:
            continue
        value = entry[field]
        bad = f"{where}: {kind} '{name}': {field} must be"
        if kind_of == "bytes":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TflmpError(f"{bad} a whole number of bytes >= 0, not {value!r}")
        elif kind_of == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise TflmpError(f"{bad} a number > 0, not {value!r}")
        elif kind_of == "range":
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               and v > 0 for v in value) or value[0] > value[1]):
                raise TflmpError(f"{bad} [low, high] with 0 < low <= high, not {value!r}")
            value = (float(value[0]), float(value[1]))
        elif kind_of == "names":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TflmpError(f"{bad} a list of names, not {value!r}")
            value = tuple(value)
        elif not isinstance(value, kind_of):
            raise TflmpError(f"{bad} a {kind_of.__name__}, not {value!r}")
        out[field] = value
    return out


def _kernel_class(name: str, entry: dict, where) -> KernelClass:
    cpi = entry.get("cycles_per_instruction")
    entry = {k: v for k, v in entry.items() if k != "cycles_per_instruction"}
    e = _check("kernel class", name, entry, _KERNEL_FIELDS, {}, where)
    if cpi is not None:
        e["cycles_per_instruction"] = _instruction_factors(name, cpi, where)
    if e["code_sizes"] not in _kernel_sizes()["libraries"]:
        raise TflmpError(f"{where}: kernel class '{name}': code_sizes '{e['code_sizes']}' is "
                         f"not in kernel_sizes.json ({', '.join(_kernel_sizes()['libraries'])})")
    return KernelClass(name=name, **e)


def _instruction_factors(name: str, value, where) -> dict[str, InstructionFactor]:
    """``cycles_per_instruction``: [low, high] for every family, or per kernel family
    (mcu/cpi.py) ``{factors: [low, high], validation_error: e}``."""
    bad = f"{where}: kernel class '{name}': cycles_per_instruction"
    if isinstance(value, list):
        r = _check("kernel class", name, {"cycles_per_instruction": value}, {},
                   {"cycles_per_instruction": "range"}, where)["cycles_per_instruction"]
        return {ALL_FAMILIES: InstructionFactor(r)}
    if not isinstance(value, dict) or not value:
        raise TflmpError(f"{bad} must be [low, high] or map kernel families "
                         f"({', '.join(FAMILIES)}) to factors, not {value!r}")
    out = {}
    for family, entry in value.items():
        if family not in FAMILIES:
            raise TflmpError(f"{bad}: unknown kernel family '{family}' "
                             f"({', '.join(FAMILIES)})")
        if not isinstance(entry, dict):
            raise TflmpError(f"{bad}: {family} must be {{factors: [low, high], "
                             "validation_error: e}")
        e = _check("kernel class", f"{name}' family '{family}", entry,
                   {"factors": "range"}, {"validation_error": float}, where)
        error = e.get("validation_error", 0.0)
        if not 0 <= error < 1:
            raise TflmpError(f"{bad}: {family} validation_error must be in [0, 1), "
                             f"not {error!r}")
        out[family] = InstructionFactor(e["factors"], error)
    return out


def _board(name: str, entry: dict, kernels: dict[str, KernelClass], where) -> Board:
    e = _check("board", name, entry, _BOARD_FIELDS, _BOARD_OPTIONAL, where)
    if e["kernels"] not in kernels:
        raise TflmpError(f"{where}: board '{name}': kernels '{e['kernels']}' is not a kernel "
                         f"class ({', '.join(kernels)})")
    if e["tflm_release"] not in releases():
        raise TflmpError(f"{where}: board '{name}': tflm_release '{e['tflm_release']}' is "
                         f"not a TFLM release ({', '.join(releases())})")
    unknown = [t for t in e["targets"] if t not in targets()]
    if unknown:
        raise TflmpError(f"{where}: board '{name}': '{unknown[0]}' is not a firmware target "
                         f"({', '.join(targets())})")
    for part in ("ram", "flash"):
        if e[f"reserved_{part}_bytes"] >= e[f"{part}_bytes"]:
            raise TflmpError(f"{where}: board '{name}': reserved_{part}_bytes "
                             f"{e[f'reserved_{part}_bytes']:,} leaves nothing of "
                             f"{part}_bytes {e[f'{part}_bytes']:,}")
    if e.get("arena_in_psram") and not e.get("psram_bytes"):
        raise TflmpError(f"{where}: board '{name}': arena_in_psram needs psram_bytes")
    e["kernels"] = kernels[e["kernels"]]
    return Board(name=name, **e)


def _kernel_sizes() -> dict:
    return table("kernel_sizes.json")


def kernel_code_bytes(op_names, library: str) -> tuple[int, str]:
    """Flash bytes (code + read-only data) of TFLM's core and the kernels of ``op_names``
    in ``library`` (a kernel_sizes.json key), and how that figure was obtained."""
    libraries = _kernel_sizes()["libraries"]
    if library not in libraries:
        raise TflmpError(f"no kernel sizes for '{library}': known are {', '.join(libraries)}")
    lib = libraries[library]
    factor, note = 1.0, f"linked for {library}"
    if "same_as" in lib:
        first_sentence = lib["basis"].split(". ")[0]
        factor, note = lib["factor"], f"{lib['same_as']} x {lib['factor']:g}: {first_sentence}"
        lib = libraries[lib["same_as"]]
    ops = list(dict.fromkeys(op_names))
    measured = [op for op in ops if op in lib["ops"]]
    unmeasured = [op for op in ops if op not in lib["ops"]]
    total = lib["core"] + sum(lib["ops"][op] for op in measured)
    total += sum(g["bytes"] for g in lib["shared"] if set(g["ops"]) & set(measured))
    total += lib["unmeasured_op"] * len(unmeasured)
    basis = f"core {lib['core']:,} B + {len(measured)} op(s)"
    if unmeasured:
        basis += (f" + {len(unmeasured)} unmeasured op(s) ({', '.join(unmeasured)}) at "
                  f"{lib['unmeasured_op']:,} B each")
    return math.ceil(total * factor), f"{basis}, {note} (kernel_sizes.json)"


def board_fit(info: ModelInfo, board: Board, arena_bytes: int, model_bytes: int,
              code_bytes: int) -> FitResult:
    """Whether the model's firmware fits ``board``, with the numbers behind the answer.

    RAM holds the arena (in PSRAM when the board allows it and internal RAM is short),
    the firmware's float input buffer, the stack and what the framework reserves;
    flash holds the model, TFLM's code and the framework."""
    input_buffer = 4 * sum(int(math.prod(t.shape)) for t in info.inputs)
    fixed = {"input buffer": input_buffer, "stack": board.stack_bytes,
             "framework": board.reserved_ram_bytes}
    block = board.largest_block_bytes
    fits_internal = (arena_bytes <= board.ram_bytes - sum(fixed.values())
                     and (block is None or arena_bytes <= block))
    use_psram = not fits_internal and board.arena_in_psram and arena_bytes <= board.psram_bytes
    ram = {"arena": 0 if use_psram else arena_bytes, **fixed}
    psram = {"arena": arena_bytes} if use_psram else {}
    flash = {"model": model_bytes, "TFLM code": code_bytes,
             "framework": board.reserved_flash_bytes}
    ram_line = _line("RAM", ram, board.ram_bytes)
    if board.arena_in_psram and not use_psram and not fits_internal:
        ram_line += f" (the arena is larger than PSRAM, {board.psram_bytes:,} B)"
    elif use_psram:
        ram_line += f", arena {arena_bytes:,} B in PSRAM"
    lines = [ram_line, _flash_line(model_bytes, code_bytes, board)]
    over = sum(ram.values()) > board.ram_bytes or sum(flash.values()) > board.flash_bytes
    block_short = (not use_psram and block is not None and arena_bytes > block
                   and sum(ram.values()) <= board.ram_bytes)
    if block_short:
        lines.insert(0, f"the arena ({arena_bytes:,} B) exceeds the largest heap block "
                        f"({block:,} B)")
    fits = not over and not block_short
    verdict = "fits" if fits else "does not fit"
    reasons = []
    if block_short:
        reasons.append(f"arena {arena_bytes:,} B > largest heap block {block:,} B")
    if sum(ram.values()) > board.ram_bytes:
        reasons.append(f"RAM {sum(ram.values()) - board.ram_bytes:,} B over"
                       + (" (arena larger than PSRAM)" if board.arena_in_psram else ""))
    if sum(flash.values()) > board.flash_bytes:
        reasons.append(f"flash {sum(flash.values()) - board.flash_bytes:,} B over")
    return FitResult(board.name, fits, ram, psram, flash,
                     f"{verdict} {board.name}: {'; '.join(lines)}", tuple(reasons))


def fit_model(info: ModelInfo, board: Board) -> FitResult:
    """:func:`board_fit` with the arena derived for the board's TFLM and measured code sizes."""
    code, _ = kernel_code_bytes(info.op_names, board.kernels.code_sizes)
    return board_fit(info, board, estimate(info, board.tflm_release).bytes, info.size, code)


def _flash_line(model_bytes: int, code_bytes: int, board: Board) -> str:
    """'flash: model + TFLM code 243,340 B of the 1,040,384 B the framework leaves (...)'.

    The framework's share (bootloader, other partitions, the core's own code) is stated
    apart, so a board whose app partition is a fraction of its flash does not read as
    full."""
    need = model_bytes + code_bytes
    room = board.flash_bytes - board.reserved_flash_bytes
    head = "flash needs" if need > room else "flash:"
    line = (f"{head} model + TFLM code {need:,} B (model {model_bytes:,} + TFLM code "
            f"{code_bytes:,}) of the {room:,} B the framework leaves ({board.flash_bytes:,} B "
            f"flash, {board.reserved_flash_bytes:,} B bootloader, partitions and core)")
    return line + (f", {need - room:,} B over" if need > room else "")


def _line(what: str, parts: dict, available: int) -> str:
    """'RAM needs 310,528 B (arena 286,720 + stack 8,192 + ...) of 262,144 B, 48,384 B over'."""
    total = sum(parts.values())
    inner = " + ".join(f"{k} {v:,}" for k, v in parts.items() if v)
    line = f"{what} {'needs ' if total > available else ''}{total:,} B ({inner}) of {available:,} B"
    return line + (f", {total - available:,} B over" if total > available else "")
