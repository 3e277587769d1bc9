"""Typed, serialisable results: numbers and labels, never a model.

Every result is a dataclass deriving from :class:`Result`, with the common fields ``method``,
``parameters``, ``extras`` and ``units`` (and ``target`` / ``target_index`` where it explains a target),
a generated strict-JSON form (``to_dict`` / ``to_json``) and a binary form (``to_bytes``) for the run
store; :func:`result_from_dict` and :func:`result_from_bytes` rebuild any of them. Arrays are numpy
arrays; a batch with samples of different atom counts is padded with NaN.

Importing :mod:`multiviz` defines every result type, so the two readers know them all.
"""

from multiviz.results._base import (
    COMMON_FIELDS,
    RESULT_TYPES,
    Result,
    decode,
    encode,
    result_from_bytes,
    result_from_dict,
)
from multiviz.results.alignment import AlignmentAccuracy, Localisation
from multiviz.results.attribution import Attribution, Attributions, ModalitySummary
from multiviz.results.evaluation import EvaluationReport
from multiviz.results.faithfulness import (
    DeletionCurves,
    EraserScores,
    Faithfulness,
    FaithfulnessCorrelation,
    TopKMasking,
)
from multiviz.results.interaction import (
    DECISIONS,
    ROLES,
    ROUNDS,
    Disentanglement,
    EMAPResult,
    InteractionMap,
    MaskingRounds,
    ShapleyInteractions,
)
from multiviz.results.modality_contribution import ModalityContribution
from multiviz.results.pair_masking import PairMasking, PlantedPairRecovery
from multiviz.results.prediction import LambdaStep, SparsePath
from multiviz.results.relevance import Relevance
from multiviz.results.representation import ErrorAnalysis, FeatureExtremes
from multiviz.results.sanity import SanityCheck

__all__ = [
    "COMMON_FIELDS",
    "DECISIONS",
    "RESULT_TYPES",
    "ROLES",
    "ROUNDS",
    "AlignmentAccuracy",
    "Attribution",
    "Attributions",
    "DeletionCurves",
    "Disentanglement",
    "EMAPResult",
    "EraserScores",
    "ErrorAnalysis",
    "EvaluationReport",
    "Faithfulness",
    "FaithfulnessCorrelation",
    "FeatureExtremes",
    "InteractionMap",
    "LambdaStep",
    "Localisation",
    "MaskingRounds",
    "ModalityContribution",
    "ModalitySummary",
    "PairMasking",
    "PlantedPairRecovery",
    "Relevance",
    "Result",
    "SanityCheck",
    "ShapleyInteractions",
    "SparsePath",
    "TopKMasking",
    "decode",
    "encode",
    "result_from_bytes",
    "result_from_dict",
]
