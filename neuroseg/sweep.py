"""Hydra sweeps over processes: one sweep folder for all DDP ranks, GPUs asked per accelerator.

conf/hydra/default.yaml names `SweepFolder` as a Hydra callback; importing this module for it also
registers the `gpus_per_node` resolver that conf/hydra/launcher/submitit_slurm.yaml uses.
"""

from __future__ import annotations

import os

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

# conf/hydra/default.yaml reads it back: hydra.sweep.dir=${oc.env:NEUROSEG_SWEEP_DIR,<time>}.
SWEEP_DIR_ENV = "NEUROSEG_SWEEP_DIR"


class SweepFolder(Callback):
    """Pass a multirun's resolved sweep folder on to the processes it starts.

    Lightning starts DDP ranks 1.. by running the same command line again, `-m` included; each
    child would resolve `${now:...}` anew and write its logs into a second sweep folder. Children
    inherit the environment, so they read the parent's folder from it instead.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        os.environ[SWEEP_DIR_ENV] = str(config.hydra.sweep.dir)


def gpus_per_node(accelerator: str, devices: int) -> int | None:
    """GPUs a SLURM job asks for: `devices` on a GPU trainer, none (no gres) on CPU."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


OmegaConf.register_new_resolver("gpus_per_node", gpus_per_node, replace=True)
