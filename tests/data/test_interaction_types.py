"""Synthetic tasks with planted interaction types: labels follow the XOR rule, only the planted tokens
carry bits (and exactly the documented ones), what each modality alone says about the label, the Bayes
accuracy in closed form, seeding, the registry entry and bad inputs."""

import math

import numpy as np
import pytest
import torch

from multiviz import InputError
from multiviz.adapters import TorchAdapter
from multiviz.data.interaction_types import (
    SETTINGS,
    bayes_accuracy,
    interaction_type_modalities,
    make_interaction_types,
)
from multiviz.data.registry import load_dataset
from multiviz.methods.shapley_interaction import shapley_interaction

# which bits each modality carries, by name, straight from the module docstring's table
CARRIED = {
    "redundancy": {"a": [("b1", "b2")], "b": [("b1", "b2")]},
    "uniqueness0": {"a": [("b1", "b2")], "b": []},
    "uniqueness1": {"a": [], "b": [("b1", "b2")]},
    "synergy": {"a": [("b1",)], "b": [("b2",)]},
    "tokens": {"a": [("s1",), ("r",)], "b": [("s2",), ("r",)]},
}


def decode(data, modality, position):
    """The latent codes ``z`` of a planted token: ``W[:, col] . x / |W[:, col]|^2`` for its columns."""
    columns, start = data.projections[modality].numpy(), 0
    for p, bits in data.planted[modality].items():
        if p == position:
            w = columns[:, start : start + len(bits)]
            x = getattr(data, modality)[:, position].double().numpy()
            return x @ w / np.sum(w**2, axis=0)
        start += len(bits)
    raise AssertionError(f"{position} is not planted in {modality}")


def read_bits(data, modality):
    """``{bit name: sign of its decoded code}`` from the planted tokens of one modality (0/1)."""
    out = {}
    for position, names in data.planted[modality].items():
        codes = decode(data, modality, position)
        out.update({name: (codes[:, k] > 0).astype(int) for k, name in enumerate(names)})
    return out


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_labels_xor_the_bits_and_only_the_planted_tokens_carry_them(setting):
    data = make_interaction_types(setting, n_points=4000, n_tokens=5, features=6, noise=0.1, seed=3)
    bits, label = data.bits.numpy(), data.label.numpy()
    assert (np.bitwise_xor.reduce(bits, axis=1) == label).all()
    assert abs(label.mean() - 0.5) < 0.03  # fair coins: balanced (4 sigma = 0.032)
    assert sorted(CARRIED[setting]["a"]) == sorted(data.planted["a"].values())
    assert sorted(CARRIED[setting]["b"]) == sorted(data.planted["b"].values())
    # the mean of a token given the bits: far apart for planted tokens, equal (within 5 sigma) otherwise
    groups = [np.all(bits == combo, axis=1) for combo in np.ndindex(*(2,) * bits.shape[1])]
    sigma = math.sqrt(1 + 0.1**2)
    for m in ("a", "b"):
        x = getattr(data, m).double().numpy()
        for position in range(5):
            spread = max(
                np.abs(x[g, position].mean(0) - x[h, position].mean(0)).max() for g in groups for h in groups
            )
            if position in data.planted[m]:
                assert spread > 1.0
            else:
                assert spread < 5 * sigma * math.sqrt(2 / (4000 / len(groups)))
                assert np.var(x[:, position]) == pytest.approx(sigma**2, rel=0.05)
    # planted pairs are the documented tokens
    for kind, pairs in data.planted_pairs.items():
        for i, j in pairs:
            shared = set(data.planted["a"][i]) & set(data.planted["b"][j])
            assert (kind == "redundancy") == bool(shared)
            assert (kind == "synergy") == (not shared)
    assert len(data.planted_pairs["synergy"]) == (setting in ("synergy", "tokens"))
    assert len(data.planted_pairs["redundancy"]) == (setting in ("redundancy", "tokens"))


@pytest.mark.parametrize("setting", ["redundancy", "uniqueness0", "uniqueness1"])
def test_a_modality_with_both_bits_gives_the_label_alone(setting):
    data = make_interaction_types(setting, n_points=3000, n_tokens=4, features=8, noise=0.1, seed=0)
    label = data.label.numpy()
    for m in ("a", "b"):
        read = read_bits(data, m)
        if m == SETTINGS[setting].unique_modality or setting == "redundancy":
            assert np.mean((read["b1"] ^ read["b2"]) == label) == 1.0  # P(error) = 2 Phi(-10) ~ 0
        else:
            assert read == {}  # noise only: nothing planted


def test_in_synergy_each_modality_alone_is_independent_of_the_label():
    data = make_interaction_types("synergy", n_points=8000, n_tokens=3, features=4, noise=0.1, seed=1)
    label, bits = data.label.numpy(), data.bits.numpy()
    from_a, from_b = read_bits(data, "a")["b1"], read_bits(data, "b")["b2"]
    assert (from_a == bits[:, 0]).all() and (from_b == bits[:, 1]).all()
    for carried in (from_a, from_b):  # P(y = 1 | the bit) = 1/2 for both values of the bit
        for value in (0, 1):
            rows = carried == value
            assert abs(label[rows].mean() - 0.5) < 4 * 0.5 / math.sqrt(rows.sum())
    assert ((from_a ^ from_b) == label).all()  # together they give y


class IdealModel(torch.nn.Module):
    """Reads every bit from its planted tokens with the known projections (a masked copy reads 0, "unknown";
    the copies of a bit are the same information, so the larger reading is kept) and puts logit
    ``+-L`` on the XOR when every bit is known, 0 otherwise."""

    def __init__(self, data, scale: float = 2.0) -> None:
        super().__init__()
        self.readers: dict[str, list] = {name: [] for name in data.bit_names}
        self.head = torch.nn.Linear(1, 2, bias=False)  # logits (-L p, L p) of the product p of the signs
        self.head.weight.data = torch.tensor([[-scale], [scale]])
        for m in ("a", "b"):
            start = 0
            for position, names in data.planted[m].items():
                for k, name in enumerate(names):
                    w = data.projections[m][:, start + k].float()
                    self.readers[name].append((m, position, w / w.dot(w)))
                start += len(names)

    def forward(self, a, b):
        tokens, product = {"a": a, "b": b}, torch.ones(a.shape[0])
        for readers in self.readers.values():
            codes = torch.stack([tokens[m][:, p] @ w for m, p, w in readers], 1)
            product = product * torch.sign(codes.gather(1, codes.abs().argmax(1, keepdim=True))[:, 0])
        return self.head(product[:, None])


# exact pair values of the ideal model (logit L = 2): (kind of token of a, kind of token of b) -> SII, gap
IDEAL = {
    "synergy": {("b1", "b2"): (2.0, 0.0)},
    "redundancy": {("b1b2", "b1b2"): (-2.0, 2.0)},
    "tokens": {
        ("s1", "s2"): (4 / 3, 0.0),
        ("s1", "r"): (1 / 3, 0.0),
        ("r", "s2"): (1 / 3, 0.0),
        ("r", "r"): (-2 / 3, 2.0),
    },
    "uniqueness0": {},
    "uniqueness1": {},
}


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_the_interaction_probes_find_the_planted_pairs_of_the_ideal_model(setting):
    data = make_interaction_types(setting, n_points=30, n_tokens=3, features=4, noise=0.1, seed=5)
    adapter = TorchAdapter(IdealModel(data), interaction_type_modalities(3, 4))
    batch = {k: v[:4] for k, v in data.split("train").items()}
    result = shapley_interaction(adapter, batch, "predicted", budget=64)  # 2^6 coalitions: exact
    sii, gap = result.pair("a", "b"), result.redundancy_gap("a", "b")
    expected_sii, expected_gap = np.zeros((3, 3)), np.zeros((3, 3))
    for i, carried_a in data.planted["a"].items():
        for j, carried_b in data.planted["b"].items():
            key = ("".join(carried_a), "".join(carried_b))
            expected_sii[i, j], expected_gap[i, j] = IDEAL[setting].get(key, (0.0, 0.0))
    np.testing.assert_allclose(sii, np.broadcast_to(expected_sii, sii.shape), atol=1e-5)
    np.testing.assert_allclose(gap, np.broadcast_to(expected_gap, gap.shape), atol=1e-5)
    for kind, scores in (("synergy", result.synergy("a", "b")), ("redundancy", gap)):
        for point in scores:  # the top pair of every point is the planted one
            top = np.unravel_index(np.argmax(point), point.shape)
            assert (tuple(int(t) for t in top) in data.planted_pairs[kind]) == bool(data.planted_pairs[kind])


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_the_bayes_decoder_reaches_the_closed_form_accuracy(setting):
    noise = 1.0
    data = make_interaction_types(setting, n_points=20000, n_tokens=3, features=4, noise=noise, seed=2)
    evidence: dict[str, np.ndarray] = {}
    for m in ("a", "b"):
        for position, names in data.planted[m].items():
            codes = decode(data, m, position)
            for k, name in enumerate(names):  # equal-noise copies: add the codes
                evidence[name] = evidence.get(name, 0) + codes[:, k]
    guess = np.bitwise_xor.reduce(np.stack([evidence[n] > 0 for n in data.bit_names], 1), axis=1)
    accuracy = np.mean(guess == data.label.numpy())
    # independent reference: each bit is wrong with Phi(-1 / noise) (its copies share the noise)
    error = 0.5 * math.erfc(1 / noise / math.sqrt(2))
    expected = (1 + (1 - 2 * error) ** {"tokens": 3}.get(setting, 2)) / 2
    assert bayes_accuracy(setting, noise) == pytest.approx(expected)
    assert data.bayes_accuracy == pytest.approx(expected)
    assert accuracy == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / 20000))
    assert bayes_accuracy(setting, 0.0) == 1.0


def test_planted_and_noise_tokens_have_the_same_scale_and_projections_are_orthogonal():
    data = make_interaction_types("redundancy", n_points=6000, n_tokens=4, features=10, noise=0.5, seed=4)
    for m in ("a", "b"):
        x = getattr(data, m).double()
        norms = (x**2).sum(-1).mean(0)  # E |token|^2 = features (1 + noise^2) = 12.5 at every position
        assert torch.allclose(norms, torch.full((4,), 12.5, dtype=torch.float64), rtol=0.05)
        w = data.projections[m]
        assert torch.allclose(w.T @ w, torch.eye(2, dtype=torch.float64) * 5.0, atol=1e-10)  # (F / k) I
    assert not torch.allclose(data.projections["a"], data.projections["b"])  # each modality its own
    # the copies of a bit share their latent noise: both modalities decode to the same codes
    np.testing.assert_allclose(
        decode(data, "a", *data.planted["a"]), decode(data, "b", *data.planted["b"]), atol=1e-5
    )


def test_same_seed_same_data_and_splits_follow_the_fractions():
    one = make_interaction_types("tokens", n_points=200, n_tokens=6, features=4, seed=7)
    two = make_interaction_types("tokens", n_points=200, n_tokens=6, features=4, seed=7)
    other = make_interaction_types("tokens", n_points=200, n_tokens=6, features=4, seed=8)
    assert torch.equal(one.a, two.a) and torch.equal(one.b, two.b) and one.planted == two.planted
    assert not torch.equal(one.a, other.a)
    assert one.split_sizes == {"train": 160, "val": 20, "test": 20}
    test = one.split("test")
    assert set(test) == {"a", "b", "label"} and torch.equal(test["b"], one.b[180:])
    assert test["a"].dtype == torch.float32 and test["label"].dtype == torch.int64
    with pytest.raises(InputError, match="argument 'split'.*expected one of"):
        one.split("dev")
    sizes = make_interaction_types("synergy", n_points=10, fractions=[0.5, 0.25, 0.25]).split_sizes
    assert sizes == {"train": 5, "val": 2, "test": 3}  # round(2.5) = 2, test takes the rest


def test_the_registry_serves_token_sequences():
    data = load_dataset("interaction-types", setting="tokens", n_points=100, n_tokens=5, features=3, seed=1)
    assert [m.name for m in data.modalities] == ["a", "b"] and data.num_classes == 2
    assert data.class_names == ["0", "1"]
    assert [m.shape for m in data.modalities] == [(5, 3), (5, 3)]
    assert all(str(m.kind) == "timeseries" for m in data.modalities)
    raw = make_interaction_types("tokens", n_points=100, n_tokens=5, features=3, seed=1)
    assert torch.equal(data.splits["val"]["a"], raw.a[80:90])
    assert interaction_type_modalities()[0].shape == (8, 16)


@pytest.mark.parametrize(
    ("options", "argument", "words"),
    [
        ({"setting": "xor"}, "setting", "expected one of"),
        ({"n_tokens": 1}, "n_tokens", ">= 2"),
        ({"n_tokens": 2.5}, "n_tokens", "integer"),
        ({"features": 0}, "features", ">= 1"),
        ({"setting": "redundancy", "features": 1}, "features", ">= 2"),
        ({"setting": "tokens", "features": 1}, "features", ">= 2"),
        ({"noise": -0.1}, "noise", ">= 0"),
        ({"noise": float("nan")}, "noise", "finite"),
        ({"n_points": 2}, "n_points", ">= 3"),
        ({"fractions": (0.8, 0.2)}, "fractions", "three positive"),
        ({"fractions": (0.9, 0.2, -0.1)}, "fractions", "three positive"),
        ({"n_points": 10, "fractions": (0.98, 0.01, 0.01)}, "fractions", "leave a split empty"),
        ({"seed": "zero"}, "seed", "integer"),
    ],
)
def test_bad_inputs_are_refused(options, argument, words):
    with pytest.raises(InputError, match=f"argument '{argument}'.*{words}"):
        make_interaction_types(**{"n_points": 50, **options})
