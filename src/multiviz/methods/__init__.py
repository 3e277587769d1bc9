"""Explanation methods. Each module registers its method in :mod:`multiviz.registry` on import."""

from multiviz.methods.attention_rollout import attention_rollout
from multiviz.methods.cross_modal_perturbation import cross_modal_perturbation
from multiviz.methods.dime import dime
from multiviz.methods.emap import emap
from multiviz.methods.grad_cam import grad_cam
from multiviz.methods.gradients import gradient_x_input, integrated_gradients, saliency, smoothgrad
from multiviz.methods.kernel_shap import kernel_shap
from multiviz.methods.kl_occlusion import kl_occlusion
from multiviz.methods.lime import lime
from multiviz.methods.masking_rounds import masking_rounds
from multiviz.methods.modality_summary import modality_summary
from multiviz.methods.occlusion import occlusion
from multiviz.methods.second_order_gradient import second_order_gradient
from multiviz.methods.shapley_interaction import shapley_interaction

__all__ = [
    "attention_rollout",
    "cross_modal_perturbation",
    "dime",
    "emap",
    "grad_cam",
    "gradient_x_input",
    "integrated_gradients",
    "kernel_shap",
    "kl_occlusion",
    "lime",
    "masking_rounds",
    "modality_summary",
    "occlusion",
    "saliency",
    "second_order_gradient",
    "shapley_interaction",
    "smoothgrad",
]
