import csv
import re
import shutil
import wave

import numpy as np
import pytest
from PIL import Image

from conftest import shared
from tflm_pipeline.data import audio_features
from tflm_pipeline.data.audio_features import FeatureParams, log_mel, mfcc
from tflm_pipeline.data.audio_frontend import compute as frontend_features
from tflm_pipeline.data.augment import augment_clips, image_augmenter, parse_augment
from tflm_pipeline.data.image_folder import load_image_folder
from tflm_pipeline.data.sensor_csv import load_csv_windows
from tflm_pipeline.data.wav_folder import load_wav_folder, read_wav
from tflm_pipeline.errors import TflmpError

SPEECH = ("models", "testdata", "micro_speech")


def _raises(match_text):
    return pytest.raises(TflmpError, match=re.escape(match_text))


# --- CSV windows ---------------------------------------------------------------------

def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _activity_rows():
    """60 rows: 20 walk, 20 run, 20 idle; ax = row index, ay = a per-class level + noise."""
    rng = np.random.default_rng(1)
    level = {"walk": 5.0, "run": 50.0, "idle": -3.0}
    names = ["walk"] * 20 + ["run"] * 20 + ["idle"] * 20
    return [[i, level[n] + rng.normal(), n] for i, n in enumerate(names)]


def test_csv_windows_within_one_label_and_train_only_standardization(tmp_path):
    path = _write_csv(tmp_path / "imu.csv", ["ax", "ay", "label"], _activity_rows())
    ds = load_csv_windows(path, window=4, stride=2)
    # grid starts 0, 2, ..., 56: the windows at 18 and 38 cross a label change
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (19, 5, 3)
    assert ds.preprocessing.labels == ["idle", "run", "walk"]
    assert ds.preprocessing.input_shape == (4, 2) and ds.x_train.dtype == np.float32
    assert "27 kept, 2 crossing a label change skipped" in ds.notes[0]
    label_of_row = ["walk"] * 20 + ["run"] * 20 + ["idle"] * 20
    starts = []
    for split in ("train", "val", "test"):
        for x, y in zip(getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")):
            first = int(x[0, 0])
            assert np.array_equal(x[:, 0], np.arange(first, first + 4))  # consecutive rows
            rows_labels = {label_of_row[r] for r in range(first, first + 4)}
            assert rows_labels == {ds.preprocessing.labels[y]}
            starts.append(first)
    assert sorted(starts) == [s for s in range(0, 57, 2) if s not in (18, 38)]
    # per-channel standardization from train windows only
    train = ds.x_train.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(ds.preprocessing.scale, 1 / train.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(ds.preprocessing.offset, -train.mean(axis=0) / train.std(axis=0),
                               rtol=1e-6)
    everything = np.concatenate([ds.x_train, ds.x_val, ds.x_test]).reshape(-1, 2)
    assert not np.allclose(ds.preprocessing.scale, 1 / everything.std(axis=0), rtol=1e-4)
    x, y = ds.inputs("train")
    np.testing.assert_allclose(x.reshape(-1, 2).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x.reshape(-1, 2).std(axis=0), 1, atol=1e-5)
    # seeded: the same file loads to the same splits
    assert ds.fingerprint() == load_csv_windows(path, window=4, stride=2).fingerprint()


def test_csv_session_column_resets_windows_and_int_labels_sort_numerically(tmp_path):
    rows = [[f"s{i // 16}", i, -i, 10 if i < 32 else 2] for i in range(64)]
    path = _write_csv(tmp_path / "sessions.csv", ["session", "gx", "gy", "label"], rows)
    ds = load_csv_windows(path, window=4, stride=3)
    assert ds.preprocessing.labels == ["2", "10"]
    assert ds.preprocessing.input_shape == (4, 2)  # the session column is no channel
    starts = sorted(int(x[0, 0]) for x in np.concatenate([ds.x_train, ds.x_val, ds.x_test]))
    # each 16-row session starts its own grid, so no window spans two sessions
    assert starts == [s + k for s in (0, 16, 32, 48) for k in (0, 3, 6, 9, 12)]
    assert "label or session change" in ds.notes[0]
    only_gx = load_csv_windows(path, window=4, stride=3, columns=["gx"])
    assert only_gx.preprocessing.input_shape == (4, 1)


def test_csv_errors_name_the_file_row_and_fix(tmp_path):
    rows = _activity_rows()
    good = _write_csv(tmp_path / "good.csv", ["ax", "ay", "label"], rows)
    with _raises(f"CSV file {tmp_path / 'nope.csv'} does not exist"):
        load_csv_windows(tmp_path / "nope.csv", window=4, stride=2)
    with _raises(f"{good} has no label column 'activity' (columns: ax, ay, label); name it "
                 "with --label-column"):
        load_csv_windows(good, window=4, stride=2, label_column="activity")
    with _raises(f"{good} has no column(s) az (columns: ax, ay, label)"):
        load_csv_windows(good, window=4, stride=2, columns=["ax", "az"])
    bad = [list(r) for r in rows]
    bad[3][1] = "abc"  # data row 4 = line 5 (line 1 is the header)
    with _raises(f"{tmp_path / 'text.csv'}:5: column 'ay' holds 'abc', not a number"):
        load_csv_windows(_write_csv(tmp_path / "text.csv", ["ax", "ay", "label"], bad),
                         window=4, stride=2)
    for value in ("nan", "inf"):
        bad = [list(r) for r in rows]
        bad[5][0] = value
        with _raises(f"{tmp_path / 'nan.csv'}:7: the row holds NaN or inf"):
            load_csv_windows(_write_csv(tmp_path / "nan.csv", ["ax", "ay", "label"], bad),
                             window=4, stride=2)
    with _raises(f"{tmp_path / 'short.csv'} has 3 data rows, fewer than --window 4"):
        load_csv_windows(_write_csv(tmp_path / "short.csv", ["ax", "label"],
                                    [[1, "a"], [2, "a"], [3, "a"]]), window=4, stride=1)
    jump = rows[:20] + [[100, 0, "jump"], [101, 0, "jump"]] + rows[20:]
    with _raises(f"{tmp_path / 'jump.csv'}: class 'jump' has no complete window of 4 rows "
                 "(its longest unbroken run is 2 rows)"):
        load_csv_windows(_write_csv(tmp_path / "jump.csv", ["ax", "ay", "label"], jump),
                         window=4, stride=2)
    with _raises("--stride must be a positive whole number"):
        load_csv_windows(good, window=4, stride=0)


# --- image folders -------------------------------------------------------------------

def _save_image(path, value, size=(20, 30), mode="L"):
    """A uniform image (exact after any resize) or a given array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((*size, len(mode)), value, np.uint8) if np.isscalar(value) else value
    Image.fromarray(array.squeeze() if mode == "L" else array, mode).save(path)


def _expected(path, size, mode):
    with Image.open(path) as img:
        return np.asarray(img.convert(mode).resize(size[::-1], Image.Resampling.BILINEAR))


def test_image_folder_png_jpg_bmp_and_real_shared_images(tmp_path):
    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for i, ext in enumerate(["png", "PNG", "jpg", "jpeg", "JPG", "bmp", "png", "bmp", "png"]):
        _save_image(root / "circle" / f"c{i}.{ext}", rng.integers(0, 255, (24, 18, 3), np.uint8),
                    mode="RGB")
        _save_image(root / "square" / f"s{i}.{ext}", 40 + 20 * i)
    shutil.copy(shared("models", "testdata", "mnist_lstm", "sample3.png"), root / "circle")
    shutil.copy(shared("models", "testdata", "person_detection", "person.bmp"), root / "square")
    (root / "square" / "notes.txt").write_text("not an image")
    (root / ".thumbnails").mkdir()
    for color, mode in (("grayscale", "L"), ("rgb", "RGB")):
        ds = load_image_folder(root, size=(16, 12), color=color)
        channels = len(mode)
        assert ds.preprocessing.input_shape == (16, 12, channels)
        assert ds.preprocessing.labels == ["circle", "square"]
        assert ds.preprocessing.scale == pytest.approx(1 / 255)
        assert ds.preprocessing.raw_dtype == "uint8"
        assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (14, 4, 2)
        # every sample is exactly one file resized by Pillow, with its folder's label
        expected = {(f.parent.name, _expected(f, (16, 12), mode).tobytes())
                    for f in root.glob("*/*") if f.suffix != ".txt"}
        loaded = {(ds.preprocessing.labels[y], x.tobytes())
                  for split in ("train", "val", "test")
                  for x, y in zip(getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}"))}
        assert loaded == expected and len(expected) == 20
        assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (16, 12, channels)


def test_image_train_test_folders_are_kept(tmp_path):
    root = tmp_path / "split"
    for split, base, count in (("train", 10, 12), ("test", 100, 3)):
        for cls, shift in (("a", 0), ("b", 1)):
            for i in range(count):
                _save_image(root / split / cls / f"{i}.png", base + shift)
    ds = load_image_folder(root, size=(8, 8), val_fraction=0.25)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (18, 6, 6)
    assert set(np.unique(ds.x_test)) == {100, 101}  # the test folder, untouched
    assert set(np.unique(ds.x_val)) == {10, 11} and np.bincount(ds.y_val).tolist() == [3, 3]
    assert "train/ and test/ folders; validation = 25% of train" in ds.notes[0]
    for i in range(2):
        _save_image(root / "val" / "a" / f"{i}.png", 50)
    ds = load_image_folder(root, size=(8, 8))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (24, 2, 6)
    assert set(np.unique(ds.x_val)) == {50}


def test_image_exif_orientation_is_applied(tmp_path):
    array = np.zeros((10, 20), np.uint8)
    array[:, :10] = 200  # left half bright; EXIF orientation 6 = display rotated 90 deg CW
    exif = Image.Exif()
    exif[0x0112] = 6
    for cls in ("a", "b"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(array).save(tmp_path / "photos" / cls / f"{i}.png", exif=exif)
    ds = load_image_folder(tmp_path / "photos", size=(20, 10))
    assert np.array_equal(ds.x_test[0, :, :, 0], np.rot90(array, k=-1))


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with _raises(f"{empty} has no class folders: put each class's images in {empty}/<class name>/"):
        load_image_folder(empty, size=(8, 8))
    with _raises(f"image folder {tmp_path / 'missing'} does not exist"):
        load_image_folder(tmp_path / "missing", size=(8, 8))
    root = tmp_path / "classes"
    for i in range(8):
        _save_image(root / "a" / f"{i}.png", 1)
    (root / "b").mkdir()
    (root / "b" / "readme.txt").write_text("no images here")
    with _raises(f"class folder {root / 'b'} has no .png/.jpg/.jpeg/.bmp files"):
        load_image_folder(root, size=(8, 8))
    for i in range(8):
        _save_image(root / "b" / f"{i}.png", 2)
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with _raises(f"cannot read image {root / 'b' / 'broken.jpg'}:"):
        load_image_folder(root, size=(8, 8))
    (root / "b" / "broken.jpg").unlink()
    with _raises("--color must be grayscale or rgb, got 'cmyk'"):
        load_image_folder(root, size=(8, 8), color="cmyk")
    with _raises("--image-size must be two positive integers"):
        load_image_folder(root, size=(8, 0))
    layout = tmp_path / "layout"
    for split, classes in (("train", ("a", "b")), ("test", ("a", "b", "c"))):
        for cls in classes:
            _save_image(layout / split / cls / "0.png", 3)
    with _raises(f"{layout / 'test'} has class folder(s) c that {layout / 'train'} lacks"):
        load_image_folder(layout, size=(8, 8))
    shutil.rmtree(layout / "test")
    with _raises(f"{layout} has a train/ folder but no test/ folder"):
        load_image_folder(layout, size=(8, 8))


# --- WAV folders ---------------------------------------------------------------------

@pytest.fixture
def speech_folder(tmp_path):
    """yes/ and no/ class folders of the real micro_speech clips (1 s and 30 ms)."""
    root = tmp_path / "speech"
    for word in ("yes", "no"):
        (root / word).mkdir(parents=True)
        for i in range(9):
            shutil.copy(shared(*SPEECH, f"{word}_1000ms.wav"), root / word / f"{word}{i}.wav")
        shutil.copy(shared(*SPEECH, f"{word}_30ms.wav"), root / word / f"{word}_short.WAV")
    return root


def _write_wav(path, samples, rate=16000, channels=1, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, f"<i{width}").tobytes())


def test_wav_folder_mfcc_49x10_padded_and_standardized_on_train(speech_folder):
    ds = load_wav_folder(speech_folder)
    pre = ds.preprocessing
    assert pre.input_shape == (49, 10, 1) and pre.raw_dtype == "float32"
    assert pre.labels == ["no", "yes"]
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (14, 4, 2)
    assert pre.features["type"] == "mfcc" and pre.features["num_mfcc"] == 10
    assert FeatureParams.from_dict(pre.features) == FeatureParams()
    assert "2 shorter padded, 0 longer trimmed" in ds.notes[0]
    # the features are those the device's C computes of the clip, the 30 ms ones
    # zero-padded to 1 s (tests/test_audio_frontend.py: that C against mfcc())
    yes = read_wav(shared(*SPEECH, "yes_1000ms.wav"))
    short = np.zeros(16000, np.float32)
    short[:480] = read_wav(shared(*SPEECH, "yes_30ms.wav"))
    everything = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    for clip in (yes, short):
        assert any(np.array_equal(x[..., 0], frontend_features(clip, "mfcc")) for x in everything)
    train = ds.x_train.astype(np.float64)
    assert pre.scale == pytest.approx(1 / train.std()) and pre.offset == pytest.approx(
        -train.mean() / train.std())
    x, _ = ds.inputs("train")
    assert abs(x.mean()) < 1e-5 and x.std() == pytest.approx(1, abs=1e-5)
    # a --cv fold fits the same one-number standardization on its own training part
    assert ds.standardized == {"axis": None}
    part = ds.x_train[:7].astype(np.float64)
    fold = ds.preprocessing_fitted_on(ds.x_train[:7])
    assert fold.scale == pytest.approx(1 / part.std()) and isinstance(fold.offset, float)


def test_wav_log_mel_and_clip_length(speech_folder):
    ds = load_wav_folder(speech_folder, features="log-mel", clip_seconds=0.5)
    assert ds.preprocessing.input_shape == (24, 40, 1)  # 1 + (8000 - 480) // 320 frames
    assert ds.preprocessing.features["type"] == "log-mel"
    assert "2 shorter padded, 18 longer trimmed" in ds.notes[0]
    with _raises("unknown audio features 'spectrogram': use mfcc or log-mel"):
        load_wav_folder(speech_folder, features="spectrogram")


def test_wav_format_errors_name_the_file_and_expected_format(speech_folder):
    tone = (np.sin(np.arange(8000) * 0.1) * 8000).astype(np.int16)
    bad = speech_folder / "no" / "phone.wav"
    _write_wav(bad, tone, rate=8000)
    with _raises(f"{bad} is 8000 Hz, 1 channel(s), 16-bit; expected 16000 Hz mono 16-bit PCM"):
        load_wav_folder(speech_folder)
    _write_wav(bad, np.repeat(tone, 2), channels=2)
    with _raises(f"{bad} is 16000 Hz, 2 channel(s), 16-bit; expected 16000 Hz mono"):
        load_wav_folder(speech_folder)
    _write_wav(bad, tone.astype(np.int32) << 16, width=4)
    with _raises(f"{bad} is 16000 Hz, 1 channel(s), 32-bit"):
        load_wav_folder(speech_folder)
    bad.write_bytes(b"RIFF1234WAVEjunk")
    with _raises(f"cannot read {bad} as a PCM WAV file"):
        load_wav_folder(speech_folder)


def test_wav_augmentation_adds_copies_to_train_only_deterministically(speech_folder, tmp_path):
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    shutil.copy(shared(*SPEECH, "noise_1000ms.wav"), noise_dir)
    options = {"time_shift_ms": 100, "noise_dir": noise_dir, "noise_snr_db": (5, 20), "copies": 2}
    plain = load_wav_folder(speech_folder)
    augmented = load_wav_folder(speech_folder, augment=options)
    n = len(plain.y_train)
    assert len(augmented.y_train) == 3 * n
    assert np.array_equal(augmented.x_train[:n], plain.x_train)
    assert np.array_equal(augmented.y_train[n:], np.repeat(plain.y_train, 2))
    copies = augmented.x_train[n:]
    assert not any(np.array_equal(c, o) for c, o in zip(copies, np.repeat(plain.x_train, 2, 0)))
    for split in ("val", "test"):
        assert augmented.fingerprint()[split] == plain.fingerprint()[split]
    assert augmented.fingerprint() == load_wav_folder(speech_folder, augment=options).fingerprint()
    assert "2 copies per clip (time shift up to +-100 ms, noise from" in augmented.notes[1]
    with _raises(f"noise folder {tmp_path / 'none'} has no .wav files"):
        load_wav_folder(speech_folder, augment={**options, "noise_dir": tmp_path / "none"})
    with _raises("unknown audio augmentation option(s) pitch"):
        load_wav_folder(speech_folder, augment={"pitch": 2})


def test_augment_clips_shift_and_snr():
    rng = np.random.default_rng(0)
    clip = (np.sin(np.arange(1600) * 0.05) * 0.3).astype(np.float32)
    shifted = augment_clips(clip[None], {"time_shift_ms": 10, "copies": 8}, 16000, rng)
    assert shifted.shape == (8, 1600)
    shifts = set()
    for copy in shifted:  # each copy is the clip moved by at most 160 samples, zero-filled
        k = next(k for k in range(-160, 161) if np.array_equal(copy, np.roll(clip, k) * (
            (np.arange(1600) >= k) & (np.arange(1600) < 1600 + k))))
        shifts.add(k)
    assert min(shifts) < 0 < max(shifts)
    noise = [rng.normal(size=5000).astype(np.float32)]
    noisy = augment_clips(clip[None], {"noise_dir": "n", "noise_snr_db": (10, 12), "copies": 4},
                          16000, rng, noise)
    for copy in noisy:
        snr = 10 * np.log10(np.mean(clip ** 2) / np.mean((copy - clip) ** 2))
        assert 10 - 1e-3 <= snr <= 12 + 1e-3


# --- audio features vs tf.signal -----------------------------------------------------

def test_log_mel_and_mfcc_match_tf_signal():
    from tflm_pipeline.tf_env import load

    tf, _, _ = load()
    custom = FeatureParams(frame_length_ms=25, frame_step_ms=10, fft_length=1024,
                           num_mel_bins=32, lower_edge_hz=60, upper_edge_hz=7600, num_mfcc=13)
    for name, params in (("yes_1000ms.wav", FeatureParams()), ("noise_1000ms.wav", custom)):
        signal = read_wav(shared(*SPEECH, name))
        stft = tf.signal.stft(signal, params.frame_length, params.frame_step, params.fft_length)
        weights = tf.signal.linear_to_mel_weight_matrix(
            params.num_mel_bins, params.fft_length // 2 + 1, params.sample_rate,
            params.lower_edge_hz, params.upper_edge_hz)
        reference = tf.math.log(tf.tensordot(tf.abs(stft), weights, 1) + params.log_offset)
        reference_mfcc = tf.signal.mfccs_from_log_mel_spectrograms(reference)[:, :params.num_mfcc]
        ours = log_mel(signal, params)
        assert ours.shape == tuple(reference.shape) and ours.dtype == np.float32
        assert np.abs(ours - reference.numpy()).max() < 1e-3
        assert np.abs(mfcc(signal, params) - reference_mfcc.numpy()).max() < 1e-3
    assert log_mel(signal, FeatureParams()).shape == (49, 40)
    assert mfcc(np.stack([signal, signal]), FeatureParams()).shape == (2, 49, 10)


def test_feature_params_dict_and_errors():
    d = FeatureParams().to_dict("log-mel")
    assert d["type"] == "log-mel" and d["frame_length"] == 480 and d["frame_step"] == 320
    assert FeatureParams.from_dict(d) == FeatureParams()
    with _raises("fft_length 256 is shorter than a frame of 480 samples; use 512"):
        FeatureParams(fft_length=256)
    with _raises("mel range 20.0-9000.0 Hz must rise within 0-8000 Hz"):
        FeatureParams(upper_edge_hz=9000.0)
    with _raises("a signal of 100 samples is shorter than one 30 ms frame"):
        audio_features.log_mel(np.zeros(100))


# --- augmentation options and the image augmenter ------------------------------------

def test_parse_augment():
    assert parse_augment("flip,shift=0.1,rotate=10") == {
        "flip": True, "shift": 0.1, "rotate_degrees": 10.0}
    assert parse_augment("rotate=5") == {"flip": False, "shift": 0.0, "rotate_degrees": 5.0}
    assert parse_augment("time-shift=100,noise=/data/noise,snr=5:20,copies=2") == {
        "time_shift_ms": 100.0, "noise_dir": "/data/noise", "noise_snr_db": (5.0, 20.0),
        "copies": 2}
    assert parse_augment("time_shift=50, snr=10")["noise_snr_db"] == (10.0, 10.0)
    for text, message in (
            ("flip,zoom=0.2", "--augment: unknown key 'zoom'"),
            ("flip,copies=2", "--augment mixes image and audio keys (flip, copies)"),
            ("flip=1", "--augment: 'flip' takes no value"),
            ("shift", "--augment: 'shift' needs a value (KEY=VALUE)"),
            ("shift=a lot", "--augment shift=a lot: 'a lot' is not a number"),
            ("shift=1.5", "--augment shift=1.5 is out of range: use 0 or more, below 1"),
            ("time-shift=100,snr=20:5", "--augment snr=20:5 must be LOW:HIGH in dB"),
            ("time-shift=100,copies=0", "--augment copies=0 must be a whole number of at least 1"),
            ("copies=3", "--augment sets no audio augmentation"),
            (" , ", "--augment is empty")):
        with _raises(message):
            parse_augment(text)


def test_image_augmenter_in_tf_data_pipeline():
    from tflm_pipeline.tf_env import load

    tf, _, _ = load()
    image = np.zeros((12, 12, 1), np.float32)
    image[2:5, 1:4] = 1.0  # top-left blob: a horizontal flip moves it right
    batch = np.repeat(image[None], 16, axis=0)

    def run(augmenter, batched):
        ds = tf.data.Dataset.from_tensor_slices((batch, np.arange(16)))
        ds = (ds.batch(8) if batched else ds).map(augmenter)
        x = np.concatenate([a.numpy().reshape(-1, 12, 12, 1) for a, _ in ds])
        return x, np.concatenate([np.ravel(b.numpy()) for _, b in ds])

    flipped, labels = run(image_augmenter(True, 0.0, 0.0, seed=1), batched=True)
    assert np.array_equal(labels, np.arange(16))
    mirrored = [np.array_equal(x, image[:, ::-1]) for x in flipped]
    assert all(m or np.array_equal(x, image) for m, x in zip(mirrored, flipped))
    assert 0 < sum(mirrored) < 16
    moved, _ = run(image_augmenter(False, 0.2, 15.0, seed=3), batched=False)
    assert moved.shape == batch.shape and not np.allclose(moved, batch)
    again, _ = run(image_augmenter(False, 0.2, 15.0, seed=3), batched=False)
    assert np.array_equal(moved, again)
    with _raises("--augment sets no image augmentation"):
        image_augmenter(False, 0.0, 0.0, seed=0)


# --- .ts series (UCR/UEA/Monash archives) --------------------------------------------

def test_ts_classification_and_regression_series():
    from tflm_pipeline.data import load_dataset, task_hint
    from tflm_pipeline.data.spec import DataSpec

    motions = load_dataset(str(shared("datasets", "timeseries", "basicmotions")))
    assert motions.preprocessing.input_shape == (100, 6)
    assert motions.preprocessing.labels == ["Standing", "Running", "Walking", "Badminton"]
    assert len(motions.y_test) == 40 and len(motions.y_train) + len(motions.y_val) == 40
    assert motions.y_train.dtype == np.int64 and motions.task == "classification"
    x, _ = motions.inputs("train")  # standardized per channel on train
    assert np.allclose(x.reshape(-1, 6).mean(0), 0, atol=1e-4)
    covid = load_dataset(str(shared("datasets", "timeseries", "covid3month")))
    assert covid.preprocessing.input_shape == (84, 1) and covid.task == "regression"
    assert covid.y_test.dtype == np.float32 and len(covid.y_test) == 61
    assert 0 <= covid.y_train.min() and covid.y_train.max() < 1  # death rates
    assert task_hint(DataSpec(str(shared("datasets", "timeseries", "covid3month")))) == \
        "regression"
    assert task_hint(DataSpec(str(shared("datasets", "timeseries", "basicmotions")))) is None


def test_ts_errors_name_the_line(tmp_path):
    from tflm_pipeline.data import load_dataset

    head = "@problemName t\n@univariate true\n@classLabel true a b\n@data\n"
    for body, message in (("1,2,3:a\n1,?,3:b\n", "t.ts:6: a value is not a number"),
                          ("1,2,3:a\n1,2:b\n", "different lengths"),
                          ("1,2,3:a\n1,2,3:c\n", "label(s) c are not classes"),
                          ("", "has no @data section")):
        path = tmp_path / "t.ts"
        path.write_text(head + body)
        with _raises(message):
            load_dataset(str(path))
