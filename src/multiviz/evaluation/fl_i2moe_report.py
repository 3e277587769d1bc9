"""Markdown tables of the FL-I2MoE studies (``docs/fl-i2moe.md``): means and spreads over seeds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from multiviz.evaluation.fl_i2moe_easy_vqa import ModelStudy
from multiviz.evaluation.fl_i2moe_synthetic import MODELS, PLANTED_EXPERT, SyntheticRun


def spread(values: Iterable[float]) -> str:
    """``mean ± std`` over seeds (population std; just the mean when there is one value)."""
    array = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if array.size == 0:
        return "n/a"
    if array.size == 1:
        return f"{array[0]:.3f}"
    return f"{array.mean():.3f} ± {array.std():.3f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def accuracy_table(studies: Sequence[ModelStudy]) -> list[str]:
    accuracy = {s.model: s.test_accuracy for s in studies}
    rows = [[name, f"{100 * value:.2f} %"] for name, value in accuracy.items()]
    if {"fl-i2moe", "dense"} <= set(accuracy):
        rows.append(["difference", f"{100 * (accuracy['fl-i2moe'] - accuracy['dense']):+.2f} points"])
    return _table(["model", "test accuracy"], rows)


def routing_table(studies: Sequence[ModelStudy]) -> list[str]:
    routed = [s for s in studies if s.routing]
    if not routed:
        return []
    experts = routed[0].routing["experts"]
    rows = [
        [
            name,
            spread(s.routing["mean_weight"][name] for s in routed),
            spread(s.routing["top1_rate"][name] for s in routed),
        ]
        for name in experts
    ]
    return _table(["expert", "mean routing weight", "top-1 routing rate"], rows)


def faithfulness_table(studies: Sequence[ModelStudy]) -> list[str]:
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for study in studies:
        for row in study.faithfulness:
            cells[(study.model, row["expert"], row["method"])].append(row)
    rows = []
    for (model, expert, method), found in cells.items():
        rows.append(
            [
                model,
                expert,
                method,
                spread(r["comprehensiveness_aopc"] for r in found),
                spread(r["random_comprehensiveness_aopc"] for r in found),
                spread(r["comprehensiveness_gap"] for r in found),
                spread(r["sufficiency_aopc"] for r in found),
                spread(r["random_sufficiency_aopc"] for r in found),
                spread(r["sufficiency_gap"] for r in found),
            ]
        )
    header = ["model", "explained", "method", "comp. AOPC", "random", "gap", "suff. AOPC", "random", "gap"]
    return _table(header, rows)


def pair_masking_table(studies: Sequence[ModelStudy]) -> list[str]:
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    budgets: list[int] = []
    for study in studies:
        for who, summary in study.pair_masking.items():
            budgets = summary["budgets"]
            for ranker in ("shapley_interaction", "redundancy_gap"):
                cells[(study.model, who, ranker)].append(summary[ranker])
    rows = []
    for (model, who, ranker), found in cells.items():
        row = [model, who, ranker]
        for k in range(len(budgets)):
            first = found[0]
            interval = f" [{first['gain_low'][k]:+.3f}, {first['gain_high'][k]:+.3f}]"
            row.append(spread(f["gain"][k] for f in found) + interval)
        rows.append(row)
    header = ["model", "explained", "ranked by", *[f"gain at B = {b} (95 % CI, seed 0)" for b in budgets]]
    return _table(header, rows)


def concentration_table(studies: Sequence[ModelStudy]) -> list[str]:
    cells: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for study in studies:
        for key, summary in study.concentration.items():
            who, method = key.split("|")
            cells[(f"{study.model} / {who}", method)].append(summary)
    rows = [
        [who, method, spread(s["gini_mean"] for s in found), spread(s["entropy_mean"] for s in found)]
        for (who, method), found in sorted(cells.items(), key=lambda item: (item[0][1], item[0][0]))
    ]
    return _table(["model / explained", "scores", "Gini (higher = concentrated)", "normalised entropy"], rows)


def easy_vqa_markdown(studies: Sequence[ModelStudy]) -> str:
    """The easy-VQA tables: accuracy, routing, faithfulness, pair masking, concentration."""
    seeds = sorted({s.seed for s in studies})
    parts = [
        f"Evaluation seeds {seeds} (mean ± std over seeds; each seed draws its own test points and random "
        "references).",
        "",
        "**Accuracy** (test split, 1,000 images)",
        "",
        *accuracy_table(studies),
        "",
        "**Routing** (FL-I2MoE, the evaluated test points)",
        "",
        *routing_table(studies),
        "",
        "**Top-K% masking** (K in 5-25 %, joint scope; comprehensiveness: higher = faithful; sufficiency: "
        "lower = faithful; gaps: identified vs random atoms of the same count, positive = better than "
        "random)",
        "",
        *faithfulness_table(studies),
        "",
        "**Pair masking** (target-probability drop of masking the top-B pairs minus that of B random pairs "
        "with the same atom counts)",
        "",
        *pair_masking_table(studies),
        "",
        "**Concentration** of |attributions| (joint atoms) and of |SII| (cross-modal pairs)",
        "",
        *concentration_table(studies),
    ]
    return "\n".join(parts) + "\n"


#: column and row names of the synthetic study's models
MODEL_LABELS = {
    "fl-i2moe": "FL-I2MoE",
    "fl-i2moe-routed": "FL-I2MoE, routed by type",
    "dense": "dense",
}


def synthetic_markdown(runs: Sequence[SyntheticRun]) -> str:
    """The synthetic tables: accuracy, routing to the planted expert, planted-pair recovery, concentration."""
    seeds = sorted({r.seed for r in runs})
    settings = list(dict.fromkeys(r.setting for r in runs))
    models = [m for m in MODELS if any(r.model == m for r in runs)]
    by = defaultdict(list)
    for run in runs:
        by[(run.setting, run.model)].append(run)
    accuracy = [[s] + [spread(r.test_accuracy for r in by[(s, m)]) for m in models] for s in settings]
    routing = []
    for setting in settings:
        for model in (m for m in models if m.startswith("fl-i2moe")):
            moe = [r for r in by[(setting, model)] if r.routing]
            planted = PLANTED_EXPERT.get(setting, "")
            leaders = [max(r.routing["mean_weight"], key=r.routing["mean_weight"].get) for r in moe]
            routing.append(
                [
                    setting,
                    MODEL_LABELS[model],
                    planted,
                    spread(r.routing["top1_rate"][planted] for r in moe),
                    spread(r.routing["mean_weight"][planted] for r in moe),
                    ", ".join(leaders),
                    f"{sum(leader == planted for leader in leaders)}/{len(moe)}",
                ]
            )
    recovery, concentration = [], []
    for setting in settings:
        for model in models:
            found = by[(setting, model)]
            for who in found[0].recovery if found else []:
                scores = [r.recovery[who] for r in found]
                recovery.append(
                    [setting, f"{MODEL_LABELS[model]} / {who}"]
                    + [
                        spread(s.get(k, float("nan")) for s in scores)
                        for k in ("synergy_top1", "redundancy_top1", "planted_share")
                    ]
                )
                kept = [r.concentration[who] for r in found]
                concentration.append(
                    [
                        setting,
                        f"{MODEL_LABELS[model]} / {who}",
                        spread(c["gini_mean"] for c in kept),
                        spread(c["entropy_mean"] for c in kept),
                    ]
                )
    parts = [
        f"Training seeds {seeds} (mean ± std over seeds).",
        "",
        "**Accuracy** (test split)",
        "",
        *_table(["setting", *(MODEL_LABELS[m] for m in models)], accuracy),
        "",
        "**Routing** (test split): the planted expert's top-1 routing rate and mean weight; the expert with "
        "the largest mean weight per seed; seeds where that is the planted expert",
        "",
        *_table(
            [
                "setting",
                "model",
                "planted expert",
                "top-1 rate",
                "mean weight",
                "leading expert per seed",
                "planted leads",
            ],
            routing,
        ),
        "",
        "**Planted-pair recovery** (probe points): share of points whose top pair by synergy (SII) is the "
        "planted synergistic pair, whose top pair by redundancy gap is the planted substitutable pair, and "
        "the share of |SII| mass on the planted pairs (n/a: the setting plants no such pair)",
        "",
        *_table(
            ["setting", "model / explained", "synergy top-1", "redundancy top-1", "|SII| share on planted"],
            recovery,
        ),
        "",
        "**Concentration** of gradient x input over the tokens (probe points)",
        "",
        *_table(["setting", "model / explained", "Gini", "normalised entropy"], concentration),
    ]
    return "\n".join(parts) + "\n"
