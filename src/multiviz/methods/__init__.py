"""Explanation methods. Each module registers its method in :mod:`multiviz.registry` on import."""

from multiviz.methods.gradient_x_input import gradient_x_input
from multiviz.methods.occlusion import occlusion

__all__ = ["gradient_x_input", "occlusion"]
