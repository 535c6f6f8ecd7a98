"""Hydra sweeps over processes: one sweep folder for all DDP ranks, GPUs asked per accelerator,
and a table of a sweep's trials.

conf/hydra/default.yaml names `SweepFolder` as a Hydra callback; importing this module for it also
registers the `gpus_per_node` resolver that conf/hydra/launcher/submitit_slurm.yaml uses.
conf/hparams_search/optuna.yaml adds `SweepSummary`: each job records its swept parameters and
optimised metric beside its outputs (remote launchers too), and the sweep folder gets
`trials.csv` once all jobs have returned.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from neuroseg.io import read_json, write_csv, write_json

log = logging.getLogger(__name__)

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


TRIAL_FILE = "sweep_trial.json"


def swept_values(overrides: Sequence[str], params: Sequence[str]) -> dict[str, str]:
    """{param: value} of the job's `key=value` overrides whose key is a swept parameter."""
    values = {}
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in params:
            values[key] = value
    return values


def trial_record(job_return: JobReturn, params: Sequence[str], metric: str | None) -> dict:
    """The job's number, status, swept values and metric (NaN when it failed or returned none)."""
    completed = job_return.status == JobStatus.COMPLETED
    value = job_return.return_value if completed else None
    return {
        "trial": int(job_return.hydra_cfg.hydra.job.num),
        "status": "completed" if completed else "failed",
        "params": swept_values(job_return.overrides or [], params),
        "metric": metric,
        "value": float(value) if isinstance(value, int | float) else math.nan,
        "error": "" if completed else repr(job_return._return_value),
    }


def trials_table(records: Sequence[Mapping]) -> tuple[list[dict], list[str]]:
    """(rows, columns) for trials.csv: trial, status, the metric, each swept parameter, error."""
    params = sorted({key for record in records for key in record["params"]})
    metric = next((r["metric"] for r in records if r["metric"]), "value")
    columns = ["trial", "status", metric, *params, "error"]
    rows = [
        {"trial": r["trial"], "status": r["status"], metric: r["value"], "error": r["error"]}
        | {key: r["params"].get(key, "") for key in params}
        for r in sorted(records, key=lambda record: record["trial"])
    ]
    return rows, columns


class SweepSummary(Callback):
    """Hydra callback: `<job dir>/sweep_trial.json` per job, `<sweep dir>/trials.csv` at the end."""

    def __init__(self, filename: str = "trials.csv") -> None:
        self.filename = filename

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: object) -> None:
        hydra_cfg = job_return.hydra_cfg.hydra
        if hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN":
            return
        params = list((hydra_cfg.sweeper.get("params") or {}).keys())
        metric = job_return.cfg.get("optimized_metric") if job_return.cfg else None
        record = trial_record(job_return, params, metric)
        write_json(Path(hydra_cfg.runtime.output_dir) / TRIAL_FILE, record)

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = [read_json(path) for path in sorted(sweep_dir.glob(f"*/{TRIAL_FILE}"))]
        rows, columns = trials_table(records)
        write_csv(sweep_dir / self.filename, rows, columns)
        log.info("%d trials summarised in %s", len(rows), sweep_dir / self.filename)
