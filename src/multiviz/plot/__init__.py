"""Drawing results: stage U (one function per modality kind) and stage C (interaction maps, DIME).

Methods never draw; these functions take an :class:`multiviz.Attribution` (plus the raw input where
the picture needs it) and return a ``matplotlib.figure.Figure`` built without pyplot (no global state,
Agg rendering: ``figure.savefig(buffer, format="png")``), or an HTML string for text.
Needs matplotlib (the ``explain`` extra). :func:`relevance_bars` draws the relevance per subset of an
Ip-norm fusion model (:class:`multiviz.results.Relevance`).
"""

from multiviz.plot.bars import vector_bars
from multiviz.plot.image import atom_map, image_heatmap
from multiviz.plot.interactions import disentanglement_bars, interaction_heatmap
from multiviz.plot.relevance import relevance_bars
from multiviz.plot.sequence import timeseries_heatmap
from multiviz.plot.text import text_figure, text_html

__all__ = [
    "atom_map",
    "disentanglement_bars",
    "image_heatmap",
    "interaction_heatmap",
    "relevance_bars",
    "text_figure",
    "text_html",
    "timeseries_heatmap",
    "vector_bars",
]
