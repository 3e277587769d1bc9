"""Stage R (representations): feature extraction to disk, local and global analysis of hidden features."""

from multiviz.representations.analysis import (
    FeatureExtremes,
    explain_feature,
    feature_target,
    global_analysis,
    top_activating,
)
from multiviz.representations.extraction import FeatureStatistics, FeatureStore, extract_features
from multiviz.representations.statistics import RunningStatistics

__all__ = [
    "FeatureExtremes",
    "FeatureStatistics",
    "FeatureStore",
    "RunningStatistics",
    "explain_feature",
    "extract_features",
    "feature_target",
    "global_analysis",
    "top_activating",
]
