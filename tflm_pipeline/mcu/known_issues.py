"""Known kernel bugs of the TFLM builds tflmp targets (``firmware/known_issues.yaml``):
load and validate the table, and find the rules a model meets on a target or board.

A rule names the TFLM releases (and chips) that link the buggy kernel, a declarative
condition on one op (op name, weight quantization, shapes, padding) and a remedy:
``requantize-per-tensor`` (Dense weights with one scale per layer), ``reshape-dense-2d``
(a Dense output of rank > 2 computed as [rows, units], then reshaped) or ``refuse`` (with
the reason).  Commands apply the remedy; this module only decides which rules fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import TflmpError
from ..firmware_files import table
from ..tflite.model_info import ModelInfo, OpInfo
from .releases import releases

TABLE = "known_issues.yaml"
REQUANTIZE = "requantize-per-tensor"
RESHAPE_DENSE = "reshape-dense-2d"
REFUSE = "refuse"
REMEDIES = (REQUANTIZE, RESHAPE_DENSE, REFUSE)
_FIELDS = {"title": str, "source": str, "library": str, "releases": list, "condition": dict,
           "remedy": str, "reason": str}
_OPTIONAL = {"chips": list}


@dataclass(frozen=True)
class KnownIssue:
    id: str
    title: str
    source: str  # URL of the issue or pull request
    library: str  # affected and fixed versions, in words
    releases: tuple[str, ...]  # TFLM releases (tflm_arena.json) that link the bug
    chips: tuple[str, ...]  # board MCUs it happens on; empty: every chip
    condition: dict  # predicate name -> value (see _PREDICATES)
    remedy: str  # one of REMEDIES
    reason: str

    def affects(self, release: str, chip: str | None) -> bool:
        """Whether a build of ``release`` on ``chip`` (None: not known) links the bug."""
        return release in self.releases and (not self.chips or chip in self.chips)

    def matching_ops(self, info: ModelInfo) -> list[int]:
        """Indices of the ops of ``info`` that meet the condition."""
        return [op.index for op in info.operators if self._meets(info, op)]

    def _meets(self, info: ModelInfo, op: OpInfo) -> bool:
        if op.custom or op.name != self.condition["op"]:
            return False
        return all(_PREDICATES[key](info, op, value)
                   for key, value in self.condition.items() if key != "op")

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "source": self.source,
                "library": self.library, "releases": list(self.releases),
                "chips": list(self.chips), "condition": self.condition,
                "remedy": self.remedy, "reason": self.reason}


@dataclass
class FiredRule:
    """A known issue a model meets on a platform, and what tflmp did about it."""

    issue: KnownIssue
    ops: tuple[int, ...]  # operator indices that meet the condition
    platforms: tuple[str, ...]  # "release" or "release on chip" where it applies
    action: str = ""  # what was done (filled in by the command applying the remedy)

    @property
    def id(self) -> str:
        return self.issue.id

    def to_dict(self) -> dict:
        return {"id": self.issue.id, "source": self.issue.source, "title": self.issue.title,
                "remedy": self.issue.remedy, "ops": list(self.ops),
                "platforms": list(self.platforms), "action": self.action}


def known_issues() -> dict[str, KnownIssue]:
    """Every rule of ``firmware/known_issues.yaml``, validated, by id."""
    return _validated()


@lru_cache(maxsize=1)
def _validated() -> dict[str, KnownIssue]:
    return parse_table(table(TABLE), TABLE)


def parse_table(raw, where: str) -> dict[str, KnownIssue]:
    """Rules from a parsed YAML mapping; a malformed entry is one TflmpError naming it."""
    if not isinstance(raw, dict) or not raw:
        raise TflmpError(f"{where}: expected a mapping of rule ids to rules")
    known_releases = releases()
    out = {}
    for rule_id, entry in raw.items():
        def bad(what: str) -> TflmpError:
            return TflmpError(f"{where}: rule '{rule_id}' {what}")

        if not isinstance(entry, dict):
            raise bad("must be a mapping of fields")
        unknown = set(entry) - set(_FIELDS) - set(_OPTIONAL)
        if unknown:
            raise bad(f"has unknown field(s) {', '.join(sorted(unknown))}")
        for name, kind in _FIELDS.items():
            if not isinstance(entry.get(name), kind) or not entry[name]:
                raise bad(f"needs a non-empty '{name}' ({kind.__name__})")
        if not entry["source"].startswith("https://"):
            raise bad("needs a source URL (https://...)")
        missing = [r for r in entry["releases"] if r not in known_releases]
        if missing:
            raise bad(f"names unknown TFLM release(s) {', '.join(map(str, missing))} "
                      "(see tflm_arena.json)")
        chips = entry.get("chips", [])
        if not isinstance(chips, list) or not all(isinstance(c, str) for c in chips):
            raise bad("'chips' must be a list of board MCU names")
        if entry["remedy"] not in REMEDIES:
            raise bad(f"has remedy '{entry['remedy']}'; use one of {', '.join(REMEDIES)}")
        condition = entry["condition"]
        if not isinstance(condition.get("op"), str):
            raise bad("needs a condition 'op' (a builtin op name)")
        for key, value in condition.items():
            if key == "op":
                continue
            if key not in _PREDICATES:
                raise bad(f"has unknown condition '{key}'; known are "
                          f"{', '.join(sorted(_PREDICATES))}")
            problem = _CHECKS[key](value)
            if problem:
                raise bad(f"condition '{key}': {problem}")
            ops = _PREDICATE_OPS.get(key)
            if ops and condition["op"] not in ops:
                raise bad(f"condition '{key}' applies to {' and '.join(ops)}, not "
                          f"{condition['op']}")
        out[str(rule_id)] = KnownIssue(
            id=str(rule_id), title=entry["title"], source=entry["source"],
            library=entry["library"].strip(), releases=tuple(entry["releases"]),
            chips=tuple(chips), condition=dict(condition), remedy=entry["remedy"],
            reason=entry["reason"].strip())
    return out


def fired_rules(info: ModelInfo, platforms: list[tuple[str, str | None]],
             issues: dict[str, KnownIssue] | None = None) -> list[FiredRule]:
    """The rules ``info`` meets on any of ``platforms`` ((release, chip) pairs), one per
    rule, in table order."""
    fired = []
    for issue in (issues if issues is not None else known_issues()).values():
        where = [f"{release} on {chip}" if chip and issue.chips else release
                 for release, chip in platforms if issue.affects(release, chip)]
        if not where:
            continue
        ops = issue.matching_ops(info)
        if ops:
            fired.append(FiredRule(issue, tuple(ops), tuple(dict.fromkeys(where))))
    return fired


def other_chip_rules(info: ModelInfo, platforms: list[tuple[str, str | None]]) -> list[FiredRule]:
    """Chip-specific rules the model meets with the platforms' releases on a chip they do
    not include (the ESP32-S3 for a project built for the ESP32): what a project
    retargeted to that chip would hit."""
    chips_here = {chip for _, chip in platforms}
    out = []
    for issue in known_issues().values():
        others = [c for c in issue.chips if c not in chips_here]
        where = [f"{release} on {chip}" for release, _ in platforms
                 if release in issue.releases for chip in others]
        ops = issue.matching_ops(info) if where else []
        if ops:
            out.append(FiredRule(issue, tuple(ops), tuple(dict.fromkeys(where)),
                                 f"not for {', '.join(others)}: {issue.reason}"))
    return out


def target_platforms(target_name: str, releases_linked) -> list[tuple[str, str | None]]:
    """(release, chip) pairs of a firmware target: each release it may link on the MCU of
    each board that lists the target in ``boards.yaml``."""
    boards = table("boards.yaml")["boards"].values()
    chips = [b["mcu"] for b in boards if target_name in (b.get("targets") or [])] or [None]
    return [(r, c) for r in releases_linked for c in dict.fromkeys(chips)]


def board_issues(info: ModelInfo, board) -> list[FiredRule]:
    """The rules ``info`` meets on a board (``boards.Board``: the release it links and its
    MCU), each with what ``tflmp firmware`` does about it."""
    fired = fired_rules(info, [(board.tflm_release, board.mcu)])
    for rule in fired:
        rule.action = _PLANNED.get(rule.issue.remedy,
                                   f"tflmp firmware refuses this model: {rule.issue.reason}")
    return fired


_PLANNED = {
    REQUANTIZE: "tflmp firmware gives the Dense layers one scale each and measures the change",
    RESHAPE_DENSE: "tflmp firmware computes the Dense layers as [rows, units] and reshapes "
                   "the result (the same outputs, checked in TFLM)",
}


def refusal_message(rule: FiredRule, where: str) -> str:
    """The one line a ``refuse`` rule stops firmware with: rule, source, ops, reason."""
    ops = ", ".join(str(i) for i in rule.ops)
    return (f"known issue {rule.id} ({rule.issue.source}): op {ops} "
            f"({rule.issue.condition['op']}) on {where}: {rule.issue.reason}")


def refusal(rule: FiredRule, where: str) -> TflmpError:
    """The error of a ``refuse`` rule (see :func:`refusal_message`)."""
    return TflmpError(refusal_message(rule, where))


# --- condition predicates: (info, op, value) -> bool, and checks of the value ---

def _weights(info, op, value):
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return False
    scales = len(info.tensors[op.inputs[1]].scales)
    return scales > 1 if value == "per-channel" else scales == 1


def _weights_zero_point(info, op, value):
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return False
    return any(info.tensors[op.inputs[1]].zero_points)


def _output_rank_over(info, op, value):
    return len(info.tensors[op.outputs[0]].shape) > value


def _fc_rows(info, op) -> tuple[int, int]:
    """(batches, row length) of a FULLY_CONNECTED: input values / weight columns."""
    depth = info.tensors[op.inputs[1]].shape[-1]
    return info.tensors[op.inputs[0]].elements // max(depth, 1), depth


def _batches_over(info, op, value):
    return _fc_rows(info, op)[0] > value


def _depth_not_multiple_of(info, op, value):
    return _fc_rows(info, op)[1] % value != 0


def _filter(info, op, value):
    shape = info.tensors[op.inputs[1]].shape
    return list(shape[1:3]) == list(value)


def _in_channels(info, op) -> int:
    return info.tensors[op.inputs[0]].shape[-1]


def _depth_multiplier(info, op, value):
    return info.tensors[op.outputs[0]].shape[-1] == value * _in_channels(info, op)


def _channels_multiple_of(info, op, value):
    return _in_channels(info, op) % value == 0


def _pads(info, op) -> tuple[tuple[int, int], tuple[int, int]]:
    """((leading, trailing) along height, (leading, trailing) along width) as TFLite
    computes SAME padding; zeros for VALID."""
    if op.options.get("padding") != "SAME":
        return (0, 0), (0, 0)
    _, in_h, in_w, _ = info.tensors[op.inputs[0]].shape
    _, out_h, out_w, _ = info.tensors[op.outputs[0]].shape
    _, f_h, f_w, _ = info.tensors[op.inputs[1]].shape
    out = []
    for size, out_size, f, stride, dilation in (
            (in_h, out_h, f_h, op.options["stride_h"], op.options.get("dilation_h", 1)),
            (in_w, out_w, f_w, op.options["stride_w"], op.options.get("dilation_w", 1))):
        total = max((out_size - 1) * stride + (f - 1) * dilation + 1 - size, 0)
        out.append((total // 2, total - total // 2))
    return out[0], out[1]


def _leading_pad_not_in(info, op, value):
    (top, _), (left, _) = _pads(info, op)
    return [left, top] not in [list(v) for v in value]


def _asymmetric_leading_pad(info, op, value):
    (top, bottom), (left, right) = _pads(info, op)
    hit = (top or left) and (bottom > top or right > left)
    return bool(hit) == bool(value)


def _trailing_pad_over_leading(info, op, value):
    (top, bottom), (left, right) = _pads(info, op)
    return (bottom > top or right > left) == bool(value)


def _esp_nn_im2col(info, op, value):
    _, f_h, f_w, channels = info.tensors[op.inputs[1]].shape
    return (f_w * channels < 16 and f_h * f_w * channels >= 16) == bool(value)


def _not_pointwise(info, op, value):
    (top, _), (left, _) = _pads(info, op)
    pointwise = (_filter(info, op, [1, 1]) and op.options.get("stride_h") == 1
                 and op.options.get("stride_w") == 1 and not (top or left))
    return pointwise != bool(value)


def _positive_int(value):
    return None if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else f"expected a positive integer, got {value!r}"


def _non_negative_int(value):
    return None if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else f"expected an integer >= 0, got {value!r}"


def _boolean(value):
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


def _pair(value):
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and v > 0 for v in value))


_PREDICATES = {
    "weights": _weights,
    "weights_zero_point": _weights_zero_point,
    "output_rank_over": _output_rank_over,
    "batches_over": _batches_over,
    "depth_not_multiple_of": _depth_not_multiple_of,
    "filter": _filter,
    "depth_multiplier": _depth_multiplier,
    "channels_multiple_of": _channels_multiple_of,
    "leading_pad_not_in": _leading_pad_not_in,
    "asymmetric_leading_pad": _asymmetric_leading_pad,
    "trailing_pad_over_leading": _trailing_pad_over_leading,
    "esp_nn_im2col": _esp_nn_im2col,
    "not_pointwise": _not_pointwise,
}
_CHECKS = {
    "weights": lambda v: None if v in ("per-channel", "per-tensor")
    else f"expected per-channel or per-tensor, got {v!r}",
    "weights_zero_point": lambda v: None if v == "nonzero" else f"expected nonzero, got {v!r}",
    "output_rank_over": _non_negative_int,
    "batches_over": _non_negative_int,
    "depth_not_multiple_of": _positive_int,
    "filter": lambda v: None if _pair(v) else f"expected [height, width], got {v!r}",
    "depth_multiplier": _positive_int,
    "channels_multiple_of": _positive_int,
    "leading_pad_not_in": lambda v: None if isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and x >= 0 for x in p)
        for p in v) else f"expected a list of [width, height] pairs, got {v!r}",
    "asymmetric_leading_pad": _boolean,
    "trailing_pad_over_leading": _boolean,
    "esp_nn_im2col": _boolean,
    "not_pointwise": _boolean,
}
_FC = ("FULLY_CONNECTED",)
_CONV = ("CONV_2D", "DEPTHWISE_CONV_2D")
# the ops a predicate reads the shapes of (absent: any op)
_PREDICATE_OPS = {
    "batches_over": _FC, "depth_not_multiple_of": _FC, "filter": _CONV,
    "depth_multiplier": ("DEPTHWISE_CONV_2D",), "channels_multiple_of": _CONV,
    "leading_pad_not_in": _CONV, "asymmetric_leading_pad": _CONV,
    "trailing_pad_over_leading": _CONV, "esp_nn_im2col": ("CONV_2D",), "not_pointwise": _CONV,
}
