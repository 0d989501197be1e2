"""Generate the bad-model corpus: every kind of broken or unsuitable ``.tflite`` a user
can hand tflmp, derived from one valid int8 model (TFLM's hello_world by default).

    python tests/badinput/make_corpus.py OUT_DIR [--source MODEL.tflite] [--float F.tflite]

Writes the files and ``cases.json``: for each file, the tflmp command it goes through and
a phrase the one-line error must contain.  tests/test_badinput.py runs them all.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import flatbuffers
import numpy as np

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

# Commands each case runs through ({model} and {out} are filled in by the test).
CONVERT = ["convert", "{model}", "--c-array", "--out", "{out}"]
FIRMWARE = ["firmware", "{model}", "--target", "esp32", "--out", "{out}"]
PROFILE = ["profile", "{model}", "--board", "arduino-nano33ble"]
VERIFY = ["verify", "{model}", "--dataset", "digits"]


def _unpack(model: bytes):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))


def _pack(model, identifier: bytes = b"TFL3") -> bytes:
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=identifier)
    return bytes(builder.Output())


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def cases(source: bytes, float_model: bytes | None) -> dict[str, tuple[bytes, list, str]]:
    """name -> (file content, command, phrase of the expected error)."""
    rng = np.random.default_rng(0)
    out: dict[str, tuple[bytes, list, str]] = {
        "empty.tflite": (b"", CONVERT, "only 0 bytes"),
        "random.tflite": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), CONVERT,
                          "not a TFLite flatbuffer"),
        "image.png.tflite": (_png(), CONVERT, "PNG image"),
    }
    for cut in (4, 16, 64, len(source) // 3, len(source) // 2, len(source) - 8):
        out[f"truncated_{cut}.tflite"] = (source[:cut], VERIFY, "truncated")

    model = _pack(_unpack(source), identifier=b"XXXX")
    out["wrong_identifier.tflite"] = (model, CONVERT, "identifier is 'XXXX'")

    if float_model is not None:
        out["float_model.tflite"] = (float_model, FIRMWARE, "needs a full-int8 model")

    m = _unpack(source)
    m.operatorCodes[0].builtinCode = schema.BuiltinOperator.SEGMENT_SUM
    m.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.SEGMENT_SUM
    out["op_tflm_lacks.tflite"] = (_pack(m), FIRMWARE, "SEGMENT_SUM")

    # A dynamic batch whose shape says 1 is fine (TFLM runs batch 1; TFLM's own
    # hello_world is such a model); a -1 in the shape itself, or a dynamic dimension
    # other than the batch, cannot be allocated.
    m = _unpack(source)
    g = m.subgraphs[0]
    t = g.tensors[g.inputs[0]]
    t.shape = [-1, *list(t.shape)[1:]]
    t.shapeSignature = [-1, *list(t.shape)[1:]]
    out["dynamic_batch.tflite"] = (_pack(m), FIRMWARE, "dynamic dimension")
    m = _unpack(source)
    g = m.subgraphs[0]
    t = g.tensors[g.inputs[0]]
    t.shapeSignature = [*list(t.shape)[:-1], -1]
    out["dynamic_features.tflite"] = (_pack(m), VERIFY, "dynamic dimension")

    m = _unpack(source)
    big = schema.BufferT()
    big.data = np.ones(2 << 20, np.uint8)  # 2 MiB of weights nobody reads: > 1 MB flash
    m.buffers.append(big)
    out["larger_than_board.tflite"] = (_pack(m), PROFILE, "does not fit arduino-nano33ble")
    return out


def write_corpus(out_dir: Path, source: bytes, float_model: bytes | None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for name, (content, command, phrase) in cases(source, float_model).items():
        (out_dir / name).write_bytes(content)
        index[name] = {"command": command, "error_contains": phrase}
    path = out_dir / "cases.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path


def main():
    here = Path(__file__).resolve().parent
    shared = here.parents[2] / "shared" / "models"
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--source", type=Path, default=shared / "hello_world_int8.tflite")
    ap.add_argument("--float", type=Path, default=shared / "hello_world_float.tflite")
    args = ap.parse_args()
    float_model = args.float.read_bytes() if args.float.is_file() else None
    print(write_corpus(args.out_dir, args.source.read_bytes(), float_model))


if __name__ == "__main__":
    main()
