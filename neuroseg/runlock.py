"""A Hydra callback that gives one training at a time its run folder (conf/train.yaml)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from neuroseg import io
from neuroseg.errors import USAGE_STATUS

LOCK_NAME = ".train.lock"  # inside the run folder; holds the PID of the run using it


def run_folder_lock(run_dir: Path) -> AbstractContextManager[None]:
    """Exclusive lock on a run folder: a second training there refuses at once, naming the PID.

    The kernel frees it when the holder dies, so a requeued or resumed run takes it over.
    """
    run_dir = Path(run_dir).absolute()
    return io.hold_lock(run_dir / LOCK_NAME, f"hydra.run.dir={run_dir}")


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
