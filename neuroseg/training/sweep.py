"""A sweep's table of trials: each job records its parameters and optimised metric beside its
outputs, and the sweep folder gets `trials.csv` once all jobs have returned.

Registered as a Hydra callback (`hydra.callbacks`, conf/hparams_search/optuna.yaml). Each job
writes its own record, so the table also holds jobs run by a remote launcher (SLURM).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from neuroseg.io import read_json, write_csv, write_json

log = logging.getLogger(__name__)

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
