"""FL-I2MoE against its dense baseline on easy-VQA: accuracy, routing, expert-wise faithfulness, pair
masking and concentration (issue: interpretable fusion II; the numbers of ``docs/fl-i2moe.md``).

Both models come from the model cache (presets ``easy-vqa-fl-i2moe`` and ``easy-vqa-dense``, trained on
first use, one training seed each: a training run takes tens of minutes on a laptop CPU). The spread is
over ``seeds`` evaluation seeds: each draws its own test points and its own random references. Run::

    from multiviz.evaluation.fl_i2moe_easy_vqa import easy_vqa_study
    from multiviz.evaluation.fl_i2moe_report import easy_vqa_markdown
    print(easy_vqa_markdown(easy_vqa_study()))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from multiviz.adapters import TorchAdapter
from multiviz.data.registry import TrainingData
from multiviz.evaluation.experts import (
    EXPERT_METHODS,
    PERCENTAGES,
    attribution_concentration,
    attributions_of,
    expert_faithfulness,
    expert_pair_masking,
    explained,
    interaction_concentration,
    routing_summary,
)
from multiviz.methods.shapley_interaction import shapley_interaction
from multiviz.progress import progress_bar
from multiviz.training import checkpoint_with_data
from multiviz.training.cache import cached_model, demo_config

MOE_PRESET, DENSE_PRESET = "easy-vqa-fl-i2moe", "easy-vqa-dense"


@dataclass
class StudySettings:
    """What the study computes (the defaults made the documented numbers)."""

    n_points: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = EXPERT_METHODS
    percentages: tuple[float, ...] = PERCENTAGES
    n_random: int = 10
    budgets: tuple[int, ...] = (1, 3, 5)
    #: KernelSHAPIQ needs 3,490 model rows for the 74 atoms (64 image, 10 words) of a long easy-VQA question
    shapley_budget: int = 4096
    integrated_gradients_steps: int = 16


@dataclass
class ModelStudy:
    """One model (``"fl-i2moe"`` or ``"dense"``) under one evaluation seed."""

    model: str
    seed: int
    test_accuracy: float
    faithfulness: list[dict[str, Any]] = field(default_factory=list)
    pair_masking: dict[str, dict[str, Any]] = field(default_factory=dict)
    concentration: dict[str, dict[str, float]] = field(default_factory=dict)
    routing: dict[str, Any] = field(default_factory=dict)


def load_pair(
    cache_dir: Any = None, quick: bool = False
) -> dict[str, tuple[TorchAdapter, TrainingData, float]]:
    """Both trained models with their data and test accuracy (trained into the cache when missing;
    ``quick``: their one-epoch variants on 100 images, for checking the pipeline, not for numbers)."""
    out = {}
    for name, preset in (("fl-i2moe", MOE_PRESET), ("dense", DENSE_PRESET)):
        cached = cached_model(demo_config(preset, quick=quick), cache_dir=cache_dir, show_progress=False)
        adapter, data = checkpoint_with_data(cached.checkpoint.path, "cpu")
        out[name] = (adapter, data, float(cached.checkpoint.metadata["metrics"]["test_accuracy"]))
    return out


def test_points(data: TrainingData, n_points: int, seed: int) -> dict[str, torch.Tensor]:
    """``n_points`` test rows drawn without replacement under ``seed``, as a model batch with labels."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(data.size("test"), generator=generator)[:n_points].sort().values
    return data.batch("test", rows)


def study_model(
    name: str,
    adapter: TorchAdapter,
    batch: dict[str, torch.Tensor],
    accuracy: float,
    seed: int,
    settings: StudySettings,
) -> ModelStudy:
    """Every measurement of one model on one draw of points (its experts too when it has them)."""
    has_experts = callable(getattr(adapter.model, "expert_names", None))
    adapters = explained(adapter, experts=has_experts)
    params = {"integrated_gradients": {"n_steps": settings.integrated_gradients_steps}}
    explanations = attributions_of(adapters, batch, settings.methods, params)
    study = ModelStudy(name, seed, accuracy)
    for (who, _method), attributions in explanations.items():
        row = expert_faithfulness(
            adapters[who], batch, attributions, expert=who, percentages=settings.percentages,
            n_random=settings.n_random, seed=seed,
        )  # fmt: skip
        study.faithfulness.append(row.to_dict())
        study.concentration[f"{who}|{attributions.method}"] = attribution_concentration(attributions)
    a, b = (m.name for m in adapter.modalities[:2])
    for who, who_adapter in adapters.items():
        interactions = shapley_interaction(
            who_adapter, batch, "predicted", modalities=[a, b], budget=settings.shapley_budget, seed=seed
        )
        study.concentration[f"{who}|shapley_interaction"] = interaction_concentration(interactions, a, b)
        masking = expert_pair_masking(
            {who: who_adapter}, batch, modality_a=a, modality_b=b, budgets=settings.budgets,
            n_random=settings.n_random, seed=seed, explanations={"shapley_interaction": interactions},
        )[who]  # fmt: skip
        study.pair_masking[who] = pair_summary(masking)
    if has_experts:
        routing = routing_summary(adapter, batch)
        study.routing = {k: v for k, v in routing.items() if k != "weights"}
    return study


def pair_summary(masking: Any) -> dict[str, Any]:
    """The headline of a :class:`~multiviz.results.PairMasking`: per ranker and budget, the mean drop of
    the target probability for ranked and random pairs and the gain with its 95 % interval."""
    stats = masking.statistics
    out: dict[str, Any] = {"budgets": list(masking.budgets)}
    for r, ranker in enumerate(masking.rankers):
        out[ranker] = {
            "ranked": np.asarray(stats["ranked_probability_drop"][r, :, 0]).tolist(),
            "random": np.asarray(stats["random_probability_drop"][r, :, 0]).tolist(),
            "gain": np.asarray(stats["probability_gain"][r, :, 0]).tolist(),
            "gain_low": np.asarray(stats["probability_gain"][r, :, 1]).tolist(),
            "gain_high": np.asarray(stats["probability_gain"][r, :, 2]).tolist(),
        }
    return out


def easy_vqa_study(
    settings: StudySettings | None = None,
    cache_dir: Any = None,
    quick: bool = False,
    show_progress: bool = True,
) -> list[ModelStudy]:
    """Both models under every evaluation seed (module docstring; ``quick``: see :func:`load_pair`)."""
    settings = settings or StudySettings()
    models = load_pair(cache_dir, quick)
    studies = []
    with progress_bar(show=show_progress) as progress:
        task = progress.add_task("FL-I2MoE study (easy-VQA)", total=len(models) * len(settings.seeds))
        for seed in settings.seeds:
            for name, (adapter, data, accuracy) in models.items():
                batch = test_points(data, settings.n_points, seed)
                studies.append(study_model(name, adapter, batch, accuracy, seed, settings))
                progress.advance(task)
    return studies
