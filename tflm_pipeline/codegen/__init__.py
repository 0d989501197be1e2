"""Codegen stage: C/C++ sources generated from a model and its preprocessing."""

from __future__ import annotations

from pathlib import Path

from ..data import Preprocessing
from ..model_info import ModelInfo
from .c_array import write_c_array
from .op_resolver import DEFAULT_TREE, write_op_resolver
from .settings import write_settings_header


def write_model_sources(model: bytes, info: ModelInfo, name: str, out_dir: str | Path, *,
                        preprocessing: Preprocessing | None = None, tree: str = DEFAULT_TREE,
                        source: str = "model.tflite") -> list[Path]:
    """The model's C files: data array (.h/.cc), settings header, op resolver header.

    The resolver is checked against ``tree`` first, so a model using an op that TFLM
    (or that tree of it) lacks fails here, before anything is written.
    """
    from .op_resolver import registrations

    registrations(info, tree)
    return [*write_c_array(model, name, out_dir, source=source),
            write_settings_header(info, name, out_dir, preprocessing=preprocessing,
                                  source=source),
            write_op_resolver(info, name, out_dir, tree=tree, source=source)]
