"""How every entry point meets its user: one-line errors and exit statuses, and its run folders.

Hydra's `hydra.main` prints "Error executing job with overrides" and a traceback for any error
raised in the task, and a few lines of exit status 1 for a bad override (both through its
`run_and_report`). `command` wraps it twice: around the task function, where the package's
own errors are caught before Hydra sees them, and around Hydra's main, where a bad override
surfaces. Anything else (a bug) keeps Hydra's report; `HYDRA_FULL_ERROR=1` shows the full
traceback for everything, as Hydra documents.

A Hydra callback keeps a run folder whole: `RunFolderLock` gives one training at a time its run
folder (conf/train.yaml). Sweeps have theirs in training/sweep.py.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra._internal import utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, OverrideParseException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from pytorch_lightning.utilities import rank_zero_only

from neuroseg import locks
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
        return " ".join(parts) + valid_keys(cause), USAGE_STATUS
    if isinstance(error, OmegaConfBaseException):
        # Raised while the task reads its config: a mandatory `???` key left unset, a bad
        # interpolation, a value of the wrong type.
        key = getattr(error, "full_key", None)
        prefix = f"{key}: " if key else ""
        line = f"{prefix}{first_line(error)}; set it on the command line: {key or 'key'}=..."
        return line, USAGE_STATUS
    return None


def valid_keys(cause: BaseException | None) -> str:
    """'; valid keys: a, b' of the section an unknown key was typed in (its schema's fields, in
    order, where a dataclass schema refused it); '' for other errors."""
    if not isinstance(cause, ConfigKeyError | ConfigAttributeError):
        return ""
    schema = getattr(cause, "object_type", None)
    if dataclasses.is_dataclass(schema):
        keys = [field.name for field in dataclasses.fields(schema)]
    else:
        section = getattr(cause, "parent_node", None)
        if not isinstance(section, DictConfig):
            return ""
        keys = sorted(str(key) for key in section if key != "hydra")
    return f"; valid keys: {', '.join(keys)}"


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (OmegaConf appends key and type lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


LOCK_NAME = ".train.lock"  # inside the run folder; holds the PID of the run using it


def run_folder_lock(run_dir: Path) -> AbstractContextManager[None]:
    """Exclusive lock on a run folder: a second training there refuses at once, naming the PID.

    The kernel frees it when the holder dies, so a requeued or resumed run takes it over.
    """
    run_dir = Path(run_dir).absolute()
    return locks.hold_lock(run_dir / LOCK_NAME, f"hydra.run.dir={run_dir}")


class RunFolderLock(Callback):
    """Hold run_folder_lock(hydra.run.dir) for the whole run.

    Taken in on_run_start, before Hydra writes the config snapshot to .hydra/, so a second run
    cannot overwrite the first one's snapshot or mix checkpoints with it. Only global rank 0
    locks: the other DDP ranks are started in the same folder by design.
    """

    def __init__(self) -> None:
        self._held = ExitStack()

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:
            return
        HydraConfig.instance().set_config(config)  # run.dir may use ${hydra:...} keys
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        try:
            self._held.enter_context(run_folder_lock(run_dir))
        except FileExistsError as error:
            # Hydra turns a callback's exceptions into warnings and runs on (overwriting the
            # first run's snapshot); only SystemExit stops it here. Status 2: change the command.
            # The same one line as every other user error (neuroseg.cli).
            print(error, file=sys.stderr)
            raise SystemExit(USAGE_STATUS) from None

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._held.close()
