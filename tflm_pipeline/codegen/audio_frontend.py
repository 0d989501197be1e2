"""``<name>_audio_frontend.{h,c}`` and the shared ``tflmp_audio_frontend.{h,c}``: the
audio front end an audio model's firmware computes its features with.

The tables come in as values (``data.audio_frontend.Frontend.c_tables()``, handed in by
the firmware command); their parameters are the ``<NAME>_FEATURE_*`` macros the settings
header states, so each constant has one truth.
"""

from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..artifacts import write_text
from ..firmware_files import path as firmware_file
from ..firmware_files import render

LIBRARY = ("features/tflmp_audio_frontend.h", "features/tflmp_audio_frontend.c")
_PER_LINE = 12


def write_audio_frontend(tables: dict, ident: str, out_dir: str | Path) -> list[Path]:
    """Write the shared front-end source and the model's tables and config into
    ``out_dir``; ``tables`` is ``Frontend.c_tables()`` (with the feature -> int8 input
    thresholds when it was given the model's input levels)."""
    out_dir = Path(out_dir)
    macro = ident.upper()
    files = [write_text(out_dir / Path(rel).name, firmware_file(rel).read_text())
             for rel in LIBRARY]
    mfcc = tables["kind"] == "mfcc"
    ctx = {"name": ident, "macro": macro, "kind": tables["kind"], "tool_version": __version__,
           "frontend": tables["frontend"], "sha256": tables["sha256"],
           "num_mfcc": f"{macro}_FEATURE_NUM_MFCC" if mfcc else "0  /* log-mel */",
           "outputs_macro": f"{macro}_FEATURE_NUM_MFCC" if mfcc
           else f"{macro}_FEATURE_NUM_MEL_BINS",
           "tables": [_table(t, macro) for t in tables["arrays"]], "inputs": None}
    if tables.get("inputs") is not None:
        levels = tables["inputs"]
        ctx["inputs"] = {"base": levels["base"], "count": len(levels["thresholds"]),
                         "lines": _lines(levels["thresholds"])}
    files.append(write_text(out_dir / f"{ident}_audio_frontend.h",
                            render("features/audio_frontend.h.j2", **ctx)))
    files.append(write_text(out_dir / f"{ident}_audio_frontend.c",
                            render("features/audio_frontend.c.j2", **ctx)))
    return files


def _table(t: dict, macro: str) -> dict:
    return {"name": t["name"], "ctype": t["ctype"], "comment": t["comment"],
            "size": t["size"].replace("{MACRO}", macro), "lines": _lines(t["values"])}


def _lines(values) -> list[str]:
    values = [str(int(v)) for v in values]
    return [", ".join(values[i:i + _PER_LINE]) + "," for i in range(0, len(values), _PER_LINE)]
