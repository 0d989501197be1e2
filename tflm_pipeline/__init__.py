"""tflmp: train Keras models, quantize them (QAT/PTQ) to int8, and verify them in the
real TensorFlow Lite Micro interpreter before they reach a microcontroller.

The commands are importable, typed and lazy (importing this package loads neither
TensorFlow nor the TFLM runtime)::

    from tflm_pipeline import RunConfig, train, verify, firmware
    result = train(RunConfig(dataset="digits", epochs=10), out="runs/demo")
    print(result.record.ledger.rows["qat_int8_tflm"].value)
    firmware("runs/demo", "esp32")

Layout: ``commands/`` (one module per CLI verb) above the stage wings ``data/``,
``training/``, ``quantize/``, ``tflite/`` (flatbuffer facts, no TensorFlow), ``tflm/``,
``mcu/``, ``codegen/`` and ``reports/``, which stand on the run record (``record``), the
run folder (``runs``), the settings (``config``) and the tasks (``tasks``).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> (module, attribute), imported on first use (PEP 562)
_FACADE = {
    "train": ("commands.train", "train"),
    "convert": ("commands.convert", "convert"),
    "verify": ("commands.verify", "verify"),
    "profile": ("commands.profile", "profile"),
    "firmware": ("commands.firmware", "firmware"),
    "flash": ("commands.flash", "flash"),
    "report": ("commands.report", "report"),
    "compare": ("commands.compare", "compare"),
    "doctor": ("commands.doctor", "doctor"),
    "tune": ("commands.tune", "tune"),
    "Limits": ("tuning.space", "Limits"),
    "RunConfig": ("config", "RunConfig"),
    "TflmpError": ("errors", "TflmpError"),
}
__all__ = ["__version__", *_FACADE]


def __getattr__(name: str):
    if name not in _FACADE:
        raise AttributeError(f"module 'tflm_pipeline' has no attribute '{name}'")
    module, attribute = _FACADE[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_FACADE))
