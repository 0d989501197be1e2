"""Flash and RAM the streaming helpers and the camera path add to a generated runner on a
Cortex-M4: the runner object compiled with arm-none-eabi-g++ -Os (TFLM declarations from
tests/tflm_shim.py) with and without them, measured by arm-none-eabi-size.

    python bench/stream_size.py

Prints one JSON line per model: text (flash) and bss+data (RAM) of both objects.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SHARED = REPO.parent / "shared" / "models"

from tflm_shim import write_shim  # noqa: E402
from tiny_tflite import fully_connected  # noqa: E402

from tflm_pipeline.codegen import project as project_module  # noqa: E402
from tflm_pipeline.codegen import settings as settings_module  # noqa: E402
from tflm_pipeline.codegen.golden import GoldenVectors  # noqa: E402
from tflm_pipeline.codegen.project import ProjectSpec, write_firmware_project  # noqa: E402
from tflm_pipeline.data.audio_features import FeatureParams  # noqa: E402
from tflm_pipeline.data.audio_frontend import frontend  # noqa: E402
from tflm_pipeline.mcu.build_check import CM4_FLAGS, CXX_FLAGS  # noqa: E402
from tflm_pipeline.mcu.releases import get_release  # noqa: E402
from tflm_pipeline.mcu.targets import get_target  # noqa: E402
from tflm_pipeline.preprocessing import Preprocessing  # noqa: E402
from tflm_pipeline.tflite.model_info import read_model  # noqa: E402
from tflm_pipeline.tflite.quant import quantize  # noqa: E402

TARGET = "esp-idf"


def cases():
    """(name, model, preprocessing, hop, audio tables): one sensor, audio and camera model."""
    made = frontend("log-mel")
    features = {**FeatureParams().to_dict("log-mel"), "clip_samples": 16000, **made.to_dict()}
    speech = (SHARED / "micro_speech_quantized.tflite").read_bytes()
    pre_speech = Preprocessing("speech", (49, made.outputs, 1), "float32", 1.0, 0.0,
                               ["silence", "unknown", "yes", "no"], features=features)
    t_in = read_model(speech).inputs[0]
    tables = made.c_tables(made.input_levels(pre_speech, lambda x: quantize(x, t_in)))
    return [
        ("gait", fully_connected((1, 128 * 9), units=3),
         Preprocessing("gait", (128, 9), "float32", [0.01] * 9, [0.0] * 9, ["a", "b", "c"],
                       sample_rate_hz=64.0), 64, None),
        ("kws", speech, pre_speech, None, tables),
        ("person", (SHARED / "person_detect.tflite").read_bytes(),
         Preprocessing("people", (96, 96, 1), "uint8", 2 / 255, -1.0, ["no", "yes"]), None,
         None),
    ]


def runner_size(tmp: Path, name, model, pre, hop, tables, helpers: bool) -> dict:
    info = read_model(model)
    target = get_target(TARGET)
    vectors = GoldenVectors(np.zeros((1, *info.inputs[0].shape[1:]), np.int8),
                            np.zeros((1, *info.outputs[0].shape[1:]), np.int8), [None],
                            "bench", "none")
    out = tmp / f"{name}_{int(helpers)}"
    spec = ProjectSpec(target=target, ident=name, out_dir=out, model=model, info=info,
                       source=f"{name}.tflite", preprocessing=pre, output="class",
                       labels=pre.labels, ops=target.registrations(info),
                       arena=target.arena_for(info), vectors=vectors, stream_hop=hop,
                       audio_frontend=tables)
    off = {"stream": None, "camera": None}
    with mock.patch.object(project_module, "stream_context", return_value=off) \
            if not helpers else mock.MagicMock(), \
            mock.patch.object(settings_module, "stream_context", return_value=off) \
            if not helpers else mock.MagicMock():
        write_firmware_project(spec)
    code = out / "main"
    shim = write_shim(tmp / "shim", get_release(target.releases[0]).op_set)
    obj = out / "runner.o"
    subprocess.run(["arm-none-eabi-g++", *CM4_FLAGS, *CXX_FLAGS, "-Os", "-DTFLMP_CHECK",
                    "-I", str(code), "-I", str(shim), "-c", str(code / f"{name}_runner.cc"),
                    "-o", str(obj)], check=True)
    sizes = subprocess.run(["arm-none-eabi-size", str(obj)], check=True, capture_output=True,
                           text=True).stdout.split("\n")[1]
    text, data, bss = sizes.split()[:3]
    return {"flash": int(text) + int(data), "ram": int(data) + int(bss)}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, pre, hop, tables in cases():
            without = runner_size(Path(tmp), name, model, pre, hop, tables, False)
            with_ = runner_size(Path(tmp), name, model, pre, hop, tables, True)
            print(json.dumps({"model": name, "without": without, "with": with_,
                              "added_flash": with_["flash"] - without["flash"],
                              "added_ram": with_["ram"] - without["ram"]}))


if __name__ == "__main__":
    main()
