"""How samples split into atoms, per modality kind."""

from multiviz.atoms.base import Atomizer, AtomLayout
from multiviz.atoms.features import FeatureAtoms
from multiviz.atoms.image import ImagePatches, Superpixels
from multiviz.atoms.sequence import TimeWindows
from multiviz.atoms.text import TextTokens

__all__ = [
    "AtomLayout",
    "Atomizer",
    "FeatureAtoms",
    "ImagePatches",
    "Superpixels",
    "TextTokens",
    "TimeWindows",
]
