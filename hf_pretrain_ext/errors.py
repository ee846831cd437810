"""User-facing errors.

A `UserError` is bad input the user can fix (a missing file, a bad flag): the CLI prints its message on one line
and exits non-zero, without a traceback. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: reported as one line `error: <message>` and exit status 2."""

    exit_code = 2
