"""Stage R (representations): feature extraction to disk, local and global analysis of hidden features."""

from multiviz.representations.analysis import (
    FeatureExtremes,
    explain_feature,
    feature_target,
    global_analysis,
    top_activating,
)
from multiviz.representations.error_analysis import (
    ErrorAnalysis,
    ErrorModel,
    error_analysis,
    fit_error_model,
    select_random,
    select_targeted,
    select_uncertain,
)
from multiviz.representations.extraction import FeatureStatistics, FeatureStore, extract_features
from multiviz.representations.in_memory import features_and_logits
from multiviz.representations.statistics import RunningStatistics

__all__ = [
    "ErrorAnalysis",
    "ErrorModel",
    "FeatureExtremes",
    "FeatureStatistics",
    "FeatureStore",
    "RunningStatistics",
    "error_analysis",
    "explain_feature",
    "extract_features",
    "feature_target",
    "features_and_logits",
    "fit_error_model",
    "global_analysis",
    "select_random",
    "select_targeted",
    "select_uncertain",
    "top_activating",
]
