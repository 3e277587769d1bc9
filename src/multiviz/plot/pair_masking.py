"""Pair masking drawn: the drop of the target probability (or accuracy) against the budget of masked pairs,
each ranker against its random reference, with 95 % bands (FL-I2MoE's pair-level masking test)."""

from __future__ import annotations

from typing import Any

from multiviz.errors import InputError
from multiviz.plot._common import new_figure
from multiviz.results.pair_masking import PairMasking

WHATS = ("probability", "accuracy")


def plot_pair_masking(
    result: PairMasking, *, what: str = "probability", gain: bool = False, ax: Any = None
) -> Any:
    """One line per ranker (its mean drop over points against the budget ``B``, with its 95 % band) and its
    random reference dashed in the same colour; returns the matplotlib Figure (nothing is shown or written).

    ``what``: ``"probability"`` (drop of the target probability) or ``"accuracy"``; ``gain``: draw the
    ranked-minus-random gain of each ranker instead (above 0: the ranked pairs hurt more than random
    ones); ``ax``: draw into this Axes instead of a new figure. Higher = masking the pairs hurt more.
    """
    if what not in WHATS:
        raise InputError(f"expected one of {list(WHATS)}, got {what!r}", argument="what")
    if ax is None:
        figure = new_figure(5.5, 3.8)
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    budgets = result.budgets
    if gain:
        return _gains(result, what, ax, figure)
    matched = result.parameters.get("reference", "matched") == "matched"
    for r, ranker in enumerate(result.rankers):
        colour = f"C{r % 10}"
        ranked = result.statistics[f"ranked_{what}_drop"][r]
        ax.plot(budgets, ranked[:, 0], marker="o", color=colour, label=ranker)
        ax.fill_between(budgets, ranked[:, 1], ranked[:, 2], color=colour, alpha=0.2, linewidth=0)
        if matched or r == 0:
            random = result.statistics[f"random_{what}_drop"][r]
            colour = colour if matched else "0.4"
            label = f"random (matched to {ranker})" if matched else "random pairs"
            ax.plot(budgets, random[:, 0], linestyle="--", marker=".", color=colour, label=label)
            ax.fill_between(budgets, random[:, 1], random[:, 2], color=colour, alpha=0.1, linewidth=0)
    ax.axhline(0.0, color="0.7", linewidth=0.8)
    ax.set_xticks(budgets)
    ax.set_xlabel("masked pairs B")
    ax.set_ylabel(f"drop of the target {what}" if what == "probability" else "drop of accuracy")
    ax.set_title(f"pair masking · {result.modality} · {len(result.probability)} points")
    ax.legend(fontsize="small")
    return figure


def _gains(result: PairMasking, what: str, ax: Any, figure: Any) -> Any:
    for r, ranker in enumerate(result.rankers):
        values = result.statistics[f"{what}_gain"][r]
        ax.plot(result.budgets, values[:, 0], marker="o", color=f"C{r % 10}", label=ranker)
        ax.fill_between(
            result.budgets, values[:, 1], values[:, 2], color=f"C{r % 10}", alpha=0.2, linewidth=0
        )
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set_xticks(result.budgets)
    ax.set_xlabel("masked pairs B")
    ax.set_ylabel(f"ranked minus random drop ({what})")
    ax.set_title(f"pair masking gain · {result.modality} · {len(result.probability)} points")
    ax.legend(fontsize="small")
    return figure
