"""The one exception type for user mistakes: its message names the problem and the fix."""

from __future__ import annotations


class TflmpError(Exception):
    """A problem the user can fix (bad input, missing file, unsupported model).

    The CLI prints the message on one line and exits with code 2; anything else
    that escapes is a bug in tflmp.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
