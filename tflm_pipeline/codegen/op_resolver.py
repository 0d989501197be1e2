"""``<name>_op_resolver.h``: a ``MicroMutableOpResolver<N>`` holding exactly the model's
ops, N exact, one checked ``AddX()`` per op, as the TFLM release a target links names
them (:func:`tflm_pipeline.mcu.releases.registrations`)."""

from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..artifacts import write_text
from ..firmware_files import render
from ..mcu.releases import OpRegistration
from ..tflite.model_info import ModelInfo
from .c_literals import camel_case


def write_op_resolver(info: ModelInfo, ident: str, out_dir: str | Path, *,
                      ops: list[OpRegistration], op_sources: str,
                      source: str = "model.tflite") -> Path:
    """Write ``<ident>_op_resolver.h`` registering ``ops`` (``op_sources``: where the
    release's resolver methods were read, for the header comment)."""
    file_name = f"{ident}_op_resolver.h"
    text = render("model/op_resolver.h.j2", file_name=file_name, name=ident,
                  camel=camel_case(ident), guard=f"{ident.upper()}_OP_RESOLVER_H_",
                  ops=ops, tool_version=__version__, source=Path(source).name,
                  sha256=info.sha256, op_sources=op_sources)
    return write_text(Path(out_dir) / file_name, text)
