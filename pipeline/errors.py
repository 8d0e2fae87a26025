"""One exception type for problems the user can fix.

The CLI prints its message as a single line and exits non-zero; everything else is a bug and keeps its
traceback.
"""


class UserError(Exception):
    """Bad input, config or environment, with a message that says what to do."""

    exit_code = 2


class PartialInputError(UserError):
    """The input ended early (truncated or corrupt); outputs cover what was read."""

    exit_code = 3


class StreamLostError(UserError):
    """A live stream dropped and did not come back within the reconnect time; outputs are finalised."""

    exit_code = 4
