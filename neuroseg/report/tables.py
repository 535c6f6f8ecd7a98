"""Tables as the report shows them: a CSV the run wrote, read back cell for cell, so the page's
numbers are the file's; or records made in memory, formatted as the CSVs format theirs."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Row = dict[str, str]


@dataclass(frozen=True)
class Table:
    """Rows of string cells in a column order; `source` is the CSV file they come from ("" for
    a table made in memory). A table over the report's row limit keeps no rows: `total` says
    how many it has, and the page points at the file instead."""

    title: str
    columns: list[str]
    rows: list[Row]
    source: str = ""
    total: int = 0

    @property
    def inlined(self) -> bool:
        """Whether the page shows the rows (False: too long, only named)."""
        return len(self.rows) == self.total


def csv_table(
    path: Path, title: str, max_rows: int, keep: Callable[[Row], bool] | None = None
) -> Table:
    """The CSV at `path` (optionally only the rows `keep` accepts), every column it has."""
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows: list[Row] = list(reader)
        columns = list(reader.fieldnames or [])
    if keep is not None:
        rows = [row for row in rows if keep(row)]
    shown = rows if len(rows) <= max_rows else []
    return Table(title, columns, shown, Path(path).name, len(rows))


def cell(value: object) -> str:
    """A value as the CSVs write it: floats at 4 significant digits, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def records_table(title: str, records: Sequence[object]) -> Table:
    """Dataclass records (or mappings) as a table, one column per field, in field order."""
    rows: list[Mapping[str, object]] = [
        dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r)  # type: ignore[arg-type]
        for r in records
    ]
    columns = list(rows[0]) if rows else []
    cells = [{key: cell(row[key]) for key in columns} for row in rows]
    return Table(title, columns, cells, "", len(cells))


def other_tables(folder: Path, shown: Sequence[str], max_rows: int) -> list[Table]:
    """Every CSV in `folder` the page has not shown yet, by file name (new outputs appear)."""
    return [
        csv_table(path, path.name, max_rows)
        for path in sorted(Path(folder).glob("*.csv"))
        if path.name not in shown and not path.name.startswith(".")
    ]
