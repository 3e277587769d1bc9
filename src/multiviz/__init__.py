"""multiviz: explain multimodal PyTorch classifiers.

Stages (Liang et al., MultiViz, ICLR 2023): U unimodal importance, C cross-modal interactions,
R representations, P prediction; plus DIME's disentangled explanations (Lyu et al., AIES 2022).
"""

import multiviz.dashboard  # noqa: F401  (registers Run.show; FastAPI loads only when a server starts)
from multiviz.adapters import Adapter, Capability, FunctionAdapter, TorchAdapter
from multiviz.atoms import AtomLayout, FeatureAtoms, ImagePatches, Superpixels, TextTokens, TimeWindows
from multiviz.errors import CapabilityError, CheckpointError, InputError, MultivizError
from multiviz.methods import (
    cross_modal_perturbation,
    dime,
    emap,
    grad_cam,
    gradient_x_input,
    integrated_gradients,
    kernel_shap,
    kl_occlusion,
    lime,
    masking_rounds,
    modality_summary,
    occlusion,
    saliency,
    second_order_gradient,
    shapley_interaction,
    smoothgrad,
)
from multiviz.methods.shapley_interaction import ShapleyInteractions
from multiviz.modality import Modality, ModalityKind
from multiviz.registry import get_method, list_methods
from multiviz.results import (
    Attribution,
    Attributions,
    Disentanglement,
    EMAPResult,
    InteractionMap,
    MaskingRounds,
    ModalitySummary,
    Result,
    result_from_bytes,
    result_from_dict,
)
from multiviz.runs import Run, RunConfig, explain
from multiviz.training import load_checkpoint

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "AtomLayout",
    "Attribution",
    "Attributions",
    "Capability",
    "CapabilityError",
    "CheckpointError",
    "Disentanglement",
    "EMAPResult",
    "FeatureAtoms",
    "FunctionAdapter",
    "ImagePatches",
    "InputError",
    "InteractionMap",
    "MaskingRounds",
    "Modality",
    "ModalityKind",
    "ModalitySummary",
    "MultivizError",
    "Result",
    "Run",
    "RunConfig",
    "ShapleyInteractions",
    "Superpixels",
    "TextTokens",
    "TimeWindows",
    "TorchAdapter",
    "__version__",
    "cross_modal_perturbation",
    "dime",
    "emap",
    "explain",
    "get_method",
    "grad_cam",
    "gradient_x_input",
    "integrated_gradients",
    "kernel_shap",
    "kl_occlusion",
    "lime",
    "list_methods",
    "load_checkpoint",
    "masking_rounds",
    "modality_summary",
    "occlusion",
    "result_from_bytes",
    "result_from_dict",
    "saliency",
    "second_order_gradient",
    "shapley_interaction",
    "smoothgrad",
]
