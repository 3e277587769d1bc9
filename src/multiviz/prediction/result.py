"""The stage-P results, defined in :mod:`multiviz.results.prediction` (one result family); kept here so
that ``from multiviz.prediction.result import SparsePath`` still works."""

from multiviz.results.prediction import LambdaStep, SparsePath

__all__ = ["LambdaStep", "SparsePath"]
