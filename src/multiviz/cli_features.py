"""``multiviz features extract``: stream a layer's activations over a checkpoint's data split to disk.

The checkpoint's training metadata names its data set; the command rebuilds it, feeds one split through
the model batch by batch and calls :func:`multiviz.representations.extract_features`, which writes
``.npy`` shards and a manifest (the commit point). Run it again on the same folder to resume an
interrupted extraction. ``multiviz analyze global`` reads the folder. ``--engine ray`` computes the
rows on Ray actors that load the checkpoint once each (:mod:`multiviz.representations.ray_extraction`);
this process stays the only writer, so the folder is the same, and resumable by either engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from multiviz.cli_common import open_checkpoint
from multiviz.data.split_batches import SplitBatches, check_split

features_app = typer.Typer(
    help="Hidden features of a trained checkpoint (stage R): extract them to disk.", no_args_is_help=True
)
console = Console()


@features_app.command("extract")
def extract(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint directory written by `multiviz train`.")],
    output: Annotated[
        Path, typer.Argument(help="Folder for the shards (empty or new; or a previous run's, to resume).")
    ],
    split: Annotated[str, typer.Option(help="Which split of the checkpoint's data set.")] = "val",
    layer: Annotated[
        str | None, typer.Option(help="Dotted module name, e.g. body.0; default the penultimate layer.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 256,
    shard_rows: Annotated[int, typer.Option(help="Rows per shard file (memory holds one shard).")] = 16_384,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    engine: Annotated[str, typer.Option(help="local, or ray: the rows computed by Ray actors.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray: auto, ray://HOST:PORT, or none for a local Ray.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray: actors (each loads the model once).")] = 2,
    gpus_per_worker: Annotated[float, typer.Option(help="Ray: GPUs per actor.")] = 0.0,
) -> None:
    """Stream the activations of a layer over a split to .npy shards with per-feature statistics."""
    from multiviz.representations import extract_features
    from multiviz.runs.engine import _scale_out

    scale_out = _scale_out(engine, address, workers, gpus_per_worker)  # checked before anything loads
    adapter, data = open_checkpoint(checkpoint, device)
    check_split(data, split)
    batches = SplitBatches(data, split, [m.name for m in adapter.modalities], batch_size)
    metadata = {"checkpoint": str(checkpoint.resolve()), "split": split}
    try:
        if scale_out is not None:
            from multiviz.representations.extraction import batch_features, row_slice
            from multiviz.representations.ray_extraction import CheckpointSplit, extract_features_on_ray

            batch_features(adapter, row_slice(batches, 0, 1), layer)  # a bad --layer: refused here
            store = extract_features_on_ray(
                CheckpointSplit(str(checkpoint), split, device),
                output,
                layer=layer,
                batch_size=batch_size,
                shard_rows=shard_rows,
                n_rows=len(batches),
                metadata=metadata,
                show_progress=not quiet,
                **scale_out,
            )
        else:
            store = extract_features(
                adapter,
                batches,
                output,
                layer=layer,
                batch_size=batch_size,
                shard_rows=shard_rows,
                show_progress=not quiet,
                n_rows=len(batches),
                metadata=metadata,
            )
    except KeyboardInterrupt:
        console.print(
            f"[yellow]Interrupted.[/] Resume with the same command: the shards in {output} are kept."
        )
        raise typer.Exit(130) from None
    statistics = store.statistics
    console.print(
        f"{output}: {len(store):,} rows x {store.n_features} features of layer "
        f"{store.layer or 'penultimate'} ('{split}' split), {len(store.manifest['shards'])} shard(s)"
    )
    table = Table(title="per-feature statistics (first 10 features)")
    for column in ("feature", "mean", "std", "min", "max"):
        table.add_column(column, justify="right")
    for j in range(min(10, store.n_features)):
        table.add_row(
            f"z{j}",
            f"{statistics.mean[j]:+.4g}",
            f"{statistics.std[j]:.4g}",
            f"{statistics.minimum[j]:+.4g}",
            f"{statistics.maximum[j]:+.4g}",
        )
    console.print(table)
