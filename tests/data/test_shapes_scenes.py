"""Behaviour of the shapes-scenes generator: ground truth that MultiViz alignment checks rely on."""

from __future__ import annotations

import numpy as np
import pytest

from multiviz.data.shapes_scenes import (
    ANSWERS,
    BACKGROUND,
    COLOURS,
    SHAPES,
    ShapesScenes,
    _place_grid,
    generate_shapes_scenes,
    shape_mask,
    size_range,
)


@pytest.fixture(scope="module")
def data() -> ShapesScenes:
    return generate_shapes_scenes(120, seed=3)


@pytest.fixture(scope="module")
def big() -> ShapesScenes:
    return generate_shapes_scenes(500, seed=11)


def _fields(d: ShapesScenes) -> list[object]:
    return [
        d.images,
        d.objects,
        [m.tobytes() for m in d.object_masks],
        d.questions,
        d.answers,
        d.answer_index,
        d.image_index,
        d.question_type,
        d.target_boxes,
        d.target_masks,
        d.target_object,
        d.target_words,
    ]


def _equal(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def test_vocabularies() -> None:
    assert {"circle", "square", "triangle"} <= set(SHAPES)
    assert {"red", "green", "blue", "yellow"} <= set(COLOURS)
    assert (*COLOURS, *SHAPES, "yes", "no") == ANSWERS
    assert len(set(ANSWERS)) == len(ANSWERS)
    rgb = np.array([*COLOURS.values(), BACKGROUND], dtype=float)
    dist = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb)) * 1e9
    assert dist.min() > 100  # colours (and background) are far apart


def test_same_seed_identical_different_seed_differs() -> None:
    a = generate_shapes_scenes(40, seed=7)
    b = generate_shapes_scenes(40, seed=7)
    c = generate_shapes_scenes(40, seed=8)
    assert all(_equal(x, y) for x, y in zip(_fields(a), _fields(b), strict=True))
    assert a.seed == 7
    assert a.images.tobytes() != c.images.tobytes()
    assert a.questions != c.questions


def test_masks_match_pixels_and_boxes(data: ShapesScenes) -> None:
    H = W = 64
    lo, _ = size_range(64)
    assert data.images.dtype == np.uint8
    for img, objs, masks in zip(data.images, data.objects, data.object_masks, strict=True):
        assert masks.dtype == np.bool_
        assert masks.shape == (len(objs), H, W)
        assert (masks.sum(axis=0) <= 1).all()  # disjoint
        for obj, m in zip(objs, masks, strict=True):
            assert (img[m] == COLOURS[obj.colour]).all()
            x0, y0, x1, y1 = obj.box
            assert x1 - x0 >= lo
            assert y1 - y0 >= lo
            inside = np.zeros_like(m)
            inside[y0:y1, x0:x1] = True
            assert not (m & ~inside).any()
            ys, xs = np.nonzero(m)  # the box is tight
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == obj.box
        assert (img[~masks.any(axis=0)] == BACKGROUND).all()


def test_boxes_keep_a_gap_and_pairs_are_unique(data: ShapesScenes) -> None:
    for objs in data.objects:
        assert len({(o.shape, o.colour) for o in objs}) == len(objs)
        for i, a in enumerate(objs):
            for b in objs[i + 1 :]:
                grown = (a.box[0] - 1, a.box[1] - 1, a.box[2] + 1, a.box[3] + 1)
                overlap_x = grown[0] < b.box[2] and b.box[0] < grown[2]
                overlap_y = grown[1] < b.box[3] and b.box[1] < grown[3]
                assert not (overlap_x and overlap_y)


def test_object_counts_in_range() -> None:
    d = generate_shapes_scenes(200, min_objects=3, max_objects=6, seed=1)
    counts = {len(o) for o in d.objects}
    assert counts <= {3, 4, 5, 6}
    assert len(counts) > 1
    one = generate_shapes_scenes(20, min_objects=1, max_objects=1, image_size=32, seed=1)
    assert {len(o) for o in one.objects} == {1}


def test_crowded_small_scenes_terminate() -> None:
    d = generate_shapes_scenes(100, image_size=32, min_objects=6, max_objects=6, seed=5)
    assert all(len(o) == 6 for o in d.objects)
    assert (np.stack([m.sum(axis=0) for m in d.object_masks]) <= 1).all()


def test_grid_fallback_places_disjoint_boxes() -> None:
    rng = np.random.default_rng(0)
    for size in (32, 64, 100):
        boxes = _place_grid(rng, 6, size_range(size)[0], size)
        for i, a in enumerate(boxes):
            assert 0 <= a[0] < a[2] <= size
            assert 0 <= a[1] < a[3] <= size
            for b in boxes[i + 1 :]:
                assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [8, 9, 19])
def test_shape_masks_touch_their_box(shape: str, size: int) -> None:
    m = shape_mask(shape, size)
    assert m[0].any()
    assert m[-1].any()
    assert m[:, 0].any()
    assert m[:, -1].any()


def test_question_bookkeeping(data: ShapesScenes) -> None:
    n_q = 120 * 3
    assert len(data) == n_q
    assert data.image_index.tolist() == [i for i in range(120) for _ in range(3)]
    assert [ANSWERS[k] for k in data.answer_index] == data.answers
    assert set(data.question_type) == {"colour_of_shape", "exists", "shape_of_colour"}
    for q in data.questions:
        assert q == q.lower()
        assert q.endswith("?")
    assert data.question_words(0) == data.questions[0][:-1].split()
    for i in range(120):  # no question repeats within a scene here
        assert len(set(data.questions[3 * i : 3 * i + 3])) == 3


def test_target_boxes_and_masks(data: ShapesScenes) -> None:
    for q in range(len(data)):
        i, k = int(data.image_index[q]), int(data.target_object[q])
        mask, box = data.target_masks[q], tuple(data.target_boxes[q].tolist())
        if k < 0:
            assert box == (-1, -1, -1, -1)
            assert not mask.any()
        else:
            assert box == data.objects[i][k].box
            assert (mask == data.object_masks[i][k]).all()
            assert mask.any()
        words = data.question_words(q)
        assert all(w in words for w in data.target_words[q])


def test_colour_of_shape(data: ShapesScenes) -> None:
    seen = 0
    for q in range(len(data)):
        if data.question_type[q] != "colour_of_shape":
            continue
        seen += 1
        objs = data.objects[data.image_index[q]]
        shape = data.question_words(q)[-1]
        assert shape in SHAPES
        assert [o.shape for o in objs].count(shape) == 1
        pixels = data.images[data.image_index[q]][data.target_masks[q]]
        assert len(pixels) > 0
        assert (pixels == COLOURS[data.answers[q]]).all()
        assert data.target_words[q] == (shape,)
    assert seen > 20


def test_shape_of_colour(data: ShapesScenes) -> None:
    seen = 0
    for q in range(len(data)):
        if data.question_type[q] != "shape_of_colour":
            continue
        seen += 1
        objs = data.objects[data.image_index[q]]
        colour = data.question_words(q)[-2]
        assert colour in COLOURS
        matching = [o for o in objs if o.colour == colour]
        assert len(matching) == 1
        assert data.answers[q] == matching[0].shape
        assert (data.images[data.image_index[q]][data.target_masks[q]] == COLOURS[colour]).all()
        assert data.target_words[q] == (colour,)
    assert seen > 20


def test_exists(data: ShapesScenes) -> None:
    seen = 0
    for q in range(len(data)):
        if data.question_type[q] != "exists":
            continue
        seen += 1
        colour, shape = data.question_words(q)[-2:]
        present = any(o.shape == shape and o.colour == colour for o in data.objects[data.image_index[q]])
        assert data.answers[q] == ("yes" if present else "no")
        assert data.target_masks[q].any() == present
        if present:
            assert (data.images[data.image_index[q]][data.target_masks[q]] == COLOURS[colour]).all()
    assert seen > 20


def test_yes_no_balanced(big: ShapesScenes) -> None:
    yes_no = [a for a, t in zip(big.answers, big.question_type, strict=True) if t == "exists"]
    assert len(yes_no) > 200
    assert 0.35 <= yes_no.count("yes") / len(yes_no) <= 0.65


def test_other_image_size() -> None:
    d = generate_shapes_scenes(10, image_size=48, questions_per_image=5, seed=2)
    assert d.images.shape == (10, 48, 48, 3)
    assert d.target_masks.shape == (50, 48, 48)
    assert len(d) == 50


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_images": 0}, "n_images"),
        ({"n_images": 2.5}, "n_images"),
        ({"n_images": True}, "n_images"),
        ({"image_size": 31}, "image_size"),
        ({"min_objects": 0}, "min_objects"),
        ({"max_objects": 7}, "max_objects"),
        ({"min_objects": 4, "max_objects": 3}, "max_objects"),
        ({"questions_per_image": 0}, "questions_per_image"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {"n_images": 2, **kwargs}
    n_images = args.pop("n_images")
    with pytest.raises(ValueError, match=name):
        generate_shapes_scenes(n_images, **args)  # type: ignore[arg-type]
