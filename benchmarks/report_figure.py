"""README figure: analyze's report.html on the sample data, as headless Chromium draws it.

Run: python -m benchmarks.report_figure [--raw data/synth/raw]
Analyses the sample raw tree (made with the shipped synth config if missing) against its truth
masks, screenshots the whole page, and writes two crops of it: docs/report.png (the top:
conclusions, warnings) and docs/report-images.png (per-condition tables and the image
thumbnails). Needs Debian's chromium.
tests/test_report.py opens the reports in the same browser with `open_in_browser`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from PIL import Image

from neuroseg.analysis.report import run_analysis
from neuroseg.analysis.settings import analyze_settings
from neuroseg.data.sample_tree import make_dataset

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# A closed network: no background services, and every host name resolves to nothing, so a page
# that referenced anything outside itself would fail to load it (and the net log shows it).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-features=NetworkTimeServiceQuerying", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
)  # fmt: skip


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH, None when there is none."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def open_in_browser(
    page: Path, screenshot: Path, size: tuple[int, int], fragment: str = ""
) -> list[str]:
    """Load `page` (a local file, scrolled to `#fragment`) headless and screenshot a `size`
    (width, height) viewport to `screenshot`; returns the URLs the page itself requested."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError(f"no {' or '.join(BROWSERS)} on PATH; apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        net_log = Path(profile) / "netlog.json"
        command = [
            browser, *FLAGS, f"--user-data-dir={profile}/user", f"--log-net-log={net_log}",
            f"--screenshot={Path(screenshot).resolve()}", f"--window-size={size[0]},{size[1]}",
            Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else ""),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        return page_requests(net_log)


def page_requests(net_log: Path) -> list[str]:
    """URLs a page asked for, from a Chromium net log (JSON): the requests whose network
    isolation key is the local file's site (the browser's own housekeeping calls have none)."""
    log = json.loads(Path(net_log).read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start
        and "file://" in str(event.get("params", {}).get("network_isolation_key", ""))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=ROOT / "data" / "synth" / "raw")
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "report_figure")
    args = parser.parse_args()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        if not (args.raw / "originals").is_dir():
            synth = compose("synth", overrides=[f"out_dir={args.raw}"])
            keys = ("per_condition", "height", "width", "bit_depth", "seed", "duplicates")
            make_dataset(args.raw, **{key: synth[key] for key in keys})
        cfg = compose("analyze", overrides=[f"images={args.raw}", f"output={args.output}"])
    page = run_analysis(*analyze_settings(cfg)) / "report.html"
    whole = args.output / "page.png"
    requests = open_in_browser(page, whole, (1100, 12000))
    print(f"report: {page} ({page.stat().st_size / 1e6:.1f} MB); page requests: {requests}")
    drawn = np.asarray(Image.open(whole).convert("RGB"))
    # the thumbnails start where the lattice colour first shows; the tables above them lead in
    lattice = np.all(np.abs(drawn.astype(int) - (0, 230, 255)) < 60, axis=-1).any(axis=1)
    first = int(np.argmax(lattice)) if lattice.any() else drawn.shape[0] - 1200
    for name, top in (("report.png", 0), ("report-images.png", max(0, first - 650))):
        shot = ROOT / "docs" / name
        Image.fromarray(drawn[top : top + 1400]).save(shot, optimize=True)
        print(f"wrote {shot} ({shot.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
