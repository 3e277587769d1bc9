"""``export_parquet``: a run's tables as Parquet files, for pandas, DuckDB or Spark (needs ``pyarrow``).

Writes ``points.parquet`` (one row per point), ``records.parquet`` (point, method, target, result type
and the result's JSON), ``dataset_results.parquet`` (name, result type, JSON) and ``manifest.json``.
The directory is built beside the target and renamed into place: nothing is left half-written.
"""

from __future__ import annotations

import json
from pathlib import Path

from multiviz.errors import InputError
from multiviz.io import atomic_directory
from multiviz.results import result_from_bytes
from multiviz.runs.run import POINT_COLUMNS, Run


def export_parquet(run: str | Path, output: str | Path, *, batch_rows: int = 2048) -> Path:
    """Write the run's points, records and data-set results under ``output``; returns ``output``."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "exporting to Parquet needs pyarrow: pip install 'multiviz[data]'", argument="parquet"
        ) from None
    opened = Run.open(run)
    target = Path(output)

    def fill(directory: Path) -> None:
        connection = opened._store.connection
        columns: dict[str, list] = {name: [] for name in POINT_COLUMNS}
        for row in connection.execute(f"SELECT {', '.join(POINT_COLUMNS)} FROM points ORDER BY point_id"):
            for name, value in zip(POINT_COLUMNS, row, strict=True):
                columns[name].append(value)
        pq.write_table(pa.table(columns), directory / "points.parquet")
        schema = pa.schema(
            [
                ("point_id", pa.int64()),
                ("method", pa.string()),
                ("target", pa.string()),
                ("class_index", pa.int64()),
                ("result_type", pa.string()),
                ("result_json", pa.string()),
            ]
        )
        with pq.ParquetWriter(directory / "records.parquet", schema) as writer:
            cursor = connection.execute(
                "SELECT point_id, method, target, class_index, result_type, payload FROM records "
                "ORDER BY point_id, method, target"
            )
            while rows := cursor.fetchmany(batch_rows):  # streamed: memory bounded by batch_rows
                data = list(zip(*rows, strict=True))
                texts = [result_from_bytes(bytes(p)).to_json() for p in data[5]]
                writer.write_table(pa.table([*map(list, data[:5]), texts], schema=schema))
        names, kinds, texts = [], [], []
        for name, kind, payload in connection.execute(
            "SELECT name, result_type, payload FROM dataset_results ORDER BY name"
        ):
            names.append(name)
            kinds.append(kind)
            texts.append(result_from_bytes(bytes(payload)).to_json())
        pq.write_table(
            pa.table({"name": names, "result_type": kinds, "result_json": texts}),
            directory / "dataset_results.parquet",
        )
        (directory / "manifest.json").write_text(json.dumps(opened.manifest, indent=2) + "\n")

    try:
        atomic_directory(target, fill)
    finally:
        opened.close()
    return target
