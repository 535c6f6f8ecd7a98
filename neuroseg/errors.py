"""The package's own errors: what a user got wrong, or what failed, in one line naming the fix.

Each class also derives from the builtin a caller would expect (ValueError, FileNotFoundError,
KeyError), so `except ValueError` keeps working. The entry points (neuroseg/cli.py) print the
message alone and exit with `exit_status`: 2 when the command line must change, 1 when the
command was right but its input or its work failed.
"""

from __future__ import annotations

USAGE_STATUS = 2  # change the command: a setting, a path, a choice
FAILURE_STATUS = 1  # the command was fine, an input file or the work was not


class NeurosegError(Exception):
    """Base of every error the package raises on purpose; its message is the whole story."""

    exit_status = FAILURE_STATUS

    def __str__(self) -> str:
        # KeyError quotes its message; ours is a sentence, shown as written.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UsageError(NeurosegError, ValueError):
    """A setting has a wrong value; the message names the key and what to pass instead."""

    exit_status = USAGE_STATUS


class ChoiceError(NeurosegError, KeyError):
    """A name picks none of a closed set (encoder, task, palette colour); the message lists them."""

    exit_status = USAGE_STATUS


class MissingPathError(NeurosegError, FileNotFoundError):
    """A file or folder named in the config is not there."""

    exit_status = USAGE_STATUS


class PathTakenError(NeurosegError, FileExistsError):
    """An output path holds something the command will not replace."""

    exit_status = USAGE_STATUS


class InputError(NeurosegError, ValueError):
    """An input file exists but its content is unusable (corrupt, truncated, mismatched)."""

    exit_status = FAILURE_STATUS


class UnsafeCheckpointError(UsageError):
    """A checkpoint pickles Python objects beyond tensors, and trust_checkpoint is false."""
