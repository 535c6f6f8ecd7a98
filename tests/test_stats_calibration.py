"""The statistics benchmark, small: it runs analyze's own claim code and its numbers make sense."""

from __future__ import annotations

from pathlib import Path

from benchmarks.stats_calibration import STRENGTHS, kinds, main, pooled
from neuroseg import io


def test_quick_calibration_runs_and_reads_sensibly(tmp_path: Path) -> None:
    result = io.read_json(main(["--quick", "--out", str(tmp_path / "calibration.json")]))
    assert [r["kappa"] for r in result["null"]] == [0.0, 1.0]
    assert len(result["planted"]) == len(result["interaction"]) == len(STRENGTHS)
    for null in result["null"]:
        assert set(null["raw_significant"]) == set(null["true_effect"])  # every claim kind
        assert len(null["true_effect"]) == 5 + 4 + 3
        assert all(r["rate"] <= 0.2 for r in null["family_any_significant"].values())
    strongest = result["planted"][-1]
    grids = kinds(strongest)["aligned, grid"]
    assert pooled(strongest, "right_direction", grids)["rate"] >= 0.5
    assert 0.8 <= pooled(strongest, "ci_coverage", grids)["rate"] <= 1.0
    assert result["settings"]["permutations"] == 499
