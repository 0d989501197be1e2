"""The audio front end training and firmware share: one integer C source, two builds.

``firmware/features/tflmp_audio_frontend.c`` computes log-mel / MFCC features of int16
PCM.  tflmp compiles it for this host at first use (cached in ``~/.cache/tflmp/frontend``
or ``$TFLMP_CACHE``) and calls it through ctypes to make the training features; every
generated audio firmware project carries the same file and the same tables
(:class:`Frontend`), so the device computes the same bits.

Why this design (option B, portable C) and not a TFLM model of Signal ops (option A):

* Integer arithmetic only.  No float, no libm, no FMA contraction, no flush-to-zero:
  glibc on x86-64, newlib on a Cortex-M4F, Xtensa with its fused madd.s, a soft-float
  ESP32-C3 all give the same bits whatever flags the board build uses (Arduino IDE
  builds cannot even pass ``-ffp-contract=off`` to a sketch).  Proven on every shared
  micro_speech clip: host build vs Cortex-M4 build under QEMU, bit for bit
  (tests/test_audio_frontend.py).
* It defines exactly the features the NumPy/``tf.signal`` definition in
  :mod:`.audio_features` describes (Hann window, |rfft|, HTK mel triangles without the DC
  bin, natural log, DCT-II scaled by sqrt(2/M)); the only differences are rounding, measured
  against that float reference in the tests.  The Signal-ops preprocessor computes other
  features (PCAN, noise reduction, log-scaled uint16 energies) and needs the Signal
  kernels linked, which two of the four targets lack (checked in the sources):
  Chirale_TensorFLowLite 2.0.0 (arduino-nano33ble, platformio) has no ``signal/`` at all;
  esp-tflite-micro 1.2.0 (arduino-esp32 3.0.4's bundle) builds only the Rfft and Window
  Signal kernels, not Energy, FilterBank*, PCAN; esp-tflite-micro 1.3.0 and later (the
  esp-idf target) build them all.  It would also make training run the TFLM interpreter clip by
  clip.
* Small: on a Cortex-M4 1.9 kB of code and 5.7 kB of const tables (MFCC defaults), no
  static RAM, a caller-owned scratch of 2 * fft_length int32 + num_mel_bins int64
  (4.4 kB), under 180 B of stack (measured by the tests and -fstack-usage).

Features leave the C as int16 with ``output_frac_bits`` fraction bits (chosen so the
largest possible value fits); training reads them as ``q * 2**-output_frac_bits`` (exact
in float32).  The device turns them into the model's int8 inputs by thresholds
(:meth:`Frontend.input_levels`) enumerated here through the very float32 preprocessing
and quantization tflmp scores the model with, so no float step of the device (FMA in
``raw * scale + offset``) can differ from training either.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..firmware_files import path as firmware_file
from .audio_features import FEATURE_TYPES, FeatureParams

log = logging.getLogger(__name__)

SOURCE = "features/tflmp_audio_frontend.c"
HEADER = "features/tflmp_audio_frontend.h"
FRONTEND = "tflmp-int16-v1"  # recorded in preprocessing.json: which implementation made them
HOST_FLAGS = ["-std=c99", "-O2", "-fPIC", "-shared", "-Wall"]
_Q15, _Q30 = 1 << 15, 1 << 30


class _Config(ctypes.Structure):
    """tflmp_audio_frontend_config, field for field."""
    _fields_ = [("frame_length", ctypes.c_int32), ("frame_step", ctypes.c_int32),
                ("fft_length", ctypes.c_int32), ("fft_log2", ctypes.c_int32),
                ("num_mel_bins", ctypes.c_int32), ("num_mfcc", ctypes.c_int32),
                ("output_frac_bits", ctypes.c_int32), ("log_offset", ctypes.c_int64),
                ("window", ctypes.c_void_p), ("twiddles", ctypes.c_void_p),
                ("mel_segment", ctypes.c_void_p), ("mel_rise", ctypes.c_void_p),
                ("dct", ctypes.c_void_p)]


@dataclass(frozen=True, eq=False)
class Frontend:
    """The integer front end for one feature kind and parameter set: its constants and
    tables, exactly what the C receives on the host and in firmware."""

    kind: str
    params: FeatureParams
    fft_log2: int
    output_frac_bits: int
    log_offset: int  # in mel units, 2**mel_frac_bits = 1.0
    window: np.ndarray  # uint16 [frame_length], Q15
    twiddles: np.ndarray  # int32 [fft_length / 2, 2], Q30
    mel_segment: np.ndarray  # int16 [bins]
    mel_rise: np.ndarray  # uint16 [bins], Q15
    dct: np.ndarray | None  # int32 [num_mel_bins, num_mfcc], Q30; None for log-mel

    @property
    def num_mfcc(self) -> int:
        return self.params.num_mfcc if self.kind == "mfcc" else 0

    @property
    def outputs(self) -> int:
        return self.params.num_mfcc if self.kind == "mfcc" else self.params.num_mel_bins

    @property
    def scratch_bytes(self) -> int:
        """RAM the C needs beside its output: 2 * fft_length int32 + num_mel_bins int64."""
        return 8 * self.params.fft_length + 8 * self.params.num_mel_bins

    def sha256(self) -> str:
        """Digest of every constant and table the C is given."""
        h = hashlib.sha256(f"{FRONTEND} {self.kind} {self.fft_log2} {self.output_frac_bits} "
                           f"{self.log_offset} {self.num_mfcc}".encode())
        for table in (self.window, self.twiddles, self.mel_segment, self.mel_rise, self.dct):
            if table is not None:
                h.update(str(table.dtype).encode() + np.ascontiguousarray(table).tobytes())
        return h.hexdigest()

    def to_dict(self) -> dict:
        """The keys preprocessing.json records besides :meth:`FeatureParams.to_dict`."""
        return {"frontend": FRONTEND, "input": "int16 PCM", "spectrum": "magnitude",
                "log": "natural", "output_frac_bits": self.output_frac_bits,
                "fft_log2": self.fft_log2, "log_offset_q": self.log_offset,
                "frontend_sha256": self.sha256()}

    def input_levels(self, preprocessing, quantize_input) -> tuple[int, np.ndarray]:
        """The int16 feature -> int8 model input map as integers.  All 65,536 features go
        through ``preprocessing.apply`` and ``quantize_input`` (float model inputs -> int8,
        e.g. ``tflite.quant.quantize`` with the model's input tensor): the float32 maths
        tflmp scores the model with.  Returns the lowest input level and, per step up, the
        smallest feature reaching it (ascending; a jump of two levels repeats a feature):
        input of feature q = base + number of thresholds <= q, no float on the device."""
        q = np.arange(-32768, 32768, dtype=np.int32)
        size = int(np.prod(preprocessing.input_shape))
        values = np.zeros(-(-len(q) // size) * size, np.float32)
        values[:len(q)] = self.dequantize(q)
        x = preprocessing.apply(values.reshape(-1, *preprocessing.input_shape))
        levels = np.asarray(quantize_input(x), np.int32).ravel()[:len(q)]
        steps = np.diff(levels)
        if np.any(steps < 0):
            raise TflmpError("the preprocessing maps larger audio features to smaller model "
                             "inputs; an audio run's scale is positive: retrain the model")
        return int(levels[0]), np.repeat(q[1:], steps).astype(np.int16)

    @staticmethod
    def inputs(levels: tuple[int, np.ndarray], features: np.ndarray) -> np.ndarray:
        """int16 features -> int8 model inputs by :meth:`input_levels`' map, as the
        generated ``<name>_feature_to_input`` computes them."""
        base, thresholds = levels
        return (base + np.searchsorted(np.asarray(thresholds), features, side="right")
                ).astype(np.int8)

    def c_tables(self, levels: tuple[int, np.ndarray] | None = None) -> dict:
        """The tables as codegen writes them, in the C config's order; sizes name the
        settings header's ``{MACRO}_FEATURE_*`` macros.  ``levels`` (:meth:`input_levels`)
        adds the feature -> model input thresholds."""
        arrays = [
            ("window", "uint16_t", "{MACRO}_FEATURE_FRAME_LENGTH", self.window,
             "Periodic Hann window, Q15 (32768 = 1.0)."),
            ("twiddles", "int32_t", "{MACRO}_FEATURE_FFT_LENGTH", self.twiddles,
             "cos, sin of 2 pi k / fft_length for k < fft_length / 2, Q30."),
            ("mel_segment", "int16_t", "{MACRO}_FEATURE_FFT_LENGTH / 2 + 1", self.mel_segment,
             "Mel segment of each FFT bin (between band edges i and i + 1; -1: none)."),
            ("mel_rise", "uint16_t", "{MACRO}_FEATURE_FFT_LENGTH / 2 + 1", self.mel_rise,
             "Weight of each bin in band i (band i - 1 gets 1 - it), Q15."),
        ]
        if self.dct is not None:
            arrays.append(("dct", "int32_t",
                           "{MACRO}_FEATURE_NUM_MEL_BINS * {MACRO}_FEATURE_NUM_MFCC", self.dct,
                           "DCT-II basis [band][coefficient] scaled by sqrt(2 / bands), Q30."))
        inputs = None
        if levels is not None:
            inputs = {"base": levels[0], "thresholds": np.asarray(levels[1]).tolist()}
        return {"kind": self.kind, "frontend": FRONTEND, "sha256": self.sha256(),
                "arrays": [{"name": n, "ctype": c, "size": size, "comment": comment,
                            "values": values.ravel().tolist()}
                           for n, c, size, values, comment in arrays],
                "inputs": inputs}

    def features(self, pcm: np.ndarray) -> np.ndarray:
        """int16 PCM (samples,) or (N, samples) -> int16 (…, frames, outputs), by the C."""
        pcm = np.ascontiguousarray(pcm, np.int16)
        batch = pcm.reshape(-1, pcm.shape[-1])
        frames = self.params.num_frames(batch.shape[1])
        if frames == 0:
            raise TflmpError(f"a signal of {batch.shape[1]} samples is shorter than one "
                             f"{self.params.frame_length_ms:g} ms frame "
                             f"({self.params.frame_length} samples); pad it or use shorter "
                             "frames")
        out = np.empty((len(batch), frames, self.outputs), np.int16)
        lib, config = _library(), self._config()
        work = np.empty(2 * self.params.fft_length, np.int32)
        mel = np.empty(self.params.num_mel_bins, np.int64)
        for row, clip in enumerate(batch):
            done = lib.tflmp_audio_frontend_clip(
                ctypes.byref(config), clip.ctypes.data, len(clip), out[row].ctypes.data,
                work.ctypes.data, mel.ctypes.data)
            assert done == frames, (done, frames)
        return out.reshape(*pcm.shape[:-1], frames, self.outputs)

    def dequantize(self, features: np.ndarray) -> np.ndarray:
        """int16 features -> float32 values (exact: a power-of-two scale)."""
        return np.asarray(features, np.float32) * np.float32(2.0 ** -self.output_frac_bits)

    def _config(self) -> _Config:
        p = self.params
        return _Config(p.frame_length, p.frame_step, p.fft_length, self.fft_log2,
                       p.num_mel_bins, self.num_mfcc, self.output_frac_bits, self.log_offset,
                       self.window.ctypes.data, self.twiddles.ctypes.data,
                       self.mel_segment.ctypes.data, self.mel_rise.ctypes.data,
                       None if self.dct is None else self.dct.ctypes.data)


@lru_cache(maxsize=16)
def frontend(kind: str, params: FeatureParams = FeatureParams()) -> Frontend:
    """The :class:`Frontend` of ``kind`` (mfcc / log-mel) with ``params``."""
    if kind not in FEATURE_TYPES:
        raise TflmpError(f"unknown audio features '{kind}': use mfcc or log-mel")
    n = params.fft_length
    if n & (n - 1) or n > 4096:
        raise TflmpError(f"fft_length {n} is not a power of two up to 4096; the device "
                         f"front end needs one: use {1 << (n - 1).bit_length()}")
    if params.num_mel_bins > n // 2:
        raise TflmpError(f"num_mel_bins {params.num_mel_bins} exceeds fft_length / 2 "
                         f"({n // 2}); use fewer bands or a longer FFT")
    fft_log2 = n.bit_length() - 1
    mel_frac_bits = 45 - fft_log2  # magnitudes Q(30 - fft_log2) times Q15 filter weights
    log_offset = int(round(params.log_offset * 2.0 ** mel_frac_bits))
    if log_offset < 1:
        raise TflmpError(f"log_offset {params.log_offset:g} is below the front end's "
                         f"resolution (2^-{mel_frac_bits}); use 1e-6 or more")
    t = np.arange(params.frame_length)
    window = np.round(_Q15 * (0.5 - 0.5 * np.cos(2 * np.pi * t / params.frame_length)))
    k = np.arange(n // 2)
    twiddles = np.round(_Q30 * np.stack([np.cos(2 * np.pi * k / n),
                                         np.sin(2 * np.pi * k / n)], axis=1))
    segment, rise = _mel_segments(params)
    dct = None
    if kind == "mfcc":
        m = np.arange(params.num_mel_bins)[:, None]
        c = np.arange(params.num_mfcc)[None, :]
        dct = np.round(_Q30 * np.sqrt(2.0 / params.num_mel_bins)
                       * np.cos(np.pi * c * (2 * m + 1) / (2 * params.num_mel_bins)))
    # the largest |value|: ln of the offset or of a full-scale frame's mel energy
    bound = max(-math.log(params.log_offset),
                math.log(params.frame_length * (n // 2 + 1)), 1.0)
    if dct is not None:
        bound *= float(np.abs(dct).sum(axis=0).max()) / _Q30
    frac_bits = max(0, min(15, int(math.floor(math.log2(32767 / bound)))))
    return Frontend(kind, params, fft_log2, frac_bits, log_offset,
                    _frozen(window, np.uint16), _frozen(twiddles, np.int32),
                    _frozen(segment, np.int16), _frozen(rise, np.uint16),
                    None if dct is None else _frozen(dct, np.int32))


def frontend_for(features: dict | None) -> Frontend | None:
    """The front end that made a run's features (``preprocessing.json``'s ``features``),
    or None when they are not audio made by it.  Its tables must be those recorded:
    otherwise the device would compute other features than the model was trained on."""
    if not features or features.get("frontend") != FRONTEND:
        return None
    made = frontend(features["type"], FeatureParams.from_dict(features))
    if made.sha256() != features.get("frontend_sha256"):
        raise TflmpError(f"this tflmp computes other {features['type']} tables "
                         f"(sha256 {made.sha256()[:12]}) than the run's features were made "
                         f"with ({str(features.get('frontend_sha256'))[:12]}); retrain the "
                         "model with this tflmp so device and training features agree")
    return made


def compute(signal: np.ndarray, kind: str, params: FeatureParams = FeatureParams()
            ) -> np.ndarray:
    """Features of float samples in [-1, 1) as training uses them: (…, samples) ->
    float32 (…, frames, outputs), computed by the device's C on 16-bit PCM."""
    f = frontend(kind, params)
    return f.dequantize(f.features(to_pcm(signal)))


def to_pcm(signal: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) -> int16 PCM (exact for samples read from 16-bit WAVs)."""
    return np.clip(np.round(np.asarray(signal, np.float64) * 32768.0), -32768, 32767
                   ).astype(np.int16)


def source_files() -> list[Path]:
    """The C files every audio project carries (and this host compiles)."""
    return [firmware_file(HEADER), firmware_file(SOURCE)]


def _mel_segments(params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """For each FFT bin, the mel segment [edge i, edge i+1) it falls in (-1: none, and the
    DC bin never counts, as in tf.signal) and its weight in band i (rising); band i - 1
    gets 1 - that (falling)."""
    bins = params.fft_length // 2 + 1
    hz = np.arange(bins) * (params.sample_rate / params.fft_length)
    mel = 1127.0 * np.log1p(hz / 700.0)
    to_mel = (lambda f: 1127.0 * math.log1p(f / 700.0))
    edges = np.linspace(to_mel(params.lower_edge_hz), to_mel(params.upper_edge_hz),
                        params.num_mel_bins + 2)
    segment = np.searchsorted(edges, mel, side="right") - 1
    outside = (segment < 0) | (segment > params.num_mel_bins) | (np.arange(bins) == 0)
    segment = np.where(outside, -1, segment)
    safe = np.clip(segment, 0, params.num_mel_bins)
    rise = np.where(outside, 0, (mel - edges[safe]) / (edges[safe + 1] - edges[safe]))
    return segment, np.round(_Q15 * rise)


def _frozen(values: np.ndarray, dtype) -> np.ndarray:
    out = np.ascontiguousarray(values, dtype)
    out.flags.writeable = False
    return out


def _cache_dir() -> Path:
    return Path(os.environ.get("TFLMP_CACHE", Path.home() / ".cache" / "tflmp")) / "frontend"


def host_compiler() -> str:
    """The host C compiler (``$CC``, else cc or gcc)."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise TflmpError("no C compiler found (cc, gcc or clang): tflmp computes audio features "
                     "with the C the firmware runs; install one, e.g. 'apt-get install gcc'")


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    """The front end built for this host once per source, compiler and flags."""
    cc = host_compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(" ".join(HOST_FLAGS + [version]).encode())
    for f in source_files():
        key.update(f.read_bytes())
    lib = _cache_dir() / f"tflmp_audio_frontend-{key.hexdigest()[:16]}.so"
    if not lib.is_file():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_name(f"{lib.name}.{os.getpid()}.tmp")
        cmd = [cc, *HOST_FLAGS, f"-I{firmware_file('features')}", str(firmware_file(SOURCE)),
               "-o", str(tmp)]
        log.info("compiling the audio front end for this host: %s", " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise TflmpError(f"compiling {SOURCE} with {cc} failed: "
                             f"{r.stderr.strip()[-300:]}; check the compiler installation")
        os.replace(tmp, lib)
    dll = ctypes.CDLL(str(lib))
    dll.tflmp_audio_frontend_clip.restype = ctypes.c_int32
    dll.tflmp_audio_frontend_clip.argtypes = [ctypes.POINTER(_Config), ctypes.c_void_p,
                                              ctypes.c_int32, ctypes.c_void_p,
                                              ctypes.c_void_p, ctypes.c_void_p]
    return dll
