"""FL-I2MoE on synthetic tasks with planted interaction types (:mod:`multiviz.data.interaction_types`):
does the expert of the planted type get the routing weight, and do the interaction probes find the planted
token pairs?

For every setting and training seed, up to three models (``token_mlp`` encoders, so a token's attribution
is its own) are trained with :func:`multiviz.training.fit` (the same optimiser, epochs and early stopping):
``"fl-i2moe"`` (I2MoE's interaction losses only), ``"fl-i2moe-routed"`` (the same plus routing by
interaction type: ``lambda_route``, unique experts that see their own modality only; see
:mod:`multiviz.models.fl_i2moe`) and ``"dense"`` (the dense fusion transformer). Then, on test points:

* **routing** (both FL-I2MoE models): mean routing weight and top-1 routing rate of every expert; the
  *planted expert* (``redundancy`` for the redundancy setting, ``unique:<k>`` for uniqueness ``k``,
  ``synergy`` for synergy and for ``tokens``, where neither modality alone says anything of the label)
  should lead;
* **planted-pair recovery**, for the whole model, each expert and the dense baseline: the share of points
  whose top pair by synergy (``ShapleyInteractions.synergy``, from the Shapley interaction index) is the
  planted synergistic pair, and whose top pair by redundancy gap is the planted substitutable pair; and
  the share of ``|SII|`` mass on the planted pairs (concentration);
* **concentration** of the token attributions (gradient x input): Gini and normalised entropy.

Run (the numbers of ``docs/fl-i2moe.md``)::

    from multiviz.evaluation.fl_i2moe_synthetic import synthetic_study
    from multiviz.evaluation.fl_i2moe_report import synthetic_markdown
    print(synthetic_markdown(synthetic_study()))
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from multiviz.adapters import TorchAdapter
from multiviz.data.interaction_types import InteractionTypesData, make_interaction_types
from multiviz.errors import InputError
from multiviz.evaluation.experts import (
    attribution_concentration,
    explained,
    interaction_concentration,
    routing_summary,
)
from multiviz.methods.shapley_interaction import shapley_interaction
from multiviz.progress import progress_bar
from multiviz.registry import get_method
from multiviz.training import TrainConfig
from multiviz.training.trainer import fit

SETTINGS = ("redundancy", "uniqueness0", "uniqueness1", "synergy", "tokens")
#: the expert whose interaction type the setting plants
PLANTED_EXPERT = {
    "redundancy": "redundancy",
    "uniqueness0": "unique:a",
    "uniqueness1": "unique:b",
    "synergy": "synergy",
    "tokens": "synergy",  # y = s1 XOR s2 XOR r: a carries (s1, r), b carries (s2, r); neither suffices alone
}
#: the models of the study, in table order
MODELS = ("fl-i2moe", "fl-i2moe-routed", "dense")


@dataclass
class SyntheticSettings:
    """Data, models and probes of the synthetic study (the defaults made the documented numbers)."""

    settings: tuple[str, ...] = SETTINGS
    seeds: tuple[int, ...] = (0, 1, 2)
    n_points: int = 6000
    #: points of the three-bit ``tokens`` setting (a three-bit parity stays at chance from 6,000 points)
    tokens_points: int = 20_000
    n_tokens: int = 6
    features: int = 8
    epochs: int = 15
    patience: int = 5
    #: the three-bit ``tokens`` parity sits on a plateau for many epochs before it is learned
    tokens_epochs: int = 40
    tokens_patience: int = 15
    d_model: int = 16
    dense_d_model: int = 32
    lambda_int: float = 0.1
    #: routing-by-type weight of ``"fl-i2moe-routed"`` (whose unique experts see their own modality only);
    #: with 1.0 the router sends everything to the synergy expert from the first batches, and that one
    #: expert stayed on the parity plateau in 3 of 6 synergy/tokens runs (docs/fl-i2moe.md)
    lambda_route: float = 0.1
    models: tuple[str, ...] = MODELS
    n_probe: int = 24
    shapley_budget: int = 1024


@dataclass
class SyntheticRun:
    """One trained model (one of :data:`MODELS`) of one setting and seed, and what it showed."""

    setting: str
    seed: int
    model: str
    test_accuracy: float
    routing: dict[str, Any] = field(default_factory=dict)
    recovery: dict[str, dict[str, float]] = field(default_factory=dict)
    concentration: dict[str, dict[str, float]] = field(default_factory=dict)


def model_config(kind: str, settings: SyntheticSettings) -> dict[str, Any]:
    """The model ``kind`` (one of :data:`MODELS`) over two token sequences ``a``, ``b``."""
    if kind not in MODELS:
        raise InputError(f"expected one of {list(MODELS)}, got {kind!r}", argument="models")
    tokens = {"type": "token_mlp", "in_features": settings.features, "hidden": [32], "out_dim": 32}
    encoders = {"a": tokens, "b": tokens}
    if kind.startswith("fl-i2moe"):
        routed = kind == "fl-i2moe-routed"
        return {
            "name": "fl_i2moe", "encoders": encoders, "num_classes": 2, "d_model": settings.d_model,
            "heads": 2, "layers": 2, "router_hidden": 32, "lambda_int": settings.lambda_int,
            "lambda_route": settings.lambda_route if routed else 0.0,
            "unique_inputs": "own" if routed else "all",
        }  # fmt: skip
    return {
        "name": "fusion_transformer", "encoders": encoders, "num_classes": 2, "hidden": [32],
        "d_model": settings.dense_d_model, "heads": 2, "layers": 2,
    }  # fmt: skip


def n_points(setting: str, settings: SyntheticSettings) -> int:
    """Points generated for ``setting`` (``tokens_points`` for ``tokens``, else ``n_points``)."""
    return settings.tokens_points if setting == "tokens" else settings.n_points


def data_of(setting: str, seed: int, settings: SyntheticSettings) -> InteractionTypesData:
    """The data set a model of ``setting`` and ``seed`` is trained and probed on."""
    return make_interaction_types(
        setting, n_points=n_points(setting, settings), n_tokens=settings.n_tokens,
        features=settings.features, seed=seed,
    )  # fmt: skip


def train(setting: str, kind: str, seed: int, settings: SyntheticSettings) -> tuple[TorchAdapter, float]:
    """Train one model on one setting (checkpoint in a temporary folder); its adapter and test accuracy."""
    dataset = {
        "name": "interaction-types", "setting": setting, "n_points": n_points(setting, settings),
        "n_tokens": settings.n_tokens, "features": settings.features, "seed": seed,
    }  # fmt: skip
    config = TrainConfig(
        dataset=dataset, model=model_config(kind, settings), batch_size=128, learning_rate=3e-3, seed=seed,
        epochs=settings.tokens_epochs if setting == "tokens" else settings.epochs,
        patience=settings.tokens_patience if setting == "tokens" else settings.patience,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        result = fit(config, folder, show_progress=False)
    return result.adapter, float(result.metrics["test_accuracy"])


def recovery(
    adapter: TorchAdapter, batch: dict[str, torch.Tensor], planted: Any, budget: int, seed: int
) -> dict[str, float]:
    """Top-1 recovery of the planted synergistic / substitutable pair and the planted ``|SII|`` share."""
    interactions = shapley_interaction(
        adapter, batch, "predicted", modalities=["a", "b"], budget=budget, seed=seed
    )
    out: dict[str, float] = {}
    for kind, scores in (
        ("synergy", interactions.synergy("a", "b")),
        ("redundancy", interactions.redundancy_gap("a", "b")),
    ):
        pairs = [tuple(p) for p in planted.get(kind, [])]
        if not pairs:
            continue
        values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
        top = [np.unravel_index(np.argmax(v), v.shape) for v in values]
        out[f"{kind}_top1"] = float(np.mean([tuple(int(i) for i in t) in pairs for t in top]))
    every = [tuple(p) for kind in ("synergy", "redundancy") for p in planted.get(kind, [])]
    if every:
        out["planted_share"] = interaction_concentration(interactions, "a", "b", planted=every)[
            "planted_share_mean"
        ]
    return out


def study_run(setting: str, kind: str, seed: int, settings: SyntheticSettings) -> SyntheticRun:
    """Train one model and measure its routing (FL-I2MoE), planted-pair recovery and concentration."""
    adapter, accuracy = train(setting, kind, seed, settings)
    data = data_of(setting, seed, settings)
    test = data.split("test")
    batch = {k: v[: settings.n_probe] for k, v in test.items()}
    run = SyntheticRun(setting, seed, kind, accuracy)
    mixture = kind.startswith("fl-i2moe")
    adapters = explained(adapter, experts=mixture)
    if mixture:
        routed = routing_summary(adapter, test)
        run.routing = {k: v for k, v in routed.items() if k != "weights"}
    gradient_x_input = get_method("gradient_x_input").function
    for who, who_adapter in adapters.items():
        run.recovery[who] = recovery(who_adapter, batch, data.planted_pairs, settings.shapley_budget, seed)
        run.concentration[who] = attribution_concentration(gradient_x_input(who_adapter, batch, "predicted"))
    return run


def synthetic_study(
    settings: SyntheticSettings | None = None, show_progress: bool = True
) -> list[SyntheticRun]:
    """Every setting x seed x model (module docstring)."""
    settings = settings or SyntheticSettings()
    for kind in settings.models:
        model_config(kind, settings)  # refuse an unknown model before any training
    jobs = [(s, k, seed) for s in settings.settings for seed in settings.seeds for k in settings.models]
    runs = []
    with progress_bar(show=show_progress) as progress:
        task = progress.add_task("FL-I2MoE study (synthetic)", total=len(jobs))
        for setting, kind, seed in jobs:
            runs.append(study_run(setting, kind, seed, settings))
            progress.advance(task)
    return runs
