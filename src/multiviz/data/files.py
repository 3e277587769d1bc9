"""Bring your own data: images, texts, tables and arrays from files, without writing a Dataset class.

``load_table`` reads a JSONL/CSV of image file names, texts, numeric columns and labels;
``load_arrays`` reads NPZ/Parquet arrays (time series, tabular); ``load_files`` picks by suffix;
``FileDataset.join`` puts the two side by side. From the command line: ``multiviz data inspect PATH``.
"""

from multiviz.data.arrays import load_arrays, load_files
from multiviz.data.file_dataset import FileDataset, SkippedRow
from multiviz.data.images import BadImageError, read_image
from multiviz.data.tables import load_table

__all__ = [
    "BadImageError",
    "FileDataset",
    "SkippedRow",
    "load_arrays",
    "load_files",
    "load_table",
    "read_image",
]
