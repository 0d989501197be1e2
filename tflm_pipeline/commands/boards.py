"""``tflmp boards``: the boards a model is checked against (``firmware/boards.yaml``,
plus a user's ``--boards-file``)."""

from __future__ import annotations

from pathlib import Path

from ..mcu.boards import Board, boards


def list_boards(boards_file: str | Path | None = None) -> list[Board]:
    """Every board of the database, with the user's file merged over it."""
    return list(boards(boards_file).values())
