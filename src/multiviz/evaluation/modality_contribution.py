"""How much each modality contributes: MM-SHAP, the perceptual score and EMAP's interactive share (stage E).

* **MM-SHAP** (Parcalabescu and Frank, ACL 2023). The players are the atoms of *all* evaluated modalities of
  a point together; their Shapley values ``phi`` (logit of the target class) come from KernelSHAP (Lundberg
  and Lee 2017) over joint coalitions, with the efficiency constraint ``sum phi = f(x) - f(every atom
  masked)`` enforced exactly. The share of modality ``m`` is ``sum_{a in m} |phi_a| / sum_a |phi_a|``
  (T-SHAP and V-SHAP for text and image), so the shares of a point sum to 1. Exact when ``2^d - 2 <=
  n_samples`` (``d`` = the point's atoms of all modalities); otherwise ``n_samples`` coalitions are drawn
  from the Shapley kernel (:func:`multiviz.methods.kernel_shap.kernel_shap_coalitions`, one fresh
  ``default_rng(seed)`` per point).
* **Perceptual score** (Gat, Schwartz and Schwing, NeurIPS 2021). Accuracy against the labels minus the
  accuracy when modality ``m`` of every point is replaced by that of another point (a seeded random
  derangement of the evaluated points; ``n_permutations`` of them, the same ones for every modality).
  The normalised score divides by the unpermuted accuracy. Higher = the model relies more on ``m``.
* **EMAP interactive share** (Hessel and Lee, EMNLP 2020): :func:`multiviz.emap` on the same points.

Every coalition of every point is scored through :func:`multiviz.evaluation.masked_scoring.masked_logits`,
and every permuted copy through the pairing helpers of EMAP, ``batch_size`` rows per forward pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from multiviz.adapters.base import Adapter, Batch, encoding_adapter
from multiviz.errors import InputError
from multiviz.evaluation.masked_scoring import JointAtoms, masked_logits
from multiviz.methods._common import chosen_modalities, default_batch_size
from multiviz.methods._grid import encode_pool, evaluate_rows, forward_inputs, modality_names, sample_count
from multiviz.methods.emap import emap
from multiviz.methods.kernel_shap import kernel_shap_coalitions, solve_efficient
from multiviz.params import Boolean, Integer, Names, Optional, validate_params
from multiviz.results.modality_contribution import ModalityContribution
from multiviz.targets import ResolvedTarget, Target, normalise_target, resolve_target

if TYPE_CHECKING:
    from multiviz.training.config import TrainConfig

_COMMON = {"modalities": Optional(Names()), "batch_size": Optional(Integer(1)), "seed": Integer()}
_MM_SHAP = {**_COMMON, "n_samples": Integer(1)}
_PERCEPTUAL = {**_COMMON, "n_permutations": Integer(1), "fast_path": Boolean()}


# -- the mathematics (pure) ---------------------------------------------------------------------------
def coalition_plan(n_atoms: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows to score for one point: ``removed`` bool ``[2 + S, d]`` (True = masked; row 0 masks nothing,
    row 1 everything, then the KernelSHAP coalitions), the kept coalitions ``[S, d]`` and their weights."""
    kept, kernel = kernel_shap_coalitions(n_atoms, n_samples, seed)
    edges = np.stack([np.zeros(n_atoms, dtype=bool), np.ones(n_atoms, dtype=bool)])
    return np.concatenate([edges, ~kept]), kept, kernel


def joint_shapley(values: np.ndarray, kept: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Efficient Shapley values ``[d]`` from the scores of :func:`coalition_plan`'s rows (``values [2 + S]``):
    they add up to ``values[0] - values[1]``, f(x) minus f(everything masked)."""
    full, empty = float(values[0]), float(values[1])
    return solve_efficient(kept, values[2:] - empty, kernel, full - empty)


def mm_shap_shares(phi: np.ndarray, modality_of: np.ndarray, n_modalities: int) -> np.ndarray:
    """``sum_{a in m} |phi_a| / sum_a |phi_a|`` for each modality ``m`` ``[M]`` (NaN when all are 0)."""
    magnitude = np.abs(np.asarray(phi, dtype=np.float64))
    per_modality = np.bincount(modality_of, weights=magnitude, minlength=n_modalities)
    total = magnitude.sum()
    return per_modality / total if total > 0 else np.full(n_modalities, np.nan)


def derangements(n_points: int, n_permutations: int, seed: int) -> np.ndarray:
    """``[K, N]`` seeded uniform random permutations without fixed points (rejection sampling), ``N >= 2``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_permutations, n_points), dtype=np.int64)
    for k in range(n_permutations):
        while True:
            order = rng.permutation(n_points)
            if not np.any(order == np.arange(n_points)):
                break
        out[k] = order
    return out


def accuracy_drops(correct: np.ndarray, permuted_correct: np.ndarray) -> np.ndarray:
    """Perceptual scores ``[M, K]``: the accuracy of ``correct [N]`` minus that of each row of
    ``permuted_correct [M, K, N]``."""
    return float(np.mean(correct)) - permuted_correct.astype(np.float64).mean(axis=-1)


# -- MM-SHAP ------------------------------------------------------------------------------------------
def _class_target(adapter: Adapter, batch: Batch, target: Target, method: str) -> ResolvedTarget:
    if isinstance(normalise_target(target), list):
        raise InputError(
            f"{method} explains a class logit; expected a class target, not a feature", argument="target"
        )
    return resolve_target(adapter, batch, target)


def _mm_shap_fields(
    adapter: Adapter,
    batch: Batch,
    resolved: ResolvedTarget,
    names: list[str],
    options: dict[str, Any],
    show_progress: bool,
) -> dict[str, Any]:
    atoms = JointAtoms.of(adapter, batch, names)
    points = range(atoms.batch_size)
    totals = [atoms.n_total(b) for b in points]
    if options["n_samples"] < max(totals):
        warnings.warn(
            f"mm_shap with n_samples={options['n_samples']} is fewer than the {max(totals)} joint atoms of a "
            "point; the regression is underdetermined and the shares are a minimum-norm guess. Use "
            "n_samples of at least a few times the atoms.",
            UserWarning,
            stacklevel=3,
        )
    plans = [coalition_plan(d, options["n_samples"], options["seed"]) for d in totals]
    logits = masked_logits(
        adapter,
        batch,
        atoms,
        [atoms.split(b, plans[b][0]) for b in points],
        batch_size=options["batch_size"],
        show_progress=show_progress,
        description="mm_shap: coalitions",
    )
    shares = np.full((len(points), len(names)), np.nan)
    values = {m: np.full((len(points), atoms.layouts[m].max_atoms), np.nan) for m in names}
    score, masked = np.zeros(len(points)), np.zeros(len(points))
    for b in points:
        scores = logits[b][:, int(resolved.index[b])].numpy()
        phi = joint_shapley(scores, plans[b][1], plans[b][2])
        shares[b] = mm_shap_shares(phi, atoms.modality_of(b), len(names))
        start = 0
        for m, count in zip(names, atoms.counts(b), strict=True):
            values[m][b, :count] = phi[start : start + count]
            start += count
        score[b], masked[b] = scores[0], scores[1]
    exact = np.array([2**d - 2 <= options["n_samples"] for d in totals])
    return {
        "shares": shares,
        "shapley_values": values,
        "score": score,
        "masked_score": masked,
        "exact": exact,
    }


def mm_shap(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    n_samples: int = 2048,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> ModalityContribution:
    """MM-SHAP shares of every point of ``batch`` (Parcalabescu and Frank 2023; see the module docstring).

    ``modalities`` (default all) are the players' modalities; the others are left as they are.
    ``n_samples`` coalitions per point (exact enumeration when ``2^d - 2 <= n_samples``; a warning when
    fewer than the atoms). Returns a :class:`ModalityContribution` with ``shares`` ``[B, M]``, the joint
    Shapley values (logit units; per point they add up to ``score - masked_score``) and ``exact``.
    """
    options = _options(
        adapter,
        _MM_SHAP,
        "mm_shap",
        modalities=modalities,
        n_samples=n_samples,
        batch_size=batch_size,
        seed=seed,
    )
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    resolved = _class_target(adapter, batch, target, "mm_shap")
    fields = _mm_shap_fields(adapter, batch, resolved, names, options, show_progress)
    return ModalityContribution(
        modalities=names,
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters=options,
        **fields,
    )


def _options(adapter: Adapter, spec: dict[str, Any], method: str, **values: Any) -> dict[str, Any]:
    options = validate_params(spec, values, method=method)
    options["batch_size"] = default_batch_size(adapter, options["batch_size"])
    options.pop("modalities")
    return options


# -- perceptual score ---------------------------------------------------------------------------------
def _perceptual_fields(
    adapter: Adapter, batch: Batch, names: list[str], options: dict[str, Any], show_progress: bool
) -> dict[str, Any]:
    if "label" not in batch:
        raise InputError(
            "the perceptual score compares predictions with labels; expected a batch with 'label'",
            argument="batch",
        )
    n = sample_count(adapter, batch)
    if n < 2:
        raise InputError(
            f"expected at least 2 points to permute a modality across, got {n}", argument="batch"
        )
    labels = batch["label"].reshape(-1).cpu().numpy()
    perms = derangements(n, options["n_permutations"], options["seed"])
    own = np.arange(n)
    everything = modality_names(adapter)
    rows: dict[str, list[np.ndarray]] = {name: [own] for name in everything}
    for m in names:
        for perm in perms:
            for name in everything:
                rows[name].append(perm if name == m else own)
    encoder = encoding_adapter(adapter) if options["fast_path"] else None
    pool = encode_pool(encoder, batch, options["batch_size"]) if encoder else forward_inputs(adapter, batch)
    logits = evaluate_rows(
        adapter,
        pool,
        {name: torch.from_numpy(np.concatenate(parts)) for name, parts in rows.items()},
        encoder.logits_from_encodings if encoder else adapter.logits,
        options["batch_size"],
        encoded=encoder is not None,
        show_progress=show_progress,
        description="perceptual score: permuted modalities",
    )
    correct = logits.argmax(dim=1).numpy().reshape(-1, n) == labels
    drops = accuracy_drops(correct[0], correct[1:].reshape(len(names), len(perms), n))
    return {
        "perceptual": drops,
        "accuracy": float(correct[0].mean()),
        "extras": {"permutations": perms.tolist()},
    }


def perceptual_score(
    adapter: Adapter,
    batch: Batch,
    *,
    modalities: list[str] | None = None,
    n_permutations: int = 5,
    seed: int = 0,
    batch_size: int | None = None,
    fast_path: bool = True,
    show_progress: bool = False,
) -> ModalityContribution:
    """Perceptual score of each modality on the ``N >= 2`` labelled points of ``batch`` (Gat et al. 2021).

    ``perceptual[m, k]`` is the accuracy minus the accuracy with modality ``m`` permuted by the ``k``-th of
    ``n_permutations`` seeded derangements (fractions; ``normalised`` divides by the accuracy). ``fast_path``:
    with an adapter that encodes each modality apart (:attr:`Capability.ENCODE`) the encoders run once and
    only the fusion head sees the permuted rows (the same numbers to float tolerance).
    """
    options = _options(
        adapter,
        _PERCEPTUAL,
        "perceptual_score",
        modalities=modalities,
        n_permutations=n_permutations,
        seed=seed,
        batch_size=batch_size,
        fast_path=fast_path,
    )
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    fields = _perceptual_fields(adapter, batch, names, options, show_progress)
    return ModalityContribution(modalities=names, parameters=options, **fields)


def modality_contribution(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    n_samples: int = 2048,
    n_permutations: int = 5,
    batch_size: int | None = None,
    seed: int = 0,
    fast_path: bool = True,
    show_progress: bool = False,
) -> ModalityContribution:
    """MM-SHAP shares, perceptual scores and the EMAP interactive share of the explained ``target`` class
    logit (:func:`multiviz.emap`, over every modality of the model) on the labelled points of ``batch``."""
    options = _options(
        adapter,
        {**_MM_SHAP, **_PERCEPTUAL},
        "modality_contribution",
        modalities=modalities,
        n_samples=n_samples,
        n_permutations=n_permutations,
        batch_size=batch_size,
        seed=seed,
        fast_path=fast_path,
    )
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    resolved = _class_target(adapter, batch, target, "modality_contribution")
    perceptual = _perceptual_fields(adapter, batch, names, options, show_progress)
    shapley = _mm_shap_fields(adapter, batch, resolved, names, options, show_progress)
    projection = emap(
        adapter,
        batch,
        target,
        batch_size=options["batch_size"],
        seed=seed,
        fast_path=fast_path,
        show_progress=show_progress,
    )
    return ModalityContribution(
        modalities=names,
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters=options,
        emap_interactive_share=projection.interactive_share,
        emap_interactive_share_mean=projection.interactive_share_mean,
        **shapley,
        **perceptual,
    )


# -- the zoo table ------------------------------------------------------------------------------------
#: the easy-VQA presets of the fusion zoo (tensor fusion, late fusion, LRTF, MulT, Ip-norm, IBN)
ZOO_PRESETS = (
    "easy-vqa",
    "easy-vqa-late",
    "easy-vqa-lrtf",
    "easy-vqa-mult",
    "easy-vqa-ipnorm",
    "easy-vqa-ibn",
)


def zoo_contribution_table(
    presets: Sequence[str | TrainConfig] = ZOO_PRESETS,
    n_points: int = 200,
    *,
    n_samples: int = 256,
    n_permutations: int = 5,
    batch_size: int | None = None,
    seed: int = 0,
    cache_dir: Any = None,
    show_progress: bool = False,
) -> tuple[list[dict[str, Any]], str]:
    """:func:`modality_contribution` of each preset's cached model (trained on first use, minutes each) on
    ``n_points`` test points of its data set drawn with ``seed``: one row per preset and a markdown table.

    ``presets`` are preset names (:func:`multiviz.training.cache.demo_config`) or training configs with a
    ``preset`` name (their cache folder), e.g. a smaller variant of a preset."""
    from multiviz.adapters import TorchAdapter
    from multiviz.training import checkpoint_dataset
    from multiviz.training.cache import cached_model, demo_config

    rows = []
    for preset in presets:
        config = demo_config(preset) if isinstance(preset, str) else preset
        loaded = cached_model(config, cache_dir=cache_dir, show_progress=show_progress).checkpoint
        data = checkpoint_dataset(loaded)
        model = loaded.adapter  # its text atoms lack the tokenizer: take the data set's modalities
        adapter = TorchAdapter(
            model.model,
            data.modalities,
            arguments=model.arguments,
            embeddings=model.embedding_modules,
            head=model.head,
            extra_arguments=model.extra_arguments,
        )
        chosen = torch.randperm(data.size("test"), generator=torch.Generator().manual_seed(seed))[:n_points]
        # the zoo's frozen MiniLM encoder is memoised per distinct token row (forwards only, no gradients):
        # a point's coalitions hold at most 2^(its words) distinct questions
        memoise = getattr(model.model, "fast_path", None)
        with memoise() if callable(memoise) else nullcontext():
            result = modality_contribution(
                adapter,
                data.batch("test", chosen),
                n_samples=n_samples,
                n_permutations=n_permutations,
                batch_size=batch_size,
                seed=seed,
                show_progress=show_progress,
            )
        rows.append(_zoo_row(str(config.preset), str(config.model["name"]), result))
    return rows, zoo_markdown(rows)


def _zoo_row(preset: str, fusion: str, result: ModalityContribution) -> dict[str, Any]:
    row: dict[str, Any] = {"preset": preset, "fusion": fusion, "n_points": len(result.target_index or [])}
    row["accuracy"] = result.accuracy
    for entry in result.leaderboard_rows():
        if entry["metric"] in ("mm_shap", "perceptual_score", "normalised_perceptual_score"):
            key = f"{entry['metric']}_{entry['modality']}"
            row |= {key: entry["value"], f"{key}_ci_low": entry["ci_low"], f"{key}_ci_high": entry["ci_high"]}
    for m in result.modalities:
        row[f"perceptual_score_{m}_std"] = result.perceptual_std(m)
    row["emap_interactive_share"] = result.emap_interactive_share
    row["emap_interactive_share_mean"] = result.emap_interactive_share_mean
    row["mm_shap_exact"] = bool(result.exact is not None and result.exact.all())
    return row


def zoo_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`zoo_contribution_table` as a markdown table (MM-SHAP with its 95 % interval over
    points, perceptual score as mean +- std over permutations)."""
    if not rows:
        return ""
    modalities = [k[len("mm_shap_") :] for k in rows[0] if k.startswith("mm_shap_") and k.count("_ci_") == 0]
    modalities = [m for m in modalities if m != "exact"]
    head = ["preset", "fusion", "accuracy"]
    head += [f"MM-SHAP {m}" for m in modalities] + [f"perceptual score {m}" for m in modalities]
    head += ["EMAP interactive share (predicted logit)", "EMAP interactive share (mean over classes)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["preset"], row["fusion"], f"{row['accuracy']:.3f}"]
        for m in modalities:
            key = f"mm_shap_{m}"
            cells.append(f"{row[key]:.3f} [{row[key + '_ci_low']:.3f}, {row[key + '_ci_high']:.3f}]")
        for m in modalities:
            key = f"perceptual_score_{m}"
            cells.append(f"{row[key]:.3f} ± {row[key + '_std']:.3f}")
        cells += [f"{row['emap_interactive_share']:.3f}", f"{row['emap_interactive_share_mean']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
