"""How every entry point meets its user: a mistake is one line on stderr and an exit status.

Hydra's `hydra.main` prints "Error executing job with overrides" and a traceback for any error
raised in the task, and a few lines of exit status 1 for a bad override (both through its
`run_and_report`). `command` wraps it twice: around the task function, where the package's
own errors are caught before Hydra sees them, and around Hydra's main, where a bad override
surfaces. Anything else (a bug) keeps Hydra's report; `HYDRA_FULL_ERROR=1` shows the full
traceback for everything, as Hydra documents.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hydra
from hydra._internal import utils as hydra_utils
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from neuroseg.errors import USAGE_STATUS, NeurosegError

# Hydra's override lexer rejects non-ASCII characters and , = [ ] in a bare value.
QUOTING = "quote the value for Hydra inside the shell's quotes, e.g. raw_dir=\"'/data/my plates'\""


def command(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """`@command("train")` in place of `@hydra.main(config_path="../conf", config_name=...)`."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(task)  # Hydra finds conf/ next to the task's own module
        def guarded(cfg: DictConfig) -> Any:
            with errors_reported():
                return task(cfg)

        hydra_main = hydra.main(version_base="1.3", config_path="../conf", config_name=config_name)(
            guarded
        )

        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            with overrides_reported():
                return hydra_main(cfg_passthrough)

        return main

    return decorate


@contextmanager
def errors_reported() -> Iterator[None]:
    """Turn a user error raised inside into one stderr line and SystemExit(2 or 1).

    SystemExit passes Hydra's job runner (it catches Exception only), so Hydra adds nothing.
    """
    try:
        yield
    except Exception as error:
        reported = user_error(error)
        if reported is None or full_error():
            raise
        line, status = reported
        sys.stderr.write(line + "\n")
        raise SystemExit(status) from None


@contextmanager
def overrides_reported() -> Iterator[None]:
    """While Hydra's main runs, its error reporter first offers each error to `user_error`."""
    original = hydra_utils.run_and_report

    def run_and_report(func: Callable[[], Any]) -> Any:
        def offered() -> Any:
            with errors_reported():
                return func()

        return original(offered)

    hydra_utils.run_and_report = run_and_report  # looked up by name in hydra's _run_hydra
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def full_error() -> bool:
    """True when the user asked Hydra for complete tracebacks."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def user_error(error: BaseException) -> tuple[str, int] | None:
    """(one line, exit status) for an error the user can fix; None for anything else (a bug)."""
    if isinstance(error, NeurosegError):
        return str(error), error.exit_status
    if isinstance(error, OverrideParseException):
        return f"{first_line(error)}; {QUOTING}", USAGE_STATUS
    if isinstance(error, HydraException):
        # e.g. "Could not override 'foo'." + "To append to your config use +foo=1", and the
        # OmegaConf cause ("Key 'foo' is not in struct") on the lines below.
        cause = error.__cause__
        parts = [line.strip() for line in str(error).splitlines() if line.strip()]
        if isinstance(cause, OmegaConfBaseException):
            parts.insert(1, f"({first_line(cause)})")
        return " ".join(parts), USAGE_STATUS
    if isinstance(error, OmegaConfBaseException):
        # Raised while the task reads its config: a mandatory `???` key left unset, a bad
        # interpolation, a value of the wrong type.
        key = getattr(error, "full_key", None)
        prefix = f"{key}: " if key else ""
        line = f"{prefix}{first_line(error)}; set it on the command line: {key or 'key'}=..."
        return line, USAGE_STATUS
    return None


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (OmegaConf appends key and type lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
