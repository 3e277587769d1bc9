"""Stage P (prediction): the sparse linear model over penultimate features (Wong et al. 2021)."""

from multiviz.prediction.elastic_net import (
    elastic_net_objective,
    elastic_net_penalty,
    elastic_net_prox,
    lambda_max,
    lambda_path,
    null_gradient,
    solve_elastic_net,
)
from multiviz.prediction.result import LambdaStep, SparsePath
from multiviz.prediction.sparse_path import SparseLinearModel, fit_sparse_path, split_rows

__all__ = [
    "LambdaStep",
    "SparseLinearModel",
    "SparsePath",
    "elastic_net_objective",
    "elastic_net_penalty",
    "elastic_net_prox",
    "fit_sparse_path",
    "lambda_max",
    "lambda_path",
    "null_gradient",
    "solve_elastic_net",
    "split_rows",
]
