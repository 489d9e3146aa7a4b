"""The one exception type that reaches a user as a single line.

Raise `ZooError` for anything the user can fix (a bad file, an unknown name, a
shape mismatch). The message says what went wrong, where, and how to fix it;
the CLI prints it on one line and exits with code 2.
"""


class ZooError(Exception):
    """A user-fixable error: the message is shown as-is, without a traceback."""


class DataError(ZooError):
    """Malformed or inconsistent input data (names the file and line or record)."""
