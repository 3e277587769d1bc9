import dataclasses
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from multiviz import (
    Attribution,
    Disentanglement,
    InteractionMap,
    Modality,
    Result,
    TorchAdapter,
    dime,
    emap,
    gradient_x_input,
    masking_rounds,
    modality_summary,
    result_from_bytes,
    result_from_dict,
    second_order_gradient,
)
from multiviz.prediction import SparsePath
from multiviz.results import COMMON_FIELDS, RESULT_TYPES


def test_attribution_json_round_trip_keeps_nan_padding(tiny_adapter, tiny_batch):
    attribution = gradient_x_input(tiny_adapter, tiny_batch, "label")["question"]
    text = attribution.to_json()
    assert "NaN" not in text  # strict JSON
    back = Attribution.from_json(text)
    assert back.atom_labels == attribution.atom_labels
    np.testing.assert_array_equal(back.weights, attribution.weights)
    assert back.n_atoms == [7, 2, 6]
    assert math.isnan(back.weights[1, 5])
    assert back.target == "label" and back.target_index == [0, 1, 3]
    assert result_from_dict(json.loads(text)) == back


def test_interaction_map_and_disentanglement_round_trip():
    values = np.arange(12, dtype=float).reshape(1, 3, 4)
    values[0, 2, 3] = np.nan
    interaction = InteractionMap(
        "image",
        "question",
        "second_order_gradient",
        [["a", "b", "c"]],
        [["w", "x", "y", "z"]],
        values,
        0,
        [0],
        {"atoms": "patches"},
    )
    back = result_from_dict(json.loads(interaction.to_json()))
    assert isinstance(back, InteractionMap)
    np.testing.assert_array_equal(back.values, values)
    uc = Attribution("x1", "vector", "dime", [["a", "b"]], np.array([[1.0, 2.0]]), 1, [1])
    mi = Attribution("x1", "vector", "dime", [["a", "b"]], np.array([[0.5, -2.0]]), 1, [1])
    split = Disentanglement("dime", {"x1": uc}, {"x1": mi}, {"n": 100}, [False])
    assert Disentanglement.from_json(split.to_json()) == split


def test_top_atoms_and_mismatched_shapes():
    attribution = Attribution("x", "vector", "m", [["a", "b", "c"]], np.array([[0.1, -3.0, 2.0]]), 0, [0])
    assert attribution.top(0, 2) == [("b", -3.0), ("c", 2.0)]
    with pytest.raises(ValueError, match="weights must be"):
        Attribution("x", "vector", "m", [["a"], ["b"]], np.zeros((1, 1)), 0, [0])


def test_every_result_type_rebuilds_through_result_from_dict():
    from multiviz.results import RESULT_TYPES

    result_from_dict(
        {"type": "attribution", **Attribution("x", "vector", "m", [["a"]], [[1.0]], 0, [0]).to_dict()}
    )
    expected = {
        "attribution",
        "interaction_map",
        "disentanglement",
        "modality_summary",
        "sparse_path",
        "feature_extremes",
        "error_analysis",
    }
    assert expected <= set(RESULT_TYPES)
    with pytest.raises(ValueError, match="unknown result type 'nope'"):
        result_from_dict({"type": "nope"})


# -- every result type: one realistic sample each, and the round trips it must survive ----------------


def _tiny() -> tuple[object, dict[str, torch.Tensor]]:
    """The shared tiny fusion model (image, ragged question, vector) and three samples."""
    from tests.conftest import TinyFusion, tiny_modalities

    generator = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.rand(3, 3, 8, 8, generator=generator),
        "question": torch.tensor(
            [[2, 5, 6, 7, 8, 9, 10, 11, 3], [2, 12, 13, 3, 0, 0, 0, 0, 0], [2, 14, 7, 15, 12, 13, 11, 3, 0]]
        ),
        "vector": torch.randn(3, 5, generator=generator),
        "label": torch.tensor([0, 1, 3]),
    }
    return TorchAdapter(TinyFusion(), tiny_modalities(), embeddings={"question": "embedding"}), batch


class LinearEncoder(nn.Module):
    """Two vector modalities, a linear hidden layer ``encoder`` and a head (stage R samples)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(5, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.encoder(torch.cat([a, b], dim=1))))


def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, predictions and labels where the model errs exactly when |z_2| > 1.2."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    labels = rng.integers(0, 3, n)
    return z, np.where(np.abs(z[:, 2]) > 1.2, (labels + 1) % 3, labels), labels


def _samples(tmp: Path) -> dict[str, Result]:
    """One instance of every result type, each from a tiny real computation."""
    from multiviz.methods import shapley_interaction
    from multiviz.prediction import fit_sparse_path
    from multiviz.representations import error_analysis, extract_features, global_analysis

    adapter, batch = _tiny()
    attributions = gradient_x_input(adapter, batch, "label")
    vectors = TorchAdapter(LinearEncoder(), [Modality("a", "vector"), Modality("b", "vector")], head="head")
    generator = torch.Generator().manual_seed(2)
    data = {"a": torch.randn(40, 3, generator=generator), "b": torch.randn(40, 2, generator=generator)}
    points = {key: value[:3] for key, value in data.items()}
    store = extract_features(vectors, data, tmp / "features", layer="encoder", batch_size=16)
    x, y = np.random.default_rng(3).standard_normal((90, 4)), np.arange(90) % 3
    x[:, 1] += 0.8 * y  # feature 1 carries the class
    x = np.concatenate([x, np.ones((90, 1))], axis=1)  # a constant column: dropped, with a warning
    with pytest.warns(UserWarning, match="dropped"):
        path = fit_sparse_path(x, y, labels=y, n_lambdas=6, eps=0.05, dtype=torch.float64)
    z, predictions, labels = _planted(200, seed=0)
    pool, _, _ = _planted(150, seed=1)
    pool_logits = np.random.default_rng(4).standard_normal((150, 3))
    samples: list[Result] = [
        attributions,
        attributions["question"],  # NaN padding of the shorter questions
        modality_summary(adapter, batch, "label"),
        second_order_gradient(adapter, batch, "label", modality_a="question", modality_b="image"),
        masking_rounds(adapter, batch, "label", modality_a="question", modality_b="image"),
        emap(vectors, data),
        dime(vectors, points, "predicted", sample_set=data, n_reference=10, n_samples=30),
        shapley_interaction(vectors, points, "predicted", budget=64),
        path,
        path.steps[path.selected],
        global_analysis(vectors, data, store, 1, top_k=3),
        error_analysis(z, predictions, labels, pool, pool_logits, top_k=2, budget=20),
    ]
    samples += _evaluation_samples(adapter, batch, attributions)
    samples += _constructed()
    return {sample.result_type: sample for sample in samples}


def _evaluation_samples(
    adapter: TorchAdapter, batch: dict[str, torch.Tensor], attributions: Result
) -> list[Result]:
    """Stage E: the metrics' results on the tiny model's explanation."""
    from multiviz.evaluation.faithfulness import evaluate_faithfulness

    faithfulness = evaluate_faithfulness(
        adapter, batch, attributions, "label", n_steps=4, n_random=1, n_runs=4
    )
    from multiviz.results import EvaluationReport

    report = EvaluationReport(
        model={"checkpoint": "runs/tiny"},
        data={"name": "tiny", "split": "test"},
        split="test",
        rows=[0, 1, 2],
        target="label",
        target_index=list(faithfulness.deletion.target_index),
        explanation_methods=["gradient_x_input"],
        results={"faithfulness/0": faithfulness},
        leaderboard=[{**row, "metric_group": "faithfulness"} for row in faithfulness.leaderboard_rows()],
        skipped={"sanity": "not asked for"},
        seconds={"faithfulness": 0.5},
        model_sha256="0" * 64,
        points=[
            {
                "row": 0,
                "text": "what colour",
                "label_name": None,
                "predicted_name": "red",
                "explained_name": "red",
            }
        ],
    )
    parts = [faithfulness.deletion, faithfulness.top_k, faithfulness.eraser, faithfulness.correlation]
    return [faithfulness, *parts, report, *_pair_samples(), *_alignment_samples(adapter, batch, attributions)]


def _alignment_samples(
    adapter: TorchAdapter, batch: dict[str, torch.Tensor], attributions: Result
) -> list[Result]:
    """Stage E against ground-truth masks: alignment accuracy and localisation (one empty mask: NaN)."""
    from multiviz.evaluation.alignment import alignment_accuracy, localisation

    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[:2, :4, 4:] = True  # the last point's mask is empty: NaN pointing game and mass accuracy
    given = {"gradient_x_input": attributions}
    accuracy = alignment_accuracy(
        adapter, batch, masks, [[0, 1], [0], [2]], "label", methods=["gradient_x_input"], explanations=given
    )
    return [accuracy, localisation(adapter, batch, masks, attributions)]  # type: ignore[arg-type]


def _pair_samples() -> list[Result]:
    from multiviz.evaluation.pair_masking import pair_masking
    from multiviz.evaluation.planted_pairs import (
        REDUNDANCY,
        SYNERGY,
        planted_pair_adapter,
        planted_pair_batch,
        planted_pair_recovery,
    )

    vectors = TorchAdapter(LinearEncoder(), [Modality("a", "vector"), Modality("b", "vector")], head="head")
    generator = torch.Generator().manual_seed(5)
    points = {"a": torch.randn(3, 3, generator=generator), "b": torch.randn(3, 2, generator=generator)}
    masked = pair_masking(
        vectors, points, "predicted", modality_a="a", modality_b="b",
        rankers=["cross_modal_perturbation"], budgets=[1, 2], n_random=2, n_bootstrap=20,
    )  # fmt: skip
    planted = planted_pair_recovery(
        planted_pair_adapter(), planted_pair_batch(2), SYNERGY, REDUNDANCY,
        modality_a="x_a", modality_b="x_b", rankers=["cross_modal_perturbation"], n_bootstrap=20,
    )  # fmt: skip
    return [masked, planted, _sanity_sample(), _contribution_sample()]


def _contribution_sample() -> Result:
    from multiviz.results import ModalityContribution

    return ModalityContribution(
        modalities=["image", "question"], shares=np.array([[0.75, 0.25], [np.nan, np.nan]]),
        shapley_values={"image": np.array([[1.5, -1.5], [0.0, 0.0]]),
                        "question": np.array([[1.0, np.nan], [0.0, np.nan]])},
        score=np.array([2.0, 1.0]), masked_score=np.array([1.0, 1.0]), exact=np.array([True, False]),
        target="predicted", target_index=[0, 1], perceptual=np.array([[0.5, 0.25], [0.0, -0.125]]),
        accuracy=0.75, emap_interactive_share=0.125, emap_interactive_share_mean=0.0625,
        extras={"permutations": [[1, 0], [1, 0]]},
    )  # fmt: skip


def _sanity_sample() -> Result:
    from multiviz.results import SanityCheck

    return SanityCheck(
        mode="cascading", methods=["occlusion"], scopes={"occlusion": ["image"]},
        steps=[["head"], ["head", "body"]],
        rank_correlation={"occlusion": np.array([[[0.5], [np.nan]], [[0.1], [0.2]]])},
        rank_correlation_abs={"occlusion": np.zeros((2, 2, 1))}, ssim={"occlusion": np.ones((2, 2, 1))},
        verdict_on="rank_correlation_abs", threshold=0.5, statistic={"occlusion": float("nan")},
        passed={"occlusion": None}, chance_level={"occlusion": 0.3}, skipped={"emap": "global"},
        target="predicted", target_index=[0, 2],
    )  # fmt: skip


def _constructed() -> list[Result]:
    """Types whose producer is not cheap to run here, built directly (with the non-finite values they
    can hold)."""
    from multiviz.results.relevance import Relevance

    norms = np.array([0.75, 1.5, 0.1])
    uniform = Relevance(
        modalities=["image", "question"],
        subsets=[["image"], ["question"], ["image", "question"]],
        beta=np.ones(3),  # p = inf: every block weighs 1
        relevance=np.full(3, 1 / 3),
        block_norms=norms,
        p=math.inf,
        normalisation="vbn",
    )
    return [uniform]


@pytest.fixture(scope="module")
def all_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _samples(tmp_path_factory.mktemp("results"))
    finally:
        torch.set_num_threads(threads)


TYPES = sorted(RESULT_TYPES)


@pytest.fixture
def samples(all_samples: dict[str, Result], request: pytest.FixtureRequest) -> dict[str, Result]:
    kind = getattr(request.node, "callspec", None) and request.node.callspec.params.get("kind")
    if kind is not None and kind not in all_samples:
        pytest.fail(f"no sample of the result type {kind!r}: build one in _samples() of {__file__}")
    return all_samples


def test_every_result_type_has_a_sample(all_samples: dict[str, Result]) -> None:
    # A new result type fails here until _samples() builds one: the round trips below then cover it.
    assert set(all_samples) == set(RESULT_TYPES)
    assert all(type(sample) is RESULT_TYPES[kind] for kind, sample in all_samples.items())


def _no_constants(token: str) -> None:
    raise AssertionError(f"non-strict JSON token {token}")


def _same(got: object, want: object, where: str, *, nan_bits: bool) -> None:
    """``got`` is ``want`` value for value; arrays have the same dtype, shape and bytes (NaN payloads too
    when ``nan_bits``, else any NaN at the same places); a tuple may come back as a list."""
    if isinstance(want, Result):
        assert type(got) is type(want), where
        for item in dataclasses.fields(want):  # type: ignore[arg-type]
            if item.init:
                _same(
                    getattr(got, item.name),
                    getattr(want, item.name),
                    f"{where}.{item.name}",
                    nan_bits=nan_bits,
                )
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), where
        assert (got.dtype, got.shape) == (want.dtype, want.shape), where
        if nan_bits or not np.issubdtype(want.dtype, np.floating):
            assert got.tobytes() == want.tobytes(), where
        else:
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=where)
            finite = ~np.isnan(want)
            assert got[finite].tobytes() == want[finite].tobytes(), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for key in want:
            _same(got[key], want[key], f"{where}[{key!r}]", nan_bits=nan_bits)
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want), where
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            _same(a, b, f"{where}[{index}]", nan_bits=nan_bits)
    elif isinstance(want, float):
        assert isinstance(got, float), where
        assert (math.isnan(got) and math.isnan(want)) or struct.pack("<d", got) == struct.pack("<d", want), (
            where
        )
    else:
        assert type(got) is type(want) and got == want, where


def _arrays(value: object) -> list[np.ndarray]:
    """Every array inside a result, in field order."""
    if isinstance(value, Result):
        return [
            a for item in dataclasses.fields(value) if item.init for a in _arrays(getattr(value, item.name))
        ]  # type: ignore[arg-type]
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for item in value.values() for a in _arrays(item)]
    if isinstance(value, list | tuple):
        return [a for item in value for a in _arrays(item)]
    return []


@pytest.mark.parametrize("kind", TYPES)
def test_json_round_trip_is_strict_and_exact(samples: dict[str, Result], kind: str) -> None:
    result = samples[kind]
    text = result.to_json()
    data = json.loads(text, parse_constant=_no_constants)  # no NaN / Infinity tokens
    assert data["type"] == kind
    back = result_from_dict(data)
    assert back == result
    _same(back, result, kind, nan_bits=False)
    assert type(result).from_json(text) == result


@pytest.mark.parametrize("kind", TYPES)
def test_binary_round_trip_is_bit_for_bit(samples: dict[str, Result], kind: str) -> None:
    result = samples[kind]
    back = result_from_bytes(result.to_bytes())
    assert back == result
    _same(back, result, kind, nan_bits=True)


def _header(payload: bytes) -> dict[str, object]:
    size = int.from_bytes(payload[5:13], "little")
    return json.loads(payload[13 : 13 + size])


def _blob_dtypes(header: object) -> list[str]:
    if isinstance(header, dict):
        if "__blob__" in header:
            return [str(header["dtype"])]
        return [d for value in header.values() for d in _blob_dtypes(value)]
    if isinstance(header, list):
        return [d for value in header for d in _blob_dtypes(value)]
    return []


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize(
    ("precision", "code", "numpy_type"), [("float32", "f4", np.float32), ("float16", "f2", np.float16)]
)
def test_reduced_precision_is_recorded_and_rounds_each_value_once(
    samples: dict[str, Result], kind: str, precision: str, code: str, numpy_type: type
) -> None:
    result = samples[kind]
    payload = result.to_bytes(precision=precision)
    wanted = _arrays(result)
    # The header records every floating array at the reduced precision; integer arrays keep theirs.
    assert _blob_dtypes(_header(payload)) == [
        code if np.issubdtype(a.dtype, np.floating) else a.dtype.str.lstrip("<>|=") for a in wanted
    ]
    back = result_from_bytes(payload)
    got = _arrays(back)
    assert len(got) == len(wanted)
    for have, want in zip(got, wanted, strict=True):
        if not np.issubdtype(want.dtype, np.floating):
            assert have.tobytes() == want.tobytes()
            continue
        # Lossy by exactly one rounding to the stored type (NaN stays NaN, infinities stay infinite).
        rounded = want.astype(numpy_type).astype(np.float64)
        np.testing.assert_array_equal(have.astype(np.float64), rounded)
        finite = np.isfinite(want) & (np.abs(want) < np.finfo(numpy_type).max)
        epsilon = float(np.finfo(numpy_type).eps) / 2  # unit round-off: 2^-24 (float32), 2^-11 (float16)
        tiny = float(np.finfo(numpy_type).smallest_subnormal)
        error = np.abs(have.astype(np.float64)[finite] - want[finite])
        assert (error <= epsilon * np.abs(want[finite]) + tiny).all()
    assert _header(result.to_bytes())  # the default keeps every dtype (bit for bit, tested above)
    assert _blob_dtypes(_header(result.to_bytes())) == [a.dtype.str.lstrip("<>|=") for a in wanted]


def test_float16_is_lossy_where_float64_is_not(samples: dict[str, Result]) -> None:
    path = samples["sparse_path"]
    assert isinstance(path, SparsePath)
    half = result_from_bytes(path.to_bytes(precision="float16"))
    assert isinstance(half, SparsePath)
    assert not np.array_equal(half.feature_mean, path.feature_mean)  # 1/3-like means are not float16 numbers
    np.testing.assert_allclose(half.feature_mean, path.feature_mean, rtol=2.0**-11)
    with pytest.raises(ValueError, match="precision"):
        path.to_bytes(precision="bfloat16")


@pytest.mark.parametrize("kind", TYPES)
def test_every_result_carries_the_common_fields(samples: dict[str, Result], kind: str) -> None:
    result = samples[kind]
    names = {item.name for item in dataclasses.fields(result) if item.init}  # type: ignore[arg-type]
    assert set(COMMON_FIELDS) <= names
    assert isinstance(result.method, str) and result.method  # type: ignore[attr-defined]
    assert isinstance(result.units, str) and result.units  # type: ignore[attr-defined]
    assert isinstance(result.parameters, dict) and isinstance(result.extras, dict)  # type: ignore[attr-defined]
    if "target" in names and kind != "sparse_path":  # a sparse path's target is what it fits, per data set
        assert "target_index" in names


def test_non_finite_values_survive_both_forms_in_strict_json(all_samples: dict[str, Result]) -> None:
    attribution = all_samples["attribution"]
    assert isinstance(attribution, Attribution)
    weights = attribution.weights.copy()
    weights[0, :3] = [np.inf, -np.inf, -0.0]
    odd = dataclasses.replace(attribution, weights=weights, extras={"delta": [math.nan, -math.inf, 1e-310]})
    text = odd.to_json()
    json.loads(text, parse_constant=_no_constants)
    for back in (result_from_dict(json.loads(text)), result_from_bytes(odd.to_bytes())):
        assert isinstance(back, Attribution)
        _same(back, odd, "attribution", nan_bits=False)
        assert math.copysign(1.0, back.weights[0, 2]) == -1.0  # the sign of zero is kept
