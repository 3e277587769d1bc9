"""Analysis runs: ``explain`` computes stages U, C, R and P over a data set into a run directory (an
embedded SQLite store, resumable and readable while it is written); ``Run.open`` queries it.

See ``docs/run-store.md`` for the layout and the guarantees.
"""

from multiviz.runs.config import RunConfig
from multiviz.runs.engine import explain, interactive_share
from multiviz.runs.export import export_parquet
from multiviz.runs.run import PointExplanation, Run

__all__ = ["PointExplanation", "Run", "RunConfig", "explain", "export_parquet", "interactive_share"]
