"""The evaluation suite behind ``multiviz evaluate``: every metric of :mod:`multiviz.evaluation` run on
one model's explanations (computed, or read from a run), gathered into one report with a leaderboard.

It sits above the run store (it loads models and data as runs do, and reads and writes runs), so it is
not part of :mod:`multiviz.evaluation`, whose metrics are pure functions of an adapter and a batch.
"""

from multiviz.evaluation_suite.config import EvaluationConfig
from multiviz.evaluation_suite.report import store_in_run, write_report
from multiviz.evaluation_suite.suite import METRICS, evaluate

__all__ = ["METRICS", "EvaluationConfig", "evaluate", "store_in_run", "write_report"]
