"""Alignment accuracy, pointing game and relevance mass accuracy against closed forms.

The region model: class 0's logit is ``s(question) * mean(pixels in R)`` with ``s`` the sum over the
question's tokens of ``e_t . u`` (float64), class 1's is 0. Every derivative with respect to a pixel is
zero outside ``R``, so gradient x input and the second-order gradient map (word x image atom) put all
their weight on the atoms covering ``R``: the pointing game, relevance mass and top-1 alignment are 1.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import multiviz as mv
from multiviz.errors import InputError
from multiviz.evaluation.alignment import alignment_accuracy, localisation
from multiviz.evaluation.localisation import pixel_map, relevance_mass
from multiviz.results import Attribution, Attributions

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "is", "the", "red", "circle", "?"]
REGION = (slice(0, 4), slice(4, 8))  # rows 0-3, columns 4-7 of the 8 x 8 image: patch atom 1


class RegionModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embedding = nn.Embedding(len(VOCAB), 2, dtype=torch.float64)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.rand(len(VOCAB), 2, generator=generator, dtype=torch.float64))
        self.u = nn.Parameter(torch.tensor([1.0, 0.5], dtype=torch.float64))
        self.head = nn.Linear(2, 2, dtype=torch.float64)  # the identity: the logits stay closed forms
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(2, dtype=torch.float64))
            self.head.bias.zero_()

    def forward(self, image: Tensor, question: Tensor) -> Tensor:
        keep = (question > 3).to(torch.float64).unsqueeze(-1)
        s = ((self.embedding(question) * keep) @ self.u).sum(1)
        region = image[:, 0, REGION[0], REGION[1]].mean(dim=(1, 2))
        return self.head(torch.stack([s * region, torch.zeros_like(s)], dim=1))


def region_adapter() -> mv.TorchAdapter:
    modalities = [
        mv.Modality("image", "image", atoms=mv.ImagePatches(4), channels=1, baseline="zero"),
        mv.Modality(
            "question", "text", atoms=mv.TextTokens([2, 3], pad_token_id=0, mask_token_id=4, vocabulary=VOCAB)
        ),
    ]
    return mv.TorchAdapter(RegionModel(), modalities, embeddings={"question": "embedding"}, head="head")


@pytest.fixture
def setting() -> tuple[mv.TorchAdapter, dict[str, Tensor], np.ndarray]:
    generator = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.rand(3, 1, 8, 8, generator=generator, dtype=torch.float64) + 0.1,
        "question": torch.tensor(
            [[2, 5, 6, 7, 8, 9, 10, 3], [2, 5, 6, 7, 9, 10, 3, 0], [2, 8, 9, 3, 0, 0, 0, 0]]
        ),
    }
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[:, REGION[0], REGION[1]] = True
    return region_adapter(), batch, masks


REFERRING = [[3, 4], [3], [0, 1]]  # "red circle", "circle", "red circle" (word atoms, specials excluded)


def test_exact_maps_inside_the_mask_score_one(setting) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, masks = setting
    methods = ("second_order_gradient", "dime", "gradient_x_input", "occlusion")
    # DIME: masking an atom outside R changes nothing, so only atom 1 gets a non-zero MI weight
    result = alignment_accuracy(
        adapter, batch, masks, REFERRING, methods=methods, method_params={"dime": {"n_samples": 64}}
    )
    assert result.target_index == [0, 0, 0]  # s > 0 and the region's mean > 0
    np.testing.assert_array_equal(result.hits, 1.0)
    np.testing.assert_array_equal(result.top_atoms[:, :, 0], 1)  # the patch (0, 1) is R
    explanation = mv.gradient_x_input(adapter, batch, "predicted")
    for weight in ("spread", "full"):
        local = localisation(adapter, batch, masks, explanation, pixel_weight=weight)
        np.testing.assert_array_equal(local.pointing_game, 1.0)
        np.testing.assert_allclose(local.relevance_mass, 1.0)
        np.testing.assert_allclose(local.mask_fraction, 16 / 64)


def test_relevance_all_outside_scores_zero(setting) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, masks = setting
    weights = np.array([[5.0, 0.0, 1.0, 2.0]] * 3)  # atom 1 (= R) gets nothing; ranked by magnitude too
    outside = Attributions(
        method="outside",
        by_modality={
            "image": Attribution(
                "image",
                "image",
                "outside",
                [["patch (0, 0)", "patch (0, 1)", "patch (1, 0)", "patch (1, 1)"]] * 3,
                weights,
                "predicted",
                [0, 0, 0],
            )
        },
        target="predicted",
        target_index=[0, 0, 0],
    )
    labels = adapter.atoms(adapter.validate(batch), "image").labels
    assert outside["image"].atom_labels == labels
    result = alignment_accuracy(
        adapter, batch, masks, REFERRING, methods=("outside",), explanations={"outside": outside}
    )
    np.testing.assert_array_equal(result.hits, 0.0)
    local = localisation(adapter, batch, masks, outside)
    np.testing.assert_array_equal(local.pointing_game, 0.0)
    np.testing.assert_array_equal(local.relevance_mass, 0.0)


def test_random_baseline_is_the_exact_overlap_fraction(setting) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, _ = setting
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[0, 3, 3] = True  # one pixel in atom 0
    masks[1, 2:6, 2:6] = True  # a centred 4 x 4 block: 4 pixels in each of the 4 atoms
    masks[2, 0:4, 0:8] = True  # the top half: atoms 0 and 1 whole
    result = alignment_accuracy(adapter, batch, masks, REFERRING, methods=("gradient_x_input",))
    # hitting atoms (>= 1 pixel): 1, 4, 2 of 4; random k atoms: 1 - C(4 - h, k) / C(4, k)
    expected = np.array([[1 - comb(4 - h, k) / comb(4, k) for k in (1, 2)] for h in (1, 4, 2)])
    np.testing.assert_allclose(result.random_hit, expected)
    np.testing.assert_allclose(result.random_hit[:, 0], [1 / 4, 1.0, 2 / 4])
    strict = alignment_accuracy(
        adapter, batch, masks, REFERRING, methods=("gradient_x_input",), min_overlap=0.5
    )
    np.testing.assert_array_equal(strict.n_hit_atoms, [0, 0, 2])  # 1/16 and 4/16 of an atom are < half


def test_relevance_mass_hand_computed_on_4x4() -> None:
    assignment = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, -1]])
    weights = np.array([4.0, -2.0, 3.0, 6.0])  # atom 3 has 3 pixels
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = mask[2, 2] = mask[3, 3] = True  # one pixel of atom 0, one of atom 3, one of no atom
    spread = pixel_map(assignment, weights, "spread")
    assert spread[0, 0] == 1.0 and spread[2, 2] == 2.0 and spread[3, 3] == 0.0
    # positive mass: atom 0 -> 4, atom 2 -> 3, atom 3 -> 6 (atom 1 is negative); inside: 1 + 2 = 3
    assert relevance_mass(spread, mask) == pytest.approx(3 / 13)
    full = pixel_map(assignment, weights, "full")
    # full weights: positive mass 4 * 4 + 3 * 4 + 6 * 3 = 46; inside 4 + 6 = 10
    assert relevance_mass(full, mask) == pytest.approx(10 / 46)


def test_leaderboard_rows(setting) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, masks = setting
    result = alignment_accuracy(adapter, batch, masks, REFERRING, methods=("gradient_x_input",))
    rows = {(r["method"], r["metric"]): r for r in result.leaderboard_rows()}
    assert rows[("gradient_x_input", "alignment_top1")]["value"] == 1.0
    assert rows[("random", "alignment_top1")]["value"] == pytest.approx(0.25)
    assert rows[("gradient_x_input", "alignment_top1_gap_to_random")]["value"] == pytest.approx(0.75)
    # Wilson interval of 3 hits in 3: (1 + z^2/6 -+ z sqrt(z^2/36)) / (1 + z^2/3)
    z = 1.959963984540054
    assert rows[("gradient_x_input", "alignment_top1")]["ci_low"] == pytest.approx(1 / (1 + z * z / 3))
    assert mv.result_from_dict(result.to_dict()) == result


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"masks": np.zeros((3, 8, 7), dtype=bool)}, "masks"),
        ({"referring": [[3, 4], [9], [0]]}, "referring"),
        ({"referring": [[3, 4], [], [0]]}, "referring"),
        ({"referring": [[0]]}, "referring"),
        ({"text_modality": "image"}, "text_modality"),
        ({"image_modality": "audio"}, "image_modality"),
        ({"top_k": (0,)}, "top_k"),
        ({"min_overlap": 1.5}, "min_overlap"),
    ],
)
def test_bad_input(setting, change, argument) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, masks = setting
    arguments = {"masks": masks, "referring": REFERRING, "methods": ("gradient_x_input",), **change}
    with pytest.raises(InputError) as error:
        alignment_accuracy(adapter, batch, **arguments)
    assert error.value.argument == argument


def test_explanation_of_other_points_or_class_is_refused(setting) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, masks = setting
    other_class = mv.gradient_x_input(adapter, batch, 1)
    with pytest.raises(InputError, match="same target"):
        alignment_accuracy(adapter, batch, masks, REFERRING, methods=("g",), explanations={"g": other_class})
    with pytest.raises(InputError, match="points"):
        localisation(adapter, {k: v[:2] for k, v in batch.items()}, masks[:2], other_class)
    with pytest.raises(InputError, match="same target"):
        localisation(adapter, batch, masks, other_class, target="predicted")
    pairs = mv.second_order_gradient(adapter, batch, 1, modality_a="question", modality_b="image")
    with pytest.raises(InputError, match="same target"):
        alignment_accuracy(
            adapter,
            batch,
            masks,
            REFERRING,
            methods=("second_order_gradient",),
            explanations={"second_order_gradient": pairs},
        )


def test_model_without_an_image_modality_is_refused(additive_adapter) -> None:  # type: ignore[no-untyped-def]
    batch = {"x1": torch.zeros(1, 4, dtype=torch.float64), "x2": torch.zeros(1, 3, dtype=torch.float64)}
    with pytest.raises(InputError) as error:
        localisation(additive_adapter, batch, np.zeros((1, 8, 8), dtype=bool), {})
    assert error.value.argument == "image_modality"


class _AtomsOnly(nn.Module):
    """A stand-in model: the builders only need the adapter's atoms."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2)

    def forward(self, image: Tensor, question: Tensor) -> Tensor:
        return self.head(image.mean(dim=(1, 2, 3))[:, None] + 0 * question[:, :1])


def test_shapes_scenes_points_carry_the_generator_truth(minilm_tokenizer) -> None:  # type: ignore[no-untyped-def]
    from multiviz.data.easy_vqa import easy_vqa_modalities
    from multiviz.data.shapes_scenes import generate_shapes_scenes
    from multiviz.evaluation.alignment_data import shapes_scenes_alignment_points

    scenes = generate_shapes_scenes(6, seed=3)
    adapter = mv.TorchAdapter(_AtomsOnly(), easy_vqa_modalities(minilm_tokenizer), head="head")
    points = shapes_scenes_alignment_points(adapter, scenes, minilm_tokenizer)
    assert points.rows == [q for q in range(len(scenes)) if scenes.target_object[q] >= 0]
    for b, q in enumerate(points.rows):
        assert tuple(points.words[b]) == scenes.target_words[q]  # the naming words, in question order
        np.testing.assert_array_equal(points.masks[b], scenes.target_masks[q])
        image = (points.batch["image"][b].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(image, scenes.images[scenes.image_index[q]])
    with pytest.raises(InputError) as error:  # an "is there ...?" -> "no" question refers to nothing
        shapes_scenes_alignment_points(
            adapter, scenes, minilm_tokenizer, rows=[int(np.argmin(scenes.target_object))]
        )
    assert error.value.argument == "rows"


@pytest.mark.slow
def test_easy_vqa_points_name_the_shape_that_is_there(minilm_tokenizer) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("easy_vqa")
    from multiviz.data.easy_vqa import easy_vqa_modalities, load_easy_vqa
    from multiviz.data.registry import load_dataset
    from multiviz.evaluation.alignment_data import easy_vqa_alignment_points

    data = load_dataset("easy-vqa", train_images=4, test_images=30)
    adapter = mv.TorchAdapter(_AtomsOnly(), easy_vqa_modalities(minilm_tokenizer), head="head")
    points = easy_vqa_alignment_points(adapter, data, n_points=12)
    names, test = list(data.class_names or []), load_easy_vqa("test")
    questions = [test.questions[i] for i in range(len(test.questions)) if test.image_index[i] < 30]
    assert len(points.rows) == 12
    for b, row in enumerate(points.rows):
        words = questions[row].lower().rstrip("?").split()
        answer = names[int(points.batch["label"][b])]
        assert points.words[b] == [w for w in words if w in set(names) - {"yes", "no"}]
        assert answer != "no" and not (answer == "yes" and {"not", "no"} & set(words))
        image = int(data.splits["test"]["image_index"][row])
        np.testing.assert_array_equal(points.masks[b], test.shape_masks[image].numpy())
