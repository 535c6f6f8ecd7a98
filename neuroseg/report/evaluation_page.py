"""evaluate's report.html: the score tables (per image, pooled over pixels, per condition, and
any further table the run wrote, e.g. per fold), the worst and best images as overlays, and
provenance (checkpoint, prepared split and tiles with their checksums)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from neuroseg.data.dataset import read_manifest, tile_paths
from neuroseg.evaluation.settings import EvaluationSettings
from neuroseg.inference.settings import InferenceSettings
from neuroseg.models.checkpoint import threshold_path
from neuroseg.report.html import REPORT_NAME, file_uri, render, write_page
from neuroseg.report.provenance import provenance
from neuroseg.report.tables import Row, Table, csv_table, other_tables
from neuroseg.task import Task

# Tables the page shows in their own sections; every other CSV of the run follows them.
EVALUATION_TABLES = ("summary.csv", "per_image.csv", "confusion_matrix.csv")


def image_score(row: Row, metric: str, class_names: Sequence[str]) -> float | None:
    """Mean of the row's `<metric>_<class>` cells over foreground classes with a number (None:
    no such cell holds one, e.g. a class absent from truth and prediction)."""
    values = [row.get(f"{metric}_{name}", "") for name in class_names[1:]]
    numbers = [float(v) for v in values if v not in ("", None) and not math.isnan(float(v))]
    return sum(numbers) / len(numbers) if numbers else None


def ranked_examples(
    rows: Sequence[Row], metric: str, class_names: Sequence[str], count: int
) -> tuple[list[tuple[Row, float]], list[tuple[Row, float]]]:
    """(worst, best): up to `count` rows each, by `image_score`, worst first and best first;
    no image is in both: a split of fewer than 2 x `count` images is shared out, the lower
    half (the middle one included) as worst."""
    scored = [(row, image_score(row, metric, class_names)) for row in rows]
    ranked = sorted(((r, s) for r, s in scored if s is not None), key=lambda item: item[1])
    worst = ranked[: min(count, math.ceil(len(ranked) / 2))]
    best = ranked[max(len(worst), len(ranked) - count) :][::-1]
    return worst, best


def example_cards(
    output: Path, examples: Sequence[tuple[Row, float]], max_px: int
) -> list[dict[str, object]]:
    """Each example's row, score and overlay (evaluate's overlays/<image_id>.png, shrunk)."""
    cards = []
    for row, score in examples:
        path = output / "overlays" / f"{row['image_id']}.png"
        uri = file_uri(path, max_px) if path.is_file() else None
        cards.append({"row": row, "score": f"{score:.4g}", "overlay": uri})
    return cards


def pooled_table(metrics: Mapping[str, float], split: str) -> Table:
    """The scores pooled over every pixel of the split (the summed confusion matrix)."""
    rows = [
        {"metric": name.removeprefix(f"{split}/"), "value": f"{value:.4g}"}
        for name, value in metrics.items()
        if name.startswith(f"{split}/") and not name.startswith(f"{split}/image_")
    ]
    return Table("Pooled over every pixel of the split", ["metric", "value"], rows, "", len(rows))


def evaluation_inputs(
    inference: InferenceSettings, evaluation: EvaluationSettings, task: Task
) -> list[Path]:
    """The checkpoint (and its tuned-threshold sidecar), the manifest, the split and the tiles
    and masks of the scored split."""
    ckpt = Path(str(inference.ckpt_path))
    files = [ckpt, threshold_path(ckpt)]
    data_dir = evaluation.data_dir
    files += [data_dir / "manifest.csv", data_dir / "splits.json"]
    names = [str(r["tile"]) for r in read_manifest(data_dir) if r["split"] == evaluation.split]
    images, masks = tile_paths(data_dir / evaluation.split, names, task)
    return [path for path in files + images + masks if path.is_file()]


def write_evaluation_report(
    inference: InferenceSettings,
    evaluation: EvaluationSettings,
    task: Task,
    metrics: Mapping[str, float],
) -> Path:
    """report.html in evaluation.output, beside the tables it reads back; returns its path."""
    output, split, style = evaluation.output, evaluation.split, evaluation.report
    limit = style.max_table_rows
    per_image = csv_table(output / "per_image.csv", "Every image", limit)
    everything = csv_table(output / "per_image.csv", "", max(limit, per_image.total)).rows
    worst, best = ranked_examples(everything, style.rank_by, task.class_names, style.examples)
    summary = output / "summary.csv"
    context = {
        "title": f"{Path(str(inference.ckpt_path)).name} on the {split} split",
        "command": "evaluate",
        "split": split,
        "threshold": metrics.get("threshold"),
        "rank_by": style.rank_by,
        "scores": csv_table(summary, "Mean over images", limit, lambda r: by(r, "image", True)),
        "pooled": pooled_table(metrics, split),
        "conditions": csv_table(summary, "Per condition", limit, lambda r: by(r, "image", False)),
        "tiles": csv_table(summary, "Per tile", limit, lambda r: r["level"] == "tile"),
        "worst": example_cards(output, worst, style.thumbnail_px),
        "best": example_cards(output, best, style.thumbnail_px),
        "per_image": per_image,
        "confusion": csv_table(output / "confusion_matrix.csv", "Confusion matrix", limit),
        "more": other_tables(output, EVALUATION_TABLES, limit),
        "overlay": inference.overlay,
        "provenance": provenance(
            [inference, evaluation], evaluation_inputs(inference, evaluation, task)
        ),
    }
    path = output / REPORT_NAME
    write_page(path, render("evaluation.html.j2", context))
    return path


def by(row: Row, level: str, pooled: bool) -> bool:
    """summary.csv rows of `level`, over all conditions (pooled) or per condition."""
    return row["level"] == level and (row["condition"] == "all") == pooled
