"""User-facing errors: one line naming the problem and the fix, no traceback."""


class FaveError(Exception):
    """A mistake the user can fix (bad input, missing file, unknown name).

    The CLI prints ``str(error)`` on one line and exits with status 2.
    """
