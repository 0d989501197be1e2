"""Image folders: class folders of PNG, JPEG or BMP files, resized to the model input
(Pillow, imported when the first image is read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .class_folders import (IMAGE_SUFFIXES, PathLike, class_files, file_groups, flatten,
                            open_folder, sample_groups, split_groups)
from .dataset import SPLITS, Dataset
from .spec import DEFAULT_SPLIT, DEFAULT_VAL_FRACTION, DataSpec, parse_size
from .splits import split_indices, split_note


def load_image_spec(spec: DataSpec) -> Dataset:
    """The image folder named by ``spec`` (``--image-size`` and ``--color``)."""
    if not spec.image_size:
        raise TflmpError(f"{spec.dataset} is a folder of images: give the model input size "
                         "with --image-size HEIGHTxWIDTH")
    return load_image_folder(spec.path, size=spec.image_size, color=spec.color,
                             seed=spec.seed, split=spec.split, val_fraction=spec.val_fraction,
                             group_column=spec.group_column)


def load_image_folder(path: PathLike, *, size: tuple[int, int], color: str = "grayscale",
                      seed: int = 0, split: tuple[float, float, float] = DEFAULT_SPLIT,
                      val_fraction: float = DEFAULT_VAL_FRACTION,
                      group_column: str | None = None) -> Dataset:
    """Images in class folders (``class/*.png|jpg|jpeg|bmp``), resized to ``size`` (H, W).

    Samples are uint8 (H, W, 1) for ``grayscale`` or (H, W, 3) for ``rgb`` (Pillow
    bilinear resize, EXIF orientation applied); inputs are ``pixel / 255``.  A folder
    with ``train/`` and ``test/`` (and optionally ``val/``) subfolders of class folders
    keeps those splits, validation carved from train (``val_fraction``) when absent;
    otherwise the images are split by ``split``.  ``group_column`` is a pattern of the
    file names naming each image's group (see :func:`class_folders.file_groups`): whole
    groups go to one split.
    """
    root = open_folder(path, "image")
    height, width = size_hw = parse_size(size)
    if color not in ("grayscale", "rgb"):
        raise TflmpError(f"--color must be grayscale or rgb, got '{color}'")
    mode = "L" if color == "grayscale" else "RGB"
    present = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    split_notes: list[str] = []
    if "train" in present and "test" in present:
        folders = {s: class_files(root / s, IMAGE_SUFFIXES, "image") for s in present}
        labels = sorted(folders["train"])
        for s in present:
            extra = sorted(set(folders[s]) - set(labels))
            if extra:
                raise TflmpError(f"{root / s} has class folder(s) {', '.join(extra)} that "
                                 f"{root / 'train'} lacks; add training images for them or "
                                 "remove them")
        files = {s: flatten(folders[s], labels) for s in present}
        if "val" not in present:
            train_files, train_y = files["train"]
            tr, va = split_indices(train_y, seed, None, root, val_fraction,
                                   groups=file_groups(train_files, group_column, root),
                                   notes=split_notes)
            files["train"] = [train_files[i] for i in tr], train_y[tr]
            files["val"] = [train_files[i] for i in va], train_y[va]
        how = ("train/, val/ and test/ folders" if "val" in present else
               f"train/ and test/ folders; validation = {val_fraction:.0%} of train, "
               f"stratified, seed {seed}")
    elif present:
        raise TflmpError(f"{root} has a {present[0]}/ folder but no "
                         f"{'test' if present[0] != 'test' else 'train'}/ folder; give it both "
                         "train/ and test/ (each with class folders) or only class folders")
    else:
        folders = class_files(root, IMAGE_SUFFIXES, "image")
        labels = sorted(folders)
        all_files, all_y = flatten(folders, labels)
        parts = split_indices(all_y, seed, split, root, notes=split_notes,
                              groups=file_groups(all_files, group_column, root))
        files = {s: ([all_files[i] for i in idx], all_y[idx])
                 for s, idx in zip(("train", "val", "test"), parts)}
        how = split_note(split, seed)
    ids = {s: [f.relative_to(root).as_posix() for f in files[s][0]] for s in SPLITS}
    groups = split_groups({s: files[s][0] for s in SPLITS}, group_column, root)
    if groups is not None:
        ids["groups"] = groups
    arrays = []
    for s in ("train", "val", "test"):
        arrays += [np.stack([_read_image(f, size_hw, mode) for f in files[s][0]]),
                   files[s][1]]
    pre = Preprocessing(root.name, (height, width, len(mode)), "uint8", 1.0 / 255.0, 0.0, labels)
    count = sum(len(files[s][1]) for s in files)
    return Dataset(root.name, *arrays, preprocessing=pre,
                   notes=[f"images from {root}: {count} in {len(labels)} class folders, "
                          f"resized to {height}x{width} {color} (Pillow bilinear); {how}",
                          *split_notes],
                   sample_ids={"id": f"file path under {root}", **ids},
                   groups=sample_groups({s: files[s][0] for s in SPLITS}, group_column, root))


def frame_to_sample(frame: np.ndarray, size: tuple[int, int], color: str) -> np.ndarray:
    """A camera frame (H, W) or (H, W, 1|3) uint8 -> one sample (``size`` H x W, channels of
    ``color``), as the firmware's FrameToInput makes it: converted like training images,
    centre-cropped to the aspect of ``size`` (integer sizes, floor), then training's resize.
    A frame with that aspect is read exactly like a training image of the same pixels."""
    from PIL import Image

    frame = np.asarray(frame, np.uint8)
    img = Image.fromarray(frame[..., 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame)
    img = img.convert("L" if color == "grayscale" else "RGB")
    height, width = size
    w, h = img.size
    if w * height > h * width:  # wider than the model: crop the sides
        crop_w, crop_h = h * width // height, h
    else:
        crop_w, crop_h = w, w * height // width
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    img = _resize(img.crop((left, top, left + crop_w, top + crop_h)), (height, width))
    return np.asarray(img, np.uint8).reshape(height, width, len(img.mode))


def _resize(img, size_hw: tuple[int, int]):
    """Training's resize of an image to ``size_hw`` (H, W): Pillow bilinear."""
    from PIL import Image

    return img.resize(size_hw[::-1], Image.Resampling.BILINEAR)


def _read_image(file: Path, size_hw: tuple[int, int], mode: str) -> np.ndarray:
    from PIL import Image, ImageOps  # Pillow loads in ~0.1 s: only when images are read

    try:
        with Image.open(file) as img:
            img = ImageOps.exif_transpose(img).convert(mode)
            img = _resize(img, size_hw)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise TflmpError(f"cannot read image {file}: {e}; replace or delete the file") from None
    return np.asarray(img, np.uint8).reshape(*size_hw, len(mode))
