"""Explanation methods. Each module registers its method in :mod:`multiviz.registry` on import."""

from multiviz.methods.gradients import gradient_x_input, integrated_gradients, saliency, smoothgrad
from multiviz.methods.occlusion import occlusion

__all__ = ["gradient_x_input", "integrated_gradients", "occlusion", "saliency", "smoothgrad"]
