"""Drawing stage-C results: an interaction map as a heatmap, a DIME split as paired bars.

Like the rest of :mod:`multiviz.plot`, each function returns a ``matplotlib.figure.Figure`` built without
pyplot; the methods that make the results never draw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multiviz.errors import InputError
from multiviz.plot._common import new_figure, sample_weights, symmetric_limit
from multiviz.results import Disentanglement, InteractionMap


def interaction_heatmap(interaction: InteractionMap, index: int = 0) -> Any:
    """Sample ``index``'s map: one row per atom of ``modality_a``, one column per atom of ``modality_b``,
    red for positive interaction and blue for negative, on a colour scale centred on 0.

    The cell values are ``interaction.values[index]`` without the NaN padding (in the method's units, e.g.
    logit units for gradient x input or second differences).
    """
    if not 0 <= index < len(interaction.labels_a):
        raise InputError(
            f"sample index {index} is out of range; expected 0 <= index < {len(interaction.labels_a)}",
            argument="index",
        )
    rows, columns = interaction.labels_a[index], interaction.labels_b[index]
    values = interaction.values[index, : len(rows), : len(columns)]
    figure = new_figure(1.6 + 0.3 * len(columns), 1.2 + 0.3 * len(rows))
    axes = figure.add_subplot()
    limit = symmetric_limit(values)
    image = axes.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_yticks(np.arange(len(rows)), rows, fontsize=7)
    axes.set_xticks(np.arange(len(columns)), columns, fontsize=7, rotation=90)
    axes.set_ylabel(interaction.modality_a)
    axes.set_xlabel(interaction.modality_b)
    axes.set_title(f"{interaction.method} · target {interaction.target_index[index]}", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


def disentanglement_bars(result: Disentanglement, modality: str, index: int = 0) -> Any:
    """DIME's two explanations of one modality side by side: the unimodal contribution ``UC_m`` and the
    multimodal interaction ``MI_m`` of each atom (LIME weights, target units per atom kept)."""
    if modality not in result.unimodal:
        raise InputError(
            f"no explanation of this modality; the result has {sorted(result.unimodal)}",
            modality=modality,
            argument="modality",
        )
    unimodal = sample_weights(result.unimodal[modality], index)
    interaction = sample_weights(result.interaction[modality], index)
    labels = list(result.unimodal[modality].atom_labels[index])
    figure = new_figure(5, 0.8 + 0.3 * len(labels))
    axes = figure.add_subplot()
    positions = np.arange(len(labels))[::-1]
    axes.barh(positions + 0.2, unimodal, height=0.4, color="#2ca02c", label="UC (unimodal)")
    axes.barh(positions - 0.2, interaction, height=0.4, color="#9467bd", label="MI (interaction)")
    axes.set_yticks(positions, labels, fontsize=8)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("LIME weight (target units per atom kept)")
    uninformative = bool(result.uninformative[index]) if index < len(result.uninformative) else False
    axes.set_title(f"DIME · {modality}" + (" · uninformative" if uninformative else ""), fontsize=8)
    axes.legend(fontsize=7)
    return figure
