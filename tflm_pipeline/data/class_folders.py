"""Folders of class folders (``PATH/<class name>/<files>``), shared by the image and WAV
loaders.  Folders whose name starts with ``.`` or ``_`` (such as Speech Commands'
``_background_noise_``) are ignored."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import TflmpError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PathLike = str | os.PathLike


def folder_kind(path: PathLike) -> str:
    """'wav' or 'image': what the class folders under ``path`` (or its train/) hold."""
    root = Path(path)
    if (root / "train").is_dir():
        root = root / "train"
    suffixes = {f.suffix.lower() for d in root.iterdir() if d.is_dir()
                for f in d.iterdir() if f.is_file()}
    if ".wav" in suffixes:
        return "wav"
    if suffixes & set(IMAGE_SUFFIXES):
        return "image"
    raise TflmpError(f"{path} holds no class folders of images ({', '.join(IMAGE_SUFFIXES)}) "
                     "or .wav clips: put each class's files in PATH/<class name>/")


def open_folder(path: PathLike, kind: str) -> Path:
    """``path`` as a folder, or a one-line error naming ``kind``."""
    root = Path(path)
    if not root.is_dir():
        raise TflmpError(f"{kind} folder {root} does not exist or is not a folder; pass a "
                         "folder of class folders")
    return root


def class_files(folder: Path, suffixes: tuple[str, ...], kind: str) -> dict[str, list[Path]]:
    """{class name: sorted files with one of ``suffixes``} for every class folder."""
    classes = sorted(d for d in folder.iterdir()
                     if d.is_dir() and not d.name.startswith((".", "_")))
    if not classes:
        raise TflmpError(f"{folder} has no class folders: put each class's {kind}s in "
                         f"{folder}/<class name>/")
    out = {}
    for d in classes:
        out[d.name] = sorted(f for f in d.iterdir()
                             if f.is_file() and f.suffix.lower() in suffixes)
        if not out[d.name]:
            raise TflmpError(f"class folder {d} has no {'/'.join(suffixes)} files; add "
                             f"{kind}s to it or remove it")
    return out


def flatten(folders: dict[str, list[Path]], labels: list[str]) -> tuple[list[Path], np.ndarray]:
    """All files in label order and the class index of each."""
    files = [f for name in labels for f in folders.get(name, [])]
    y = np.array([i for i, name in enumerate(labels) for _ in folders.get(name, [])], np.int64)
    return files, y
