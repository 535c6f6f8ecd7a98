"""The README's SLURM recipes on a real one-node cluster: `.ci/slurm-up; pytest -m cluster`.

Tiny data, small crops and CPU keep each job to about a minute on an idle machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroseg import io
from neuroseg.models.checkpoint import read_checkpoint


def _cluster_answers() -> bool:
    """True when a SLURM controller answers and has a partition up."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=30)
    return done.returncode == 0 and "up" in done.stdout


pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not _cluster_answers(), reason="no SLURM cluster; start one: .ci/slurm-up"),
]

REPO = Path(__file__).resolve().parents[1]
# Small and quick on CPU: 2 batches of 64x96 crops per epoch, no pretrained weights.
TINY = ["data.num_workers=0", "data.batch_size=4", "data.crop_hw=[64,96]", "threads=1"]
TINY += ["encoder.weights=null", "+trainer.limit_train_batches=1", "trainer.log_every_n_steps=1"]
TINY += ["model.image_every_n_epochs=0", "logger=csv", "test=false"]


def job_state(job_id: str) -> dict[str, str]:
    """`scontrol show job` as key=value pairs (JobState, Restarts, Reason, ...)."""
    done = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True
    )
    return dict(re.findall(r"(\w+)=(\S*)", done.stdout))


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    """Poll `condition()` every half second; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def restarted(job_id: str) -> bool:
    """True once a requeued job runs again; while it waits, make it eligible at once.

    SLURM holds a requeued job for two minutes; the time can be moved only once it is pending.
    """
    state = job_state(job_id)["JobState"]
    if state == "PENDING":
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
    return state not in ("PENDING", "REQUEUED", "COMPLETING")


def test_sbatch_recipe_saves_hpc_checkpoint_requeues_and_resumes(
    prepared_dir: Path, tmp_path: Path
) -> None:
    epochs = 3
    run_dir = tmp_path / "run"
    log = tmp_path / "slurm.out"
    # The README's recipe, on CPU: one task per device; Lightning handles SIGUSR1 and requeues.
    script = f"""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=10
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output={log}
cd {REPO}
srun {sys.executable} -m neuroseg.train trainer=ddp data=gpu trainer.devices=1 \\
  trainer.num_nodes=1 trainer.accelerator=cpu trainer.precision=32-true \\
  trainer.max_epochs={epochs} data.dir={prepared_dir} {" ".join(TINY)} hydra.run.dir={run_dir}
"""
    (tmp_path / "train.sbatch").write_text(script)
    done = subprocess.run(
        ["sbatch", "--parsable", str(tmp_path / "train.sbatch")],
        capture_output=True,
        text=True,
        check=True,
    )
    job = done.stdout.strip().split(";")[0]
    try:
        last = run_dir / "checkpoints" / "last.ckpt"
        wait_for(last.is_file, 300, f"epoch 0 of job {job} ({log})")
        # What SLURM does at --signal's time: SIGUSR1 to the job's steps (srun's tasks).
        subprocess.run(["scancel", "--signal=USR1", job], check=True)
        wait_for(lambda: job_state(job)["Restarts"] == "1", 120, f"job {job} requeued")
        wait_for(lambda: restarted(job), 120, f"job {job} to start again")
        wait_for(
            lambda: job_state(job)["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
            300,
            f"job {job} to finish",
        )
    finally:
        subprocess.run(["scancel", job], capture_output=True)
    state = job_state(job)
    output = log.read_text()
    assert state["JobState"] == "COMPLETED", output[-3000:]
    assert (run_dir / "hpc_ckpt_1.ckpt").is_file()
    assert f"Requeued SLURM job: {job}" in output or "requeing job" in output, output[-3000:]
    assert "hpc_ckpt_1.ckpt" in output and "Restored all states" in output, output[-3000:]
    saved = read_checkpoint(last, trusted=False)
    assert saved["epoch"] == epochs - 1 and saved["global_step"] == epochs  # one batch an epoch
    # The requeued start logs into a new CSV version; together they cover every planned epoch, in
    # order. Where the signal lands after an epoch's training step but before its end, Lightning
    # resumes inside that epoch and validates it again (global_step above shows no batch re-ran),
    # so that epoch's validation may be logged twice.
    logged = [
        int(row["epoch"])
        for path in sorted(run_dir.glob("csv/*/metrics.csv"))
        for row in io.read_csv(path)
        if row["epoch"] and row.get("val/iou")
    ]
    assert sorted(set(logged)) == list(range(epochs)) and logged == sorted(logged), logged


def test_submitit_sweep_runs_two_jobs_without_a_gpu_request(
    prepared_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='pip install ".[cluster]"')
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "neuroseg.train", "-m", "hydra/launcher=submitit_slurm"]
    command += ["hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"]
    command += ["hydra.launcher.mem_gb=4", f"hydra.sweep.dir={sweep_dir}"]
    command += ["trainer=cpu", "trainer.precision=32-true", "trainer.max_epochs=1"]
    command += [f"data.dir={prepared_dir}", *TINY, "seed=1,2"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    for job in ("0", "1"):
        assert (sweep_dir / job / "checkpoints" / "last.ckpt").is_file(), job
    # submitit sends the sweep as one job array of two tasks.
    (submission,) = sweep_dir.glob(".submitit/*/*_submission.sh")
    text = submission.read_text()
    assert "#SBATCH --array=0-1" in text and "#SBATCH --cpus-per-task=1" in text
    assert "gpu" not in text.lower(), text
