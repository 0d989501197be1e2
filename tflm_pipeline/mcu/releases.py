"""TFLM releases: the builds of TensorFlow Lite Micro a target links.

A release (``firmware/tflm_arena.json``) is one TFLM source version built one way
(kernels, flags, architecture).  It decides two things tflmp checks before writing C:
which ops exist (its op set, ``firmware/tflm_ops.json``: the ``MicroMutableOpResolver``
methods of that source version) and the 32-bit arena sizes (:mod:`.arena`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TflmpError
from ..firmware_files import table
from ..tflite.model_info import ModelInfo
from ..tflite.tensor_names import keras_layer_of

DEFAULT_RELEASE = "tflm-2026"  # upstream TFLM of 2026: `tflmp convert` without a target


@dataclass(frozen=True)
class TflmRelease:
    name: str
    title: str
    op_set: str | None  # key in tflm_ops.json; None: measured for arena comparison only
    measured: bool  # False: the arena sizes are an allowance over a measured release

    @property
    def op_set_source(self) -> str:
        """Where the op set was read (a repository and commit)."""
        return op_tables()["op_sets"][self.require_op_set()]["source"]

    def require_op_set(self) -> str:
        """The op set key; a one-line error for a release measured for comparison only."""
        if self.op_set is None:
            raise TflmpError(f"TFLM release '{self.name}' has no op table; choose a target's "
                             "release")
        return self.op_set


@dataclass(frozen=True)
class OpRegistration:
    name: str  # BuiltinOperator name or custom code
    method: str  # MicroMutableOpResolver method


def releases() -> dict[str, dict]:
    """The raw release table (name -> sizes, title, op_set, same_as)."""
    return table("tflm_arena.json")["releases"]


def op_tables() -> dict:
    return table("tflm_ops.json")


def get_release(name: str) -> TflmRelease:
    known = releases()
    if name not in known:
        raise TflmpError(f"unknown TFLM release '{name}': known are {', '.join(known)}")
    entry = known[name]
    return TflmRelease(name, entry.get("title", name), entry.get("op_set"),
                       entry.get("measured", True))


def registrations(info: ModelInfo, release_names: str | list[str] | tuple[str, ...]
                  = DEFAULT_RELEASE) -> list[OpRegistration]:
    """The resolver calls for ``info``, checked against every release in
    ``release_names``; a TflmpError names any op one of them lacks and the Keras layer
    it came from."""
    names = [release_names] if isinstance(release_names, str) else list(release_names)
    tables = op_tables()
    out = []
    for op_name in info.op_names:
        op = next(o for o in info.operators if o.name == op_name)
        method = None
        for name in names:
            release = get_release(name)
            ops = tables["op_sets"][release.require_op_set()]
            if op.custom:
                method = tables["custom_methods"].get(op_name) if op_name in ops["custom_ops"] \
                    else None
            elif op_name in ops["missing_builtins"]:
                method = None
            else:
                method = tables["builtin_methods"].get(op_name)
            if method is None:
                layer = keras_layer_of(info, op.index)
                where = f" (from Keras layer '{layer}')" if layer else ""
                known = op_name in tables["builtin_methods"] or op_name in tables["custom_methods"]
                fix = ("use a target whose TFLM is newer" if known
                       else "replace that layer with ops TFLM supports")
                raise TflmpError(f"op {op_name}{where} is not implemented by TFLM "
                                 f"{'in ' + name if known else 'at all'}; {fix}")
        out.append(OpRegistration(op_name, method))
    return out
