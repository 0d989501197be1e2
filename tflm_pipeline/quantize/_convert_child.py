"""The child side of :func:`tflm_pipeline.quantize.int8.convert_contained`: a user's
model is converted to int8 in this process, so that a converter crash takes nothing
else down.

``python -m tflm_pipeline.quantize._convert_child JOBS.json`` reads the jobs (each: the
Keras file, optional QAT weights, whether to prepare the model, the calibration samples,
the output file) and writes the flatbuffers.  A TflmpError is one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    from ..errors import TflmpError
    from ..training.keras_io import load_keras_model
    from .int8 import to_int8_tflite
    from .qat import load_qat
    from .rewrite import prepare

    jobs = json.loads(Path(argv[0]).read_text())
    calibration = np.load(jobs[0]["calibration"])
    try:
        for job in jobs:  # one process for all: TensorFlow loads once
            if job.get("qat_weights"):
                model = load_qat(Path(job["model"]), Path(job["qat_weights"]),
                                 trust=job["trust"])
            else:
                model = load_keras_model(job["model"], trust=job["trust"])
                if job.get("prepare"):
                    model = prepare(model).model
            flatbuffer = to_int8_tflite(model, calibration,
                                        per_channel_dense=job["per_channel_dense"])
            Path(job["out"]).write_bytes(flatbuffer)
    except TflmpError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
