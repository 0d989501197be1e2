"""The one exception type for user mistakes: its message names the problem and the fix."""


class TflmpError(Exception):
    """A problem the user can fix (bad input, missing file, unsupported model).

    The CLI prints the message on one line and exits with code 2; anything else
    that escapes is a bug in tflmp.
    """
