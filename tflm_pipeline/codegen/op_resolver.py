"""``<name>_op_resolver.h``: a ``MicroMutableOpResolver<N>`` holding exactly the model's
ops, N exact, one checked ``AddX()`` per op, for the TFLM tree a target links."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .. import __version__
from ..artifacts import write_text
from ..errors import TflmpError
from ..model_info import ModelInfo
from .c_array import c_identifier
from .templates import render

DEFAULT_TREE = "upstream-2026"


@dataclass(frozen=True)
class OpRegistration:
    name: str  # BuiltinOperator name or custom code
    method: str  # MicroMutableOpResolver method


@lru_cache(maxsize=1)
def op_tables() -> dict:
    from ..firmware import TEMPLATE_DIR

    return json.loads((TEMPLATE_DIR / "tflm_ops.json").read_text())


def tree_source(tree: str) -> str:
    return op_tables()["trees"][tree]["source"]


def registrations(info: ModelInfo, tree: str = DEFAULT_TREE) -> list[OpRegistration]:
    """The resolver calls for ``info`` in ``tree``; a TflmpError names any op the tree
    lacks and the Keras layer it came from."""
    tables = op_tables()
    if tree not in tables["trees"]:
        raise TflmpError(f"unknown TFLM tree '{tree}': known are {', '.join(tables['trees'])}")
    t = tables["trees"][tree]
    out = []
    for op_name in info.op_names:
        op = next(o for o in info.operators if o.name == op_name)
        if op.custom:
            method = tables["custom_methods"].get(op_name) if op_name in t["custom_ops"] else None
        elif op_name in t["missing_builtins"]:
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
                             f"{'in ' + tree if known else 'at all'}; {fix}")
        out.append(OpRegistration(op_name, method))
    return out


def keras_layer_of(info: ModelInfo, op_index: int) -> str | None:
    """The Keras layer behind an op, from its output tensor's name: "conv1/Relu" as tflmp
    names tensors, or the converter's "model/quant_conv1/Relu;..." -> "conv1"."""
    from ..convert import layer_of

    op = info.operators[op_index]
    if not op.outputs or op.outputs[0] < 0:
        return None
    return layer_of(info.tensors[op.outputs[0]].name)


def write_op_resolver(info: ModelInfo, name: str, out_dir: str | Path, *,
                      tree: str = DEFAULT_TREE, source: str = "model.tflite") -> Path:
    ident = c_identifier(name)
    file_name = f"{ident}_op_resolver.h"
    text = render("model/op_resolver.h.j2", file_name=file_name, name=ident,
                  camel=camel_case(ident), guard=f"{ident.upper()}_OP_RESOLVER_H_",
                  ops=registrations(info, tree), tool_version=__version__,
                  source=Path(source).name, sha256=info.sha256, tree_source=tree_source(tree))
    return write_text(Path(out_dir) / file_name, text)


def camel_case(ident: str) -> str:
    """lenet_v2 -> LenetV2 (for C++ type and function names)."""
    return "".join(p[:1].upper() + p[1:] for p in ident.split("_") if p) or "Model"
