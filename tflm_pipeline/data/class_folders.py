"""Folders of class folders (``PATH/<class name>/<files>``), shared by the image and WAV
loaders.  Folders whose name starts with ``.`` or ``_`` (such as Speech Commands'
``_background_noise_``) are ignored."""

from __future__ import annotations

import os
import re
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
                for f in _files(d)}
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
        out[d.name] = sorted(f for f in _files(d) if f.suffix.lower() in suffixes)
        if not out[d.name]:
            raise TflmpError(f"class folder {d} has no {'/'.join(suffixes)} files; add "
                             f"{kind}s to it or remove it")
    return out


def _files(class_dir: Path) -> list[Path]:
    """The files of a class folder and of its sub-folders one level down (a sub-folder
    per speaker or session: ``class/<group>/<file>``)."""
    out = []
    for entry in class_dir.iterdir():
        if entry.is_file():
            out.append(entry)
        elif entry.is_dir() and not entry.name.startswith((".", "_")):
            out.extend(f for f in entry.iterdir() if f.is_file())
    return out


def flatten(folders: dict[str, list[Path]], labels: list[str]) -> tuple[list[Path], np.ndarray]:
    """All files in label order and the class index of each."""
    files = [f for name in labels for f in folders.get(name, [])]
    y = np.array([i for i, name in enumerate(labels) for _ in folders.get(name, [])], np.int64)
    return files, y


# Speech Commands' file names: <speaker hash>_nohash_<n>.wav
SPEAKER_PREFIX = r"^([0-9a-f]{8})_nohash_"


def file_groups(files: list[Path], pattern: str | None, where) -> list[str] | None:
    """The group (speaker, session) of each file: ``"folder"``, its sub-folder inside the
    class folder (``class/<group>/<file>``); else ``pattern`` is a regular expression
    searched in the file name, its first ``(...)`` group (or the whole match) naming the
    group.  Without a pattern: the sub-folder when every file is in one, else the Speech
    Commands speaker prefix when every file has one; ``"none"``: no groups (None)."""
    if pattern is not None and pattern.lower() == "none":
        return None
    in_sub = _in_sub_folders(files)
    if pattern == "folder" or (pattern is None and in_sub):
        if not in_sub:
            raise TflmpError(f"{where}: --group-column folder needs every file in a "
                             "sub-folder of its class folder (class/<group>/<file>)")
        return [f.parent.name for f in files]
    try:
        regex = re.compile(pattern or SPEAKER_PREFIX)
    except re.error as e:
        raise TflmpError(f"--group-column '{pattern}' is not a regular expression ({e}); for "
                         r"folders give a pattern of the file name, like '^(\w+)_'") from None
    groups = []
    for f in files:
        m = regex.search(f.name)
        if m is None:
            if pattern is None:
                return None
            raise TflmpError(f"{where}: file {f.name} does not match --group-column "
                             f"'{pattern}'; every file name must name its group")
        groups.append(m.group(1) if regex.groups else m.group(0))
    return groups


def _in_sub_folders(files: list[Path]) -> bool:
    """Whether every file lies in a sub-folder of its class folder: three levels below
    the files' common folder (class/<group>/<file>)."""
    if not files:
        return False
    common = Path(os.path.commonpath([str(f) for f in files]))
    return all(len(f.relative_to(common).parts) == 3 for f in files)


def split_groups(files: dict[str, list[Path]], pattern: str | None, where) -> dict | None:
    """{split: sorted group names} of each split's files (for the data checks' shared
    groups), or None when the file names name no groups."""
    out = {}
    for split, names in files.items():
        groups = file_groups(names, pattern, where)
        if groups is None:
            return None
        out[split] = sorted(set(groups))
    return out


def sample_groups(files: dict[str, list[Path]], pattern: str | None, where) -> dict | None:
    """{split: each file's group} (what cross-validation folds by), or None when the file
    names name no groups."""
    out = {}
    for split, names in files.items():
        groups = file_groups(names, pattern, where)
        if groups is None:
            return None
        out[split] = np.asarray(groups)
    return out
