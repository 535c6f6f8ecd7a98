"""Do the nanopillar grids steer axon growth? python -m neuroseg.analyze images=<raw tree>.

The config becomes typed settings once (analysis/settings.py); analysis/report.py does the run.
"""

from __future__ import annotations

from omegaconf import DictConfig

from neuroseg.analysis.report import run_analysis
from neuroseg.analysis.settings import analyze_settings
from neuroseg.cli import command


@command("analyze")
def main(cfg: DictConfig) -> None:
    output = run_analysis(*analyze_settings(cfg))
    print((output / "summary.txt").read_text())
    print(f"tables and plots in {output}; all of it on one page: {output / 'report.html'}")


if __name__ == "__main__":
    main()
