"""What the USER HOOK in every target's main says about the model's input, in plain
words (shape, units, rate, order, what each value is), and how a board's own sensor is
wired to it: the Nano 33 BLE's IMU for sensor windows, its PDM microphone or an ESP32's
I2S microphone for audio models.  Values only; the templates in ``firmware/`` write the C."""

from __future__ import annotations

import re
import textwrap

from ..preprocessing import Preprocessing

# the six values an IMU read gives, in the order the hook's `imu` array holds them
IMU_VALUES = ("acceleration x", "acceleration y", "acceleration z",
              "angular rate x", "angular rate y", "angular rate z")
NO_IMU_VALUE = 255


def user_hook(pre: Preprocessing | None, input_shape, channel_names: list[str] | None,
              audio: bool) -> dict:
    """The hook's words (``lines``: comment lines of at most 86 characters) and wiring for
    a model with ``input_shape`` (batch first)."""
    hook = _hook(pre, input_shape, channel_names, audio)
    hook["lines"] = textwrap.wrap("The model takes " + " ".join(hook["lines"]), 86,
                                  break_on_hyphens=False)
    return hook


def _hook(pre, input_shape, channel_names, audio) -> dict:
    # the raw sample's shape (a model may take it flattened)
    shape = [int(d) for d in (pre.input_shape if pre is not None else input_shape[1:])]
    if audio:
        f = pre.features
        return {"kind": "audio", "lines": [
            f"one clip of {int(f['clip_samples'])} 16-bit mono PCM samples at "
            f"{int(f['sample_rate'])} Hz ({int(f['clip_samples']) / int(f['sample_rate']):g} s), "
            "full scale +-32768, oldest first;",
            "ClassifyAudio() computes the features training used (the audio front end)."]}
    if pre is None:
        return {"kind": "other", "lines": [
            f"{' x '.join(map(str, shape))} float values, exactly as the model's training "
            "data had them (tflmp knows no preprocessing for this model)."]}
    units = ("in the units of the training data (the run records none: your sensor code "
             "must produce the same units, e.g. g vs m/s^2 vs mg)")
    if len(shape) == 2 and (pre.sample_rate_hz or channel_names):
        rows, channels = shape
        names = list(channel_names or [f"channel {c}" for c in range(channels)])
        rate = pre.sample_rate_hz
        timing = (f" at {rate:g} Hz ({rows / rate:g} s)" if rate else
                  " (the data gave no sample rate: use the training data's)")
        lines = [f"{rows} rows x {channels} channels{timing}, oldest row first, the "
                 f"{channels} channel values of a row next to each other (row-major),",
                 f"raw values {units}; the runner standardizes them per channel.",
                 "Channels, in order: " + ", ".join(names) + "."]
        axes = [_imu_value(n, c) for c, n in enumerate(names)]
        return {"kind": "series", "lines": lines, "rows": rows, "channels": channels,
                "rate": rate, "imu": [{"channel": c, "name": n, "value": a,
                                       "what": IMU_VALUES[a] if a != NO_IMU_VALUE else None}
                                      for c, (n, a) in enumerate(zip(names, axes))]}
    what = (f"{' x '.join(map(str, shape))} {pre.raw_dtype} values as the training data "
            "stored them" + (", channels innermost" if pre.per_channel else "")
            + ("" if pre.raw_dtype.startswith("float") else
               f" (pass them as floats, e.g. pixel 0..255)"))
    return {"kind": "other", "lines": [what + ";", f"raw values {units}."]}


def _imu_value(name: str, channel: int) -> int:
    """Which IMU value stands in for a channel: gyroscope channels (named gyr*) take the
    angular rates, the rest the accelerations; the axis from a trailing x/y/z (or the
    channel's position within its group of three)."""
    low = name.lower()
    gyro = "gyr" in low
    axis = re.search(r"(?:^|[^a-z])([xyz])$", low) or re.search(r"_([xyz])(?:_|$)", low)
    index = "xyz".index(axis.group(1)) if axis else channel % 3
    return index + (3 if gyro else 0)
