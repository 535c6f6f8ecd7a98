"""A hostile but realistic user against the data path (issue 15): prepare, its locks, the demo
sample and the train run folder. One test per case; subprocess kill -9 cases are marked slow."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hydra import compose, initialize

from neuroseg import io, locks
from neuroseg.cli import LOCK_NAME, RunFolderLock
from neuroseg.data.sample_tree import make_dataset
from neuroseg.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
TREES = ("originals", "labels", "labels_axons")


def run(raw_dir: Path, out_dir: Path, *overrides: str) -> dict:
    """Prepare with the shipped config, in this process."""
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "prepare",
            overrides=[f"raw_dir={raw_dir}", f"out_dir={out_dir}", "workers=1", *overrides],
        )
    return prepare(cfg)


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (hidden ones too), by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def wait_for(condition: Callable[[], object], timeout_s: float = 60.0) -> None:
    """Poll `condition` every 20 ms until it is true; fail the test after `timeout_s`."""
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout_s} s waiting for {condition}")
        time.sleep(0.02)


def start_prepare(raw_dir: Path, out_dir: Path, *overrides: str) -> subprocess.Popen:
    """`python -m neuroseg.prepare` from the repository root, as a user starts it."""
    command = [sys.executable, "-m", "neuroseg.prepare", f"raw_dir={raw_dir}"]
    command += [f"out_dir={out_dir}", f"hydra.run.dir={out_dir.parent / 'hydra'}", *overrides]
    return subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def start_holder(lock_path: Path) -> subprocess.Popen:
    """A process that holds locks.hold_lock(lock_path) until killed (a run stuck or still busy)."""
    code = (
        "import sys, time; from neuroseg import locks\n"
        "with locks.hold_lock(sys.argv[1], 'test'):\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lock_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def lock_file(folder: Path) -> Path:
    """The lock file locks.dir_lock uses for `folder`."""
    return folder.with_name(f".{folder.name}.lock")


def kill_9(process: subprocess.Popen) -> None:
    """SIGKILL, as a scheduler or an OOM killer would: no cleanup runs in the process."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def raw_copy(raw_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's synth tree (5 conditions x 2 + 1 duplicate, 192x256)."""
    return Path(shutil.copytree(raw_dir, tmp_path / "raw"))


@pytest.fixture(scope="module")
def big_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 originals of 384x512: a prepare run of ~10 s on 2 busy cores, long enough to hit."""
    root = tmp_path_factory.mktemp("big")
    return make_dataset(root / "raw", per_condition=6, height=384, width=512, duplicates=0)


# --- 1. raw data is never a write target ----------------------------------------------------


def test_out_dir_equal_to_raw_dir_is_refused(raw_copy: Path) -> None:
    before = file_hashes(raw_copy)
    with pytest.raises(ValueError, match="out_dir"):
        run(raw_copy, raw_copy, "overwrite=true")
    assert file_hashes(raw_copy) == before


@pytest.mark.parametrize("tree", TREES)
def test_out_dir_equal_to_an_input_tree_is_refused_even_with_overwrite(
    raw_copy: Path, tree: str
) -> None:
    before = file_hashes(raw_copy)
    with pytest.raises(ValueError, match=f"out_dir={raw_copy / tree} is the input folder"):
        run(raw_copy, raw_copy / tree, "overwrite=true")
    assert file_hashes(raw_copy) == before


def test_out_dir_inside_raw_dir_is_refused(raw_copy: Path) -> None:
    with pytest.raises(ValueError, match="lies inside the input folder"):
        run(raw_copy, raw_copy / "prepared")
    assert not (raw_copy / "prepared").exists()
    assert not list(raw_copy.glob(".*"))  # not even a lock file was written there


def test_out_dir_holding_raw_dir_is_refused(raw_copy: Path, tmp_path: Path) -> None:
    before = file_hashes(raw_copy)
    with pytest.raises(ValueError, match="holds the input folder"):
        run(raw_copy, tmp_path, "overwrite=true")
    assert file_hashes(raw_copy) == before


def test_out_dir_linked_to_an_input_tree_is_refused(raw_copy: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(raw_copy / "originals", target_is_directory=True)
    before = file_hashes(raw_copy)
    with pytest.raises(ValueError, match="is the input folder"):
        run(raw_copy, link, "overwrite=true")
    assert file_hashes(raw_copy) == before


def test_out_dir_holding_a_linked_condition_folder_is_refused(
    raw_copy: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(raw_copy / "originals" / "200_2", elsewhere / "200_2")
    (raw_copy / "originals" / "200_2").symlink_to(elsewhere / "200_2", target_is_directory=True)
    before = file_hashes(elsewhere)
    with pytest.raises(ValueError, match="holds the input folder"):
        run(raw_copy, elsewhere, "overwrite=true")
    assert file_hashes(elsewhere) == before


def test_overwrite_never_replaces_a_folder_prepare_did_not_write(
    raw_copy: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "thesis"
    stranger.mkdir()
    (stranger / "chapter1.tex").write_text("keep me")
    with pytest.raises(FileExistsError, match="not even with overwrite=true"):
        run(raw_copy, stranger, "overwrite=true")
    assert (stranger / "chapter1.tex").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_prepared_dataset(raw_copy: Path, tmp_path: Path) -> None:
    run(raw_copy, tmp_path / "out")
    run(raw_copy, tmp_path / "out", "seed=7", "overwrite=true")
    assert io.read_json(tmp_path / "out" / "splits.json")["seed"] == 7


# --- 2. unique temp folders and a lock on every tree write ----------------------------------


def test_atomic_dir_temp_folder_is_unique_per_run(tmp_path: Path) -> None:
    names = []
    for _ in range(2):
        with io.atomic_dir(tmp_path / "out") as tmp:
            names.append(tmp.name)
    assert names[0] != names[1] and all(str(os.getpid()) in name for name in names)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # lock file removed too


def test_atomic_path_temp_file_is_unique_per_write(tmp_path: Path) -> None:
    with io.atomic_path(tmp_path / "a.png") as first, io.atomic_path(tmp_path / "a.png") as second:
        assert first != second and first.suffix == second.suffix == ".png"
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "a.png").read_text() == "1"  # the outer write finished last


def test_lock_held_elsewhere_refuses_at_once_naming_the_pid(tmp_path: Path) -> None:
    holder = start_holder(lock_file(tmp_path / "out"))
    try:
        started = time.monotonic()
        with pytest.raises(FileExistsError, match=f"PID {holder.pid}"):
            with io.atomic_dir(tmp_path / "out"):
                pass
        assert time.monotonic() - started < 1
    finally:
        kill_9(holder)


def test_lock_of_a_killed_run_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = start_holder(lock_file(tmp_path / "out"))
    (tmp_path / f".out.tmp-{holder.pid}-dead").mkdir()  # its half-built tree
    kill_9(holder)
    with caplog.at_level(logging.WARNING), io.atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("new")
    assert f"PID {holder.pid}" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_filesystem_without_locks_warns_and_runs_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)  # as on Lustre mounted without -o flock
    with caplog.at_level(logging.WARNING), io.atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("new")
    assert "running unlocked" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_tree_moved_aside_by_a_killed_swap_is_restored(tmp_path: Path) -> None:
    (tmp_path / ".out.old").mkdir()  # killed between its two renames: out/ is missing
    (tmp_path / ".out.old" / "a.txt").write_text("previous")
    with pytest.raises(RuntimeError), io.atomic_dir(tmp_path / "out"):
        raise RuntimeError("this run fails too")
    assert (tmp_path / "out" / "a.txt").read_text() == "previous"


@pytest.mark.slow
def test_second_prepare_refuses_at_once_naming_the_pid(big_raw: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    first = start_prepare(big_raw, out_dir)
    try:
        wait_for(lambda: lock_file(out_dir).is_file() and lock_file(out_dir).read_text())
        started = time.monotonic()
        with pytest.raises(FileExistsError, match=f"PID {first.pid}"):
            run(big_raw, out_dir)
        assert time.monotonic() - started < 5
        assert first.wait(timeout=300) == 0, first.stdout.read() if first.stdout else ""
    finally:
        first.kill()
    manifest = io.read_csv(out_dir / "manifest.csv")
    assert len(manifest) == len(list(out_dir.glob("*/images/*.tif"))) == 120


@pytest.mark.slow
def test_kill_9_mid_prepare_keeps_the_previous_dataset_and_a_rerun_takes_over(
    big_raw: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    run(big_raw, out_dir)
    before = file_hashes(out_dir)
    second = start_prepare(big_raw, out_dir, "seed=5", "overwrite=true", "workers=2")
    wait_for(lambda: list(tmp_path.glob(".out.tmp-*/*/images/*.tif")))  # mid-write
    kill_9(second)
    assert file_hashes(out_dir) == before  # byte-identical
    assert lock_file(out_dir).exists() and list(tmp_path.glob(".out.tmp-*"))  # its leftovers
    run(big_raw, out_dir, "seed=5", "overwrite=true")
    assert io.read_json(out_dir / "splits.json")["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hydra", "out"]


def test_demo_sample_made_once_when_two_ranks_start_together(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from omegaconf import OmegaConf\n"
        "from neuroseg.data.sample import ensure_sample\n"
        "from neuroseg.data.settings import read_group_file\n"
        "palette = OmegaConf.to_container(read_group_file('conf/palette/qlab.yaml'))\n"
        "while not Path(sys.argv[1], 'go').exists(): time.sleep(0.005)\n"
        "ensure_sample(Path(sys.argv[1], 'raw'), Path(sys.argv[1], 'prepared'),\n"
        "    synth=dict(per_condition=2, height=192, width=256, duplicates=0),\n"
        "    prepare=dict(fractions={'train': 0.6, 'val': 0.2, 'test': 0.2}, seed=42,\n"
        "        rows=1, cols=1, workers=1, palette=palette))\n"
    )
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(2)  # both imported and waiting
    (tmp_path / "go").touch()
    outputs = [rank.communicate(timeout=300)[0] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], outputs
    prepared = tmp_path / "prepared"
    assert len(io.read_csv(prepared / "manifest.csv")) == 10
    assert len(list(prepared.glob("*/images/*.tif"))) == 10
    assert (prepared / "sample.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "prepared", "raw"]


# --- 4. no orphaned workers -----------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid`, read from /proc (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie left for a container's PID 1 to reap counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_prepare_workers_and_resource_tracker_exit_after_kill_9(
    big_raw: Path, tmp_path: Path
) -> None:
    parent = start_prepare(big_raw, tmp_path / "out", "workers=2")
    wait_for(lambda: len(children_of(parent.pid)) >= 3)  # two workers and the resource tracker
    # A spawned worker arms its exit-with-parent signal only once it has imported everything;
    # on a loaded machine that takes seconds. Kill once the workers write tiles, i.e. are armed.
    wait_for(lambda: any(tmp_path.glob(".out.tmp-*/*/images/*.tif")))
    children = children_of(parent.pid)
    kill_9(parent)
    end = time.monotonic() + 15
    while any(alive(pid) for pid in children) and time.monotonic() < end:
        time.sleep(0.1)
    left = [pid for pid in children if alive(pid)]
    for pid in left:  # do not leave them behind on a failure either
        os.kill(pid, signal.SIGKILL)
    assert left == []


# --- 5. symlinked condition folders ---------------------------------------------------------


def test_symlinked_condition_folders_are_followed(raw_copy: Path, tmp_path: Path) -> None:
    for tree in TREES:
        shutil.move(raw_copy / tree / "200_2", tmp_path / f"{tree}_200_2")
        (raw_copy / tree / "200_2").symlink_to(tmp_path / f"{tree}_200_2")
    report = run(raw_copy, tmp_path / "out")
    assert report["unpaired"] == []
    assert report["counts"]["images"]["train"]["total"] == 7  # as without links
    tiles = list((tmp_path / "out").glob("*/images/200_2_*.tif"))
    assert len(tiles) == 8  # 2 images x 2x2 tiles


def test_second_link_to_one_folder_is_read_once_and_listed(raw_copy: Path, tmp_path: Path) -> None:
    (raw_copy / "originals" / "copy").symlink_to(raw_copy / "originals" / "200_2")
    report = run(raw_copy, tmp_path / "out")
    assert report["repeated_folders"] == {"originals/copy": "originals/200_2"}
    assert not list((tmp_path / "out").glob("*/images/copy_*"))


def test_symlink_loop_in_the_raw_tree_ends(raw_copy: Path, tmp_path: Path) -> None:
    (raw_copy / "originals" / "200_2" / "loop").symlink_to(raw_copy / "originals")
    (raw_copy / "labels" / "self").symlink_to(raw_copy / "labels" / "self")  # dangling loop
    report = run(raw_copy, tmp_path / "out")
    assert report["repeated_folders"] == {"originals/200_2/loop": "originals"}
    assert "labels/self" in report["ignored"]


# --- 7. input checks ------------------------------------------------------------------------


def test_text_split_fraction_names_the_key(raw_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split.train='abc'"):
        run(raw_copy, tmp_path / "out", "split.train=abc")


def test_fractions_that_do_not_sum_to_one_are_refused(raw_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sum to 1.1"):
        run(raw_copy, tmp_path / "out", "split.train=0.8")


@pytest.mark.parametrize(("rows", "cols"), [(8, 2), (192, 256)])
def test_tiles_under_32_px_are_refused_before_writing(
    raw_copy: Path, tmp_path: Path, rows: int, cols: int
) -> None:
    with pytest.raises(ValueError, match=f"tiles.rows={rows} tiles.cols={cols}.*32 px"):
        run(raw_copy, tmp_path / "out", f"tiles.rows={rows}", f"tiles.cols={cols}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_label_with_no_painted_pixel_warns_and_is_listed(
    raw_copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gray = io.read_image(raw_copy / "originals" / "400_2" / "1.tif")
    io.write_jpeg(raw_copy / "labels" / "400_2" / "label_1.jpg", np.stack([gray] * 3, -1))
    with caplog.at_level(logging.WARNING):
        report = run(raw_copy, tmp_path / "out")
    assert report["empty_labels"] == ["labels/400_2/label_1.jpg"]
    assert "labels/400_2/label_1.jpg" in caplog.text and "no painted pixel" in caplog.text


def test_colour_original_warns_once_per_file(
    raw_copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gray = io.read_image(raw_copy / "originals" / "200_4" / "1.tif")
    colour = np.stack([gray, gray // 2, 255 - gray], -1)
    io.write_tiff(raw_copy / "originals" / "200_4" / "1.tif", colour)
    io.write_tiff(raw_copy / "originals" / "200_4" / "2.tif", np.stack([gray] * 3, -1))
    with caplog.at_level(logging.WARNING):
        report = run(raw_copy, tmp_path / "out", "workers=1")
    assert report["colour_originals"] == ["originals/200_4/1.tif"]  # not the gray RGB copy
    warnings = [r for r in caplog.records if "colour (RGB) original" in r.getMessage()]
    assert len(warnings) == 1 and "200_4/1.tif" in warnings[0].getMessage()


def test_zero_byte_corrupt_and_truncated_tiffs_are_named_together(
    raw_copy: Path, tmp_path: Path
) -> None:
    originals = raw_copy / "originals"
    (originals / "200_2" / "1.tif").write_bytes(b"")
    (originals / "200_4" / "1.tif").write_bytes(os.urandom(4096))
    whole = (originals / "400_2" / "1.tif").read_bytes()
    (originals / "400_2" / "1.tif").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ValueError) as error:
        run(raw_copy, tmp_path / "out")
    for name in ("200_2/1.tif", "200_4/1.tif", "400_2/1.tif"):
        assert name in str(error.value)
    assert not (tmp_path / "out").exists()


def test_label_of_another_size_is_named(raw_copy: Path, tmp_path: Path) -> None:
    io.write_jpeg(raw_copy / "labels" / "empty" / "label_2.jpg", np.zeros((160, 256, 3), np.uint8))
    with pytest.raises(
        ValueError, match=r"empty/label_2.jpg: 160x256 but .*empty/2.tif is 192x256"
    ):
        run(raw_copy, tmp_path / "out")


def test_grayscale_label_is_refused(raw_copy: Path, tmp_path: Path) -> None:
    io.write_png(raw_copy / "labels" / "200_2" / "label_1.jpg", np.zeros((192, 256), np.uint8))
    with pytest.raises(ValueError, match="200_2/label_1.jpg.*RGB"):
        run(raw_copy, tmp_path / "out")


def test_float_tiff_is_refused(raw_copy: Path, tmp_path: Path) -> None:
    tifffile.imwrite(raw_copy / "originals" / "200_2" / "2.tif", np.zeros((192, 256), np.float32))
    with pytest.raises(ValueError, match="200_2/2.tif.*float32"):
        run(raw_copy, tmp_path / "out")


def test_names_and_links_cannot_lead_writes_out_of_out_dir(raw_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(raw_copy / "originals" / "empty" / "1.tif", outside / "1.tif")
    (raw_copy / "originals" / "empty" / "1.tif").symlink_to(outside / "1.tif")  # read only
    label = raw_copy / "labels" / "400_4"
    (label / "label_1.jpg").rename(label / "a..\\..\\x_1.jpg")  # a backslash name is a plain name
    before = file_hashes(outside)
    run(raw_copy, tmp_path / "out")
    assert file_hashes(outside) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "outside", "raw"]
    written = [p.relative_to(tmp_path / "out").parts for p in (tmp_path / "out").rglob("*")]
    assert all(".." not in parts for parts in written)
    assert len(list((tmp_path / "out").glob("*/images/400_4_1_r*.tif"))) == 4


# --- 8. one training per run folder ---------------------------------------------------------


def compose_train_with_hydra(run_dir: Path):  # noqa: ANN201 (a DictConfig with hydra keys)
    with initialize(version_base="1.3", config_path="../conf"):
        return compose("train", overrides=[f"hydra.run.dir={run_dir}"], return_hydra_config=True)


def test_run_folder_lock_refuses_a_second_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    holder = start_holder(run_dir / LOCK_NAME)
    try:
        config = compose_train_with_hydra(run_dir)
        assert "run_folder_lock" in config.hydra.callbacks
        with pytest.raises(SystemExit) as exit_info:  # Hydra would swallow an exception
            RunFolderLock().on_run_start(config)
    finally:
        kill_9(holder)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert f"hydra.run.dir={run_dir}: in use by another run (PID {holder.pid}" in message
    assert message.count("\n") == 1
    callback = RunFolderLock()  # the holder died: taken over
    callback.on_run_start(config)
    assert (run_dir / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    callback.on_run_end(config)
    assert not (run_dir / LOCK_NAME).exists()


def test_run_folder_lock_is_left_to_rank_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytorch_lightning.utilities import rank_zero_only

    config = compose_train_with_hydra(tmp_path / "run")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    RunFolderLock().on_run_start(config)  # DDP rank 1 shares rank 0's folder
    assert not (tmp_path / "run" / LOCK_NAME).exists()


@pytest.mark.slow
def test_second_training_keeps_the_first_runs_config_snapshot(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    snapshot = run_dir / ".hydra" / "config.yaml"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_text("# the first run's config\n")
    holder = start_holder(run_dir / LOCK_NAME)
    try:
        command = [sys.executable, "-m", "neuroseg.train", f"hydra.run.dir={run_dir}"]
        result = subprocess.run(
            command + [f"data.dir={tmp_path / 'none'}"], cwd=REPO, capture_output=True, text=True
        )
    finally:
        kill_9(holder)
    assert result.returncode != 0
    assert f"PID {holder.pid}" in result.stderr
    assert snapshot.read_text() == "# the first run's config\n"
    assert {p.name for p in run_dir.iterdir()} == {".hydra", LOCK_NAME}  # nothing else written
    assert "Traceback" not in result.stderr and result.returncode == 2
