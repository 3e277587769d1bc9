"""``multiviz data ...``: look at your own data files before explaining a model on them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from multiviz.errors import InputError

data_app = typer.Typer(help="Read your own data files (JSONL/CSV with images and texts, NPZ/Parquet arrays).")
console = Console()


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise InputError(f"expected NAME=VALUE, got {value!r}", argument=option)
        out[name] = rest
    return out


@data_app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="A .jsonl, .csv, .npz or .parquet file.")],
    label: Annotated[str, typer.Option(help="The label column or array; '' for none.")] = "label",
    image: Annotated[str | None, typer.Option(help="Tables: the column of image file names.")] = None,
    image_dir: Annotated[
        Path | None, typer.Option(help="Folder of the images (default: the table's).")
    ] = None,
    image_size: Annotated[int, typer.Option(help="Resize images to this square size.")] = 64,
    text: Annotated[list[str] | None, typer.Option(help="Tables: a text column (repeatable).")] = None,
    tabular: Annotated[
        list[str] | None,
        typer.Option(help="NAME=COL1,COL2,...: numeric columns as one modality (repeatable)."),
    ] = None,
    modality: Annotated[
        list[str] | None, typer.Option(help="Arrays: NAME=KIND, e.g. series=timeseries (repeatable).")
    ] = None,
    skip_bad_images: Annotated[bool, typer.Option(help="Leave out rows whose image cannot be read.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Read PATH as multiviz would and print its rows, modalities (shape, dtype) and labels."""
    from multiviz.data.files import load_arrays, load_table
    from multiviz.data.tables import TABLE_SUFFIXES

    columns = {name: cols.split(",") for name, cols in _pairs(tabular or [], "tabular").items()}
    if path.suffix.lower() in TABLE_SUFFIXES:
        with warnings.catch_warnings():  # every skipped row is printed below, with its path
            warnings.simplefilter("ignore", UserWarning)
            dataset = load_table(
                path,
                label=label or None,
                image=image,
                image_dir=image_dir,
                image_size=image_size,
                text=text or None,
                tabular=columns,
                skip_bad_images=skip_bad_images,
            )
    else:
        kinds = {name: "tabular" for name in columns} | _pairs(modality or [], "modality")
        dataset = load_arrays(path, modalities=kinds, label=label or None, columns=columns or None)
    summary = dataset.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(f"[bold]{summary['source']}[/]: {summary['rows']:,} rows")
    for row in dataset.skipped:
        console.print(f"[yellow]skipped row {row.row}[/]: {row.path}: {row.reason}")
    table = Table(title="tensors")
    for column in ("name", "kind", "shape", "dtype"):
        table.add_column(column)
    for name, info in summary["tensors"].items():
        table.add_row(name, info["kind"], str(info["shape"]), info["dtype"])
    console.print(table)
    if summary["labels"]:
        labels = Table(title=f"{len(summary['labels'])} labels")
        labels.add_column("index", justify="right")
        labels.add_column("label")
        labels.add_column("rows", justify="right")
        for index, (name, count) in enumerate(summary["labels"].items()):
            labels.add_row(str(index), name, f"{count:,}")
        console.print(labels)
