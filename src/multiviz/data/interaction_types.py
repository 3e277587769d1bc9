"""Synthetic two-modality tasks with planted interaction types (redundancy, uniqueness, synergy) over token
sequences, so that routing and token-level explanations of an interaction model (FL-I2MoE, issue #16)
have a right answer.

The generator follows the synthetic data of InterSHAP (Wenderoth et al., 2025) and of Liang et al.,
*Quantifying & Modeling Multimodal Interactions* (PID, NeurIPS 2023): fair-coin bits, a label that is
their XOR, and modalities that carry the bits in different ways, each through its own random projection.

**Tokens.** Two modalities ``a`` and ``b``, each a sequence of ``n_tokens`` tokens of ``features`` floats
(kind ``timeseries``, ``[N, n_tokens, features]``; an atom is a token, masked with zeros). A *planted*
token carries bits; every other token is pure noise ``N(0, (1 + noise^2) I)``. A bit ``c`` is coded
``z = 2c - 1 + noise * eps`` (``+-1`` plus Gaussian latent noise ``eps ~ N(0, 1)``, one draw per bit and
point, shared by every token that carries the bit: a second copy is the same information, so either copy
alone gives all that the pair gives, redundancy in the sense of PID). A planted token that carries ``k``
bits is ``sqrt(features / k) Q z``, with ``Q`` the ``k`` columns reserved for that token of the
modality's own random orthonormal ``[features, K]`` matrix (seeded; ``K`` = bits the modality carries,
so ``features >= K``). Planted and noise tokens have the same expected squared norm ``features (1 +
noise^2)``; the zero baseline of a masked token is the midpoint of the two codes, "bit unknown". The
scaled projections are kept (``projections[m]``), so ``w . x / |w|^2 = z`` decodes a planted token ``x``
exactly (``w`` its column). Planted positions are drawn once per data set from ``seed`` (distinct within
a modality) and recorded.

**Settings** (``y`` = XOR of all the bits; ``[p]`` is a planted token position):

=============== =========== ========================= ========================= =====================
setting         bits        ``a`` carries             ``b`` carries             planted pairs
=============== =========== ========================= ========================= =====================
``redundancy``  b1, b2      ``a[p]``: (b1, b2)        ``b[q]``: (b1, b2)        redundancy (p, q)
``uniqueness0`` b1, b2      ``a[p]``: (b1, b2)        noise only                none (unique: ``a``)
``uniqueness1`` b1, b2      noise only                ``b[q]``: (b1, b2)        none (unique: ``b``)
``synergy``     b1, b2      ``a[p]``: b1              ``b[q]``: b2              synergy (p, q)
``tokens``      s1, s2, r   ``a[p]``: s1, ``a[u]``: r ``b[q]``: s2, ``b[v]``: r synergy (p, q),
                                                                                redundancy (u, v)
=============== =========== ========================= ========================= =====================

In ``redundancy`` either modality alone gives ``y``; in ``uniqueness k`` only modality ``k`` does; in
``synergy`` each modality alone is independent of ``y`` (``b1`` alone says nothing of ``b1 XOR b2``).
``tokens`` plants both pair types at the token level: ``a[p]`` and ``b[q]`` are needed together (masking
either leaves ``y`` a coin flip), while ``a[u]`` and ``b[v]`` are substitutes (either copy of ``r``
suffices).

**Ideal pair values.** For the ideal model (logit ``+-L`` on the XOR when every bit can be read, 0 when
masked tokens leave a bit unknown) under the masked-token game of
:mod:`multiviz.methods.shapley_interaction`: in ``tokens`` the SII of ``(a[p], b[q])`` is ``2L/3``, of
``(a[p], b[v])`` and ``(a[u], b[q])`` ``L/6``, of ``(a[u], b[v])`` ``-L/3`` (synergy 0), and the redundancy
gap is ``L`` for ``(a[u], b[v])``, 0 for every other pair; in ``synergy`` the planted pair has SII ``L``
and gap 0, in ``redundancy`` SII ``-L`` and gap ``L``; all other pairs are 0 (tested). A trained model
need not be ideal: a ReLU MLP trained on ``redundancy`` adds the evidence of the two copies in its
logit (masking one copy about halves it), so on logits its planted pair reads synergistic, not redundant;
on ``tokens`` a trained MLP's top pairs were the planted ones.

**Learnability** (measured, ``n_tokens = 6``, ``features = 8``, 15 epochs of the FL-I2MoE study's
models): the two-bit settings reach 99.7-100 % test accuracy from 6,000 points (FL-I2MoE and the dense
fusion transformer); ``tokens`` (a three-bit parity: no pair of bits says anything about ``y``) stays at
chance from 6,000 points with both and reaches 99.95-100 % from 20,000. A ReLU MLP on the flattened
tokens learns every setting from 6,000 points.

**Bayes accuracy.** A bit is misread with probability ``e = Phi(-1 / noise)`` however many tokens carry
it (the copies share their noise); the XOR of ``n`` independent bits is right with probability
``(1 + (1 - 2 e)^n) / 2`` (:func:`bayes_accuracy`). At the default ``noise = 0.25`` every setting is above
0.9999; at ``noise = 1``: 0.733 with two bits, 0.659 with three (``tokens``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.modality import Modality

SPLITS = ("train", "val", "test")
MODALITIES = ("a", "b")


@dataclass(frozen=True)
class InteractionSetting:
    """A setting: its bits, the planted tokens of each modality (each a tuple of bit indices, in the order
    the positions are drawn) and the planted cross-modal pairs as ``(token of a, token of b)`` indices into
    those tuples."""

    bits: tuple[str, ...]
    tokens: Mapping[str, tuple[tuple[int, ...], ...]]
    interaction: str  # "redundancy", "uniqueness", "synergy" or "synergy+redundancy"
    unique_modality: str | None = None
    synergy_pairs: tuple[tuple[int, int], ...] = ()
    redundancy_pairs: tuple[tuple[int, int], ...] = ()


SETTINGS: dict[str, InteractionSetting] = {
    "redundancy": InteractionSetting(
        ("b1", "b2"), {"a": ((0, 1),), "b": ((0, 1),)}, "redundancy", redundancy_pairs=((0, 0),)
    ),
    "uniqueness0": InteractionSetting(("b1", "b2"), {"a": ((0, 1),), "b": ()}, "uniqueness", "a"),
    "uniqueness1": InteractionSetting(("b1", "b2"), {"a": (), "b": ((0, 1),)}, "uniqueness", "b"),
    "synergy": InteractionSetting(
        ("b1", "b2"), {"a": ((0,),), "b": ((1,),)}, "synergy", synergy_pairs=((0, 0),)
    ),
    "tokens": InteractionSetting(
        ("s1", "s2", "r"),
        {"a": ((0,), (2,)), "b": ((1,), (2,))},
        "synergy+redundancy",
        synergy_pairs=((0, 0),),
        redundancy_pairs=((1, 1),),
    ),
}


@dataclass(frozen=True)
class InteractionTypesData:
    """The generated points and what was planted.

    ``a``, ``b``: float32 ``[N, n_tokens, features]``; ``label``: int64 ``[N]`` (XOR of ``bits``);
    ``bits``: int64 ``[N, n_bits]`` named by ``bit_names``; ``planted[m]``: ``{token position: names of
    the bits it carries}`` of modality ``m`` (empty when ``m`` is noise only); ``planted_pairs``:
    ``{"synergy": [(i_a, j_b), ...], "redundancy": [...]}`` token positions of the planted cross-modal
    pairs (lists may be empty); ``projections[m]``: float64 ``[features, K_m]``, the columns in the order
    of ``planted[m]``'s tokens and their bits; rows ``train``, ``val``, ``test`` follow each other with
    ``split_sizes``."""

    setting: str
    a: Tensor
    b: Tensor
    label: Tensor
    bits: Tensor
    bit_names: tuple[str, ...]
    planted: dict[str, dict[int, tuple[str, ...]]]
    planted_pairs: dict[str, list[tuple[int, int]]]
    interaction: str
    unique_modality: str | None
    projections: dict[str, Tensor]
    noise: float
    split_sizes: dict[str, int]

    def rows(self, name: str) -> slice:
        """The rows of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise InputError(f"expected one of {SPLITS}, got {name!r}", argument="split")
        start = sum(self.split_sizes[s] for s in SPLITS[: SPLITS.index(name)])
        return slice(start, start + self.split_sizes[name])

    def split(self, name: str) -> dict[str, Tensor]:
        """The model batch ``{"a", "b", "label"}`` of split ``name``."""
        rows = self.rows(name)
        return {"a": self.a[rows], "b": self.b[rows], "label": self.label[rows]}

    @property
    def bayes_accuracy(self) -> float:
        return bayes_accuracy(self.setting, self.noise)


def interaction_type_modalities(n_tokens: int = 8, features: int = 16) -> list[Modality]:
    """``a`` and ``b``: token sequences ``[B, n_tokens, features]`` (an atom per token, masked with zeros)."""
    return [Modality(m, "timeseries", shape=(n_tokens, features)) for m in MODALITIES]


def bayes_accuracy(setting: str, noise: float) -> float:
    """The accuracy of the Bayes classifier of ``setting`` at latent noise ``noise`` (module docstring)."""
    _check_setting(setting)
    _check_noise(noise)
    error = 0.0 if noise == 0 else 0.5 * math.erfc(1 / (noise * math.sqrt(2)))
    return (1 + (1 - 2 * error) ** len(SETTINGS[setting].bits)) / 2


def _check_setting(setting: str) -> None:
    if setting not in SETTINGS:
        raise InputError(
            f"unknown setting {setting!r}; expected one of {sorted(SETTINGS)}", argument="setting"
        )


def _check_noise(noise: float) -> None:
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not math.isfinite(noise) or noise < 0:
        raise InputError(f"expected a finite latent noise >= 0, got {noise!r}", argument="noise")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _split_sizes(n_points: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    if not _is_int(n_points) or n_points < 3:
        raise InputError(f"expected an integer >= 3, got {n_points!r}", argument="n_points")
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or any(not f > 0 for f in values) or abs(sum(values) - 1) > 1e-6:
        raise InputError(
            f"expected three positive (train, val, test) fractions adding up to 1, got {fractions!r}",
            argument="fractions",
        )
    train, val = round(n_points * values[0]), round(n_points * values[1])
    sizes = (train, val, n_points - train - val)
    if min(sizes) < 1:
        raise InputError(
            f"fractions {fractions!r} of n_points = {n_points} leave a split empty: sizes {sizes}",
            argument="fractions",
        )
    return sizes


def _check_shape(rule: InteractionSetting, setting: str, n_tokens: int, features: int) -> None:
    if not _is_int(n_tokens) or n_tokens < 2:
        raise InputError(
            f"expected an integer >= 2 tokens per modality, got {n_tokens!r}", argument="n_tokens"
        )
    codes = max(sum(len(token) for token in rule.tokens[m]) for m in MODALITIES)
    if not _is_int(features) or features < codes:
        raise InputError(
            f"expected an integer >= {codes} (setting {setting!r} codes {codes} bit(s) in one modality, each "
            f"on its own projection direction), got {features!r}",
            argument="features",
        )


def _modality_tokens(
    rule: InteractionSetting,
    modality: str,
    codes: np.ndarray,
    shape: tuple[int, int],
    noise: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Noise tokens with the modality's planted tokens (``codes [N, n_bits]``, noise included) written in:
    tokens, positions, projection."""
    n_tokens, features = shape
    planted = rule.tokens[modality]
    scale = math.sqrt(1 + noise**2)
    tokens = scale * rng.standard_normal((len(codes), n_tokens, features))
    positions = [int(p) for p in rng.choice(n_tokens, size=len(planted), replace=False)]
    width = sum(len(token) for token in planted)
    basis = np.linalg.qr(rng.standard_normal((features, width)))[0] if width else np.zeros((features, 0))
    projection = np.empty((features, width))
    column = 0
    for position, carried in zip(positions, planted, strict=True):
        columns = slice(column, column + len(carried))
        projection[:, columns] = math.sqrt(features / len(carried)) * basis[:, columns]
        tokens[:, position] = codes[:, list(carried)] @ projection[:, columns].T
        column += len(carried)
    return tokens, positions, projection


def make_interaction_types(
    setting: str = "synergy",
    *,
    n_points: int = 20_000,
    n_tokens: int = 8,
    features: int = 16,
    noise: float = 0.25,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> InteractionTypesData:
    """Generate ``n_points`` points of ``setting`` (module docstring), split by ``fractions`` into train /
    val / test (test takes the rounding rest). Bits, noise, planted positions and projections all come
    from ``seed`` (same seed, same data)."""
    _check_setting(setting)
    rule = SETTINGS[setting]
    _check_shape(rule, setting, n_tokens, features)
    _check_noise(noise)
    sizes = _split_sizes(n_points, fractions)
    if not _is_int(seed):
        raise InputError(f"expected an integer seed, got {seed!r}", argument="seed")
    rng = np.random.default_rng(int(seed))
    bits = rng.integers(0, 2, (n_points, len(rule.bits)))
    label = np.bitwise_xor.reduce(bits, axis=1)
    codes = 2.0 * bits - 1 + noise * rng.standard_normal(bits.shape)  # shared by every copy of a bit
    tokens, positions, projections = {}, {}, {}
    for m in MODALITIES:
        tokens[m], positions[m], projections[m] = _modality_tokens(
            rule, m, codes, (n_tokens, features), float(noise), rng
        )
    planted = {
        m: {
            p: tuple(rule.bits[i] for i in carried)
            for p, carried in zip(positions[m], rule.tokens[m], strict=True)
        }
        for m in MODALITIES
    }
    pairs = {
        kind: [(positions["a"][i], positions["b"][j]) for i, j in chosen]
        for kind, chosen in (("synergy", rule.synergy_pairs), ("redundancy", rule.redundancy_pairs))
    }
    return InteractionTypesData(
        setting=setting,
        a=torch.from_numpy(tokens["a"].astype(np.float32)),
        b=torch.from_numpy(tokens["b"].astype(np.float32)),
        label=torch.from_numpy(label.astype(np.int64)),
        bits=torch.from_numpy(bits.astype(np.int64)),
        bit_names=rule.bits,
        planted=planted,
        planted_pairs=pairs,
        interaction=rule.interaction,
        unique_modality=rule.unique_modality,
        projections={m: torch.from_numpy(projections[m]) for m in MODALITIES},
        noise=float(noise),
        split_sizes=dict(zip(SPLITS, sizes, strict=True)),
    )
