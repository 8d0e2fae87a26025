"""One exception type for problems the user can fix.

The CLI prints its message as a single line and exits non-zero; everything else is a bug and keeps its
traceback.
"""

import errno
from pathlib import Path
from typing import cast

from pipeline.core.redact import mask_credentials


class UserError(Exception):
    """Bad input, config or environment, with a message that says what to do.

    The message is masked on creation, so a URL's credentials never reach any output through it.
    """

    exit_code = 2

    def __init__(self, message: object = "") -> None:
        super().__init__(mask_credentials(str(message)))


class PartialInputError(UserError):
    """The input ended early (truncated or corrupt); outputs cover what was read."""

    exit_code = 3


class SourceUnavailableError(UserError):
    """A camera or stream could not be opened (or gave no frame): it may come up later, unlike a bad option."""


class StreamLostError(UserError):
    """A live stream dropped and did not come back within the reconnect time; outputs are finalised."""

    exit_code = 4


class DiskFullError(UserError):
    """A write failed (or would have) for lack of space; outputs are whole up to the last complete frame."""

    exit_code = 5


# A write that failed for lack of space: no space on the disk, the process's file size limit, a quota.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def disk_full_error(path: Path, exc: OSError) -> DiskFullError:
    """The one line for a write that failed because the disk (or the file size limit) is full."""
    # an error raised by the system for a full disk always carries its message
    why = cast(str, exc.strerror) + (": the file size limit is reached" if exc.errno == errno.EFBIG else "")
    return DiskFullError(f"cannot write {path}: the disk is full ({why}); the run stopped and its outputs are whole "
                         "up to the last complete frame: free some space and run again")
