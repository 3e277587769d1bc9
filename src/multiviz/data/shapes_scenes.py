"""Shapes-scenes: a seeded VQA-style data set of coloured shapes with ground-truth boxes and masks.

Each image shows 2 to 5 (configurable, at most 6) coloured shapes at random, non-overlapping places on
a white background (:data:`BACKGROUND`). Each image comes with referring questions in three fixed,
lower-case templates:

``colour_of_shape``  "what colour is the triangle?"   (asked only when exactly one triangle is present)
``exists``           "is there a red circle?"         ("yes" / "no", balanced about 50/50)
``shape_of_colour``  "what shape is the blue object?" (asked only when exactly one blue object is present)

Every question carries the box and exact pixel mask of the object it refers to, and the words that name
that object ("triangle"; "red", "circle"; "blue"). That is the ground truth the cross-modal alignment
checks of MultiViz (Liang et al., ICLR 2023, appendix D.2 "alignment accuracy") compare explanations
against: do the question words that name an object line up with that object's pixels?

Objects are rendered without anti-aliasing, so every pixel is either the background colour or exactly the
colour of the one object whose mask covers it. A (shape, colour) pair occurs at most once per scene, so
"is there a red circle?" -> "yes" refers to exactly one object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from multiviz.errors import InputError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 20),
    "purple": (140, 50, 180),
}
ANSWERS: tuple[str, ...] = (*COLOURS, *SHAPES, "yes", "no")
BACKGROUND: tuple[int, int, int] = (255, 255, 255)
QUESTION_TYPES: tuple[str, ...] = ("colour_of_shape", "exists", "shape_of_colour")
MAX_OBJECTS = 6
_SCENE_ATTEMPTS = 20  # resamples of count and sizes before the grid fallback
_PLACEMENT_TRIES = 40  # random positions tried per object within one attempt
_Box = tuple[int, int, int, int]
_Question = tuple[str, str, str, int, tuple[str, ...]]  # type, text, answer, referred object or -1, words


@dataclass(frozen=True)
class SceneObject:
    """One shape in one image; ``box`` is ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive.

    The box is tight: the object's mask touches all four sides of it.
    """

    shape: str
    colour: str
    box: tuple[int, int, int, int]


@dataclass
class ShapesScenes:
    """A generated data set: ``N`` images and ``Q`` questions about them (``Q = N * questions_per_image``).

    Attributes:
        images: uint8 ``[N, H, W, 3]``; background :data:`BACKGROUND` (white) where no object is.
        objects: per image, its objects in drawing order.
        object_masks: per image, bool ``[n_objects, H, W]``; exactly the pixels of each object.
        questions: ``Q`` lower-case questions ending with "?".
        answers: ``Q`` answers, each in :data:`ANSWERS`.
        answer_index: int64 ``[Q]``; ``ANSWERS.index(answers[q])``.
        image_index: int64 ``[Q]``; the image question ``q`` is about.
        question_type: ``Q`` entries of :data:`QUESTION_TYPES`.
        target_boxes: int64 ``[Q, 4]``; the referred object's box, ``-1`` x4 when nothing is referred
            (an "exists" question answered "no").
        target_masks: bool ``[Q, H, W]``; the referred object's pixels, all False when nothing is referred.
        seed: the seed the data set was generated with.
        target_object: int64 ``[Q]``; index of the referred object in ``objects[image_index[q]]``, or -1.
        target_words: ``Q`` tuples of the question words naming the object asked about (given for "no"
            answers too, although then no pixels match them).
    """

    images: np.ndarray
    objects: list[list[SceneObject]]
    object_masks: list[np.ndarray]
    questions: list[str]
    answers: list[str]
    answer_index: np.ndarray
    image_index: np.ndarray
    question_type: list[str]
    target_boxes: np.ndarray
    target_masks: np.ndarray
    seed: int
    target_object: np.ndarray
    target_words: list[tuple[str, ...]]

    def __len__(self) -> int:
        """Number of questions."""
        return len(self.questions)

    def question_words(self, i: int) -> list[str]:
        """The lower-case words of question ``i``, without punctuation."""
        return re.findall(r"[a-z]+", self.questions[i].lower())


def size_range(image_size: int) -> tuple[int, int]:
    """Smallest and largest object side in pixels: 8 and 19 at 64x64, scaling with ``image_size``."""
    return max(4, round(image_size / 8)), round(image_size * 0.3)


@lru_cache(maxsize=512)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Bool ``[size, size]`` mask of ``shape`` filling a ``size`` x ``size`` box (touching all four sides)."""
    r, c = np.ogrid[:size, :size]
    dy, dx = r + 0.5 - size / 2, c + 0.5 - size / 2
    if shape == "circle":
        mask = dx**2 + dy**2 <= (size / 2) ** 2
    elif shape == "square":
        mask = np.ones((size, size), dtype=bool)
    elif shape == "triangle":  # apex up: half-width grows from 1/2 px in the top row to size/2 at the bottom
        mask = np.abs(dx) <= (r + 1) / 2
    elif shape == "cross":
        half = max(1, size // 3) / 2  # arms about a third of the side thick
        mask = (np.abs(dx) <= half) | (np.abs(dy) <= half)
    else:
        raise InputError(f"unknown shape {shape!r}; expected one of {SHAPES}", argument="shape")
    mask = np.broadcast_to(mask, (size, size)).copy()
    mask.flags.writeable = False
    return mask


def _apart(a: _Box, b: _Box) -> bool:
    """True if boxes ``a`` and ``b`` are separated by at least one pixel of gap."""
    return a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def _place_random(
    rng: np.random.Generator, sizes: list[int], image_size: int, tries: int
) -> list[_Box] | None:
    """Rejection-sample a box per size (largest placed first); None if some object does not fit."""
    boxes: list[_Box] = []
    for s in sizes:
        for _ in range(tries):
            x0, y0 = (int(v) for v in rng.integers(0, image_size - s + 1, size=2))
            box = (x0, y0, x0 + s, y0 + s)
            if all(_apart(box, other) for other in boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def _place_grid(rng: np.random.Generator, n: int, size: int, image_size: int) -> list[_Box]:
    """Fallback that always succeeds: ``n <= 9`` objects in distinct cells of a 3x3 grid, jittered."""
    cell = image_size // 3
    size = min(size, cell - 1)
    boxes = []
    for k in rng.permutation(9)[:n]:
        x0 = (k % 3) * cell + int(rng.integers(0, cell - size))
        y0 = (k // 3) * cell + int(rng.integers(0, cell - size))
        boxes.append((x0, y0, x0 + size, y0 + size))
    return boxes


def _sample_scene(
    rng: np.random.Generator, image_size: int, min_objects: int, max_objects: int
) -> list[SceneObject]:
    """Draw the objects of one scene: count, sizes, places, and unique (shape, colour) pairs."""
    lo, hi = size_range(image_size)
    boxes = None
    for attempt in range(_SCENE_ATTEMPTS):
        n = int(rng.integers(min_objects, max_objects + 1))
        cap = hi - (hi - lo) * attempt // _SCENE_ATTEMPTS  # later attempts draw smaller objects
        sizes = sorted((int(s) for s in rng.integers(lo, cap + 1, size=n)), reverse=True)
        boxes = _place_random(rng, sizes, image_size, _PLACEMENT_TRIES)
        if boxes is not None:
            break
    if boxes is None:
        boxes = _place_grid(rng, n, lo, image_size)
    pairs = rng.choice(len(SHAPES) * len(COLOURS), size=len(boxes), replace=False)
    colours = list(COLOURS)
    return [
        SceneObject(SHAPES[int(p) % len(SHAPES)], colours[int(p) // len(SHAPES)], box)
        for p, box in zip(pairs, boxes, strict=True)
    ]


def _ask(rng: np.random.Generator, objects: list[SceneObject], n_questions: int) -> list[_Question]:
    """``n_questions`` (type, question, answer, referred object or -1, naming words) about one scene.

    The type is uniform over the types that still have an unasked question (a scene with no unique shape
    gets no "colour_of_shape" question); "exists" answers are a fair coin. No question repeats, except
    "is there ...?" -> "yes" once every object has been asked about.
    """
    shapes = [o.shape for o in objects]
    colours = [o.colour for o in objects]
    present = {(o.shape, o.colour) for o in objects}
    pools: dict[str, list[int | tuple[str, str]]] = {
        "colour_of_shape": [i for i, s in enumerate(shapes) if shapes.count(s) == 1],
        "shape_of_colour": [i for i, c in enumerate(colours) if colours.count(c) == 1],
        "yes": list(range(len(objects))),
        "no": [(s, c) for c in COLOURS for s in SHAPES if (s, c) not in present],
    }
    remaining = {k: [v[int(j)] for j in rng.permutation(len(v))] for k, v in pools.items()}
    out: list[_Question] = []
    for _ in range(n_questions):
        kinds = [t for t in QUESTION_TYPES if t == "exists" or remaining[t]]
        qtype = kinds[int(rng.integers(len(kinds)))]
        key = ("yes" if rng.random() < 0.5 else "no") if qtype == "exists" else qtype
        if not remaining[key]:  # only "yes"/"no" get here: refill
            remaining[key] = [pools[key][int(j)] for j in rng.permutation(len(pools[key]))]
        item = remaining[key].pop()
        if isinstance(item, tuple):  # "is there a <colour> <shape>?" -> no
            shape, colour = item
            out.append((qtype, f"is there a {colour} {shape}?", "no", -1, (colour, shape)))
            continue
        o = objects[item]
        if key == "colour_of_shape":
            out.append((qtype, f"what colour is the {o.shape}?", o.colour, item, (o.shape,)))
        elif key == "shape_of_colour":
            out.append((qtype, f"what shape is the {o.colour} object?", o.shape, item, (o.colour,)))
        else:
            out.append((qtype, f"is there a {o.colour} {o.shape}?", "yes", item, (o.colour, o.shape)))
    return out


def _check_int(name: str, value: object, lo: int, hi: int | None = None, expected: str = "") -> int:
    """``value`` as an int if it is an integer in ``[lo, hi]``; otherwise an InputError naming ``name``."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        v = int(value)
        if lo <= v and (hi is None or v <= hi):
            return v
    raise InputError(f"expected {expected or f'an integer >= {lo}'}, got {value!r}", argument=name)


def generate_shapes_scenes(
    n_images: int,
    *,
    image_size: int = 64,
    min_objects: int = 2,
    max_objects: int = 5,
    questions_per_image: int = 3,
    seed: int = 0,
) -> ShapesScenes:
    """Generate ``n_images`` square RGB scenes and ``questions_per_image`` questions about each.

    Args:
        n_images: number of images, >= 1.
        image_size: side of each image in pixels, >= 32. Objects are squares of side ``size_range``.
        min_objects, max_objects: each scene holds a uniform count in ``[min_objects, max_objects]``,
            with ``1 <= min_objects <= max_objects <= 6``.
        questions_per_image: questions per image, >= 1.
        seed: seed for ``np.random.default_rng``; the same arguments give byte-identical output.

    Returns:
        A :class:`ShapesScenes`, the ground truth for MultiViz appendix D.2 alignment checks.

    Raises:
        InputError (a ValueError): an argument is out of range; the message names it.
    """
    n_images = _check_int("n_images", n_images, 1)
    image_size = _check_int("image_size", image_size, 32)
    min_objects = _check_int("min_objects", min_objects, 1, MAX_OBJECTS, f"an integer in [1, {MAX_OBJECTS}]")
    max_objects = _check_int(
        "max_objects", max_objects, min_objects, MAX_OBJECTS, f"an integer in [min_objects, {MAX_OBJECTS}]"
    )
    questions_per_image = _check_int("questions_per_image", questions_per_image, 1)
    seed = _check_int("seed", seed, 0, expected="a non-negative integer")

    rng = np.random.default_rng(seed)
    images = np.empty((n_images, image_size, image_size, 3), dtype=np.uint8)
    images[...] = BACKGROUND
    all_objects: list[list[SceneObject]] = []
    object_masks: list[np.ndarray] = []
    asked: list[tuple[int, _Question]] = []
    for i in range(n_images):
        objects = _sample_scene(rng, image_size, min_objects, max_objects)
        masks = np.zeros((len(objects), image_size, image_size), dtype=bool)
        for k, o in enumerate(objects):
            x0, y0, x1, y1 = o.box
            local = shape_mask(o.shape, x1 - x0)
            masks[k, y0:y1, x0:x1] = local
            images[i, y0:y1, x0:x1][local] = COLOURS[o.colour]
        all_objects.append(objects)
        object_masks.append(masks)
        asked.extend((i, q) for q in _ask(rng, objects, questions_per_image))

    n_q = len(asked)
    image_index = np.array([i for i, _ in asked], dtype=np.int64)
    target_object = np.array([q[3] for _, q in asked], dtype=np.int64)
    target_boxes = np.full((n_q, 4), -1, dtype=np.int64)
    target_masks = np.zeros((n_q, image_size, image_size), dtype=bool)
    for j, (i, k) in enumerate(zip(image_index.tolist(), target_object.tolist(), strict=True)):
        if k >= 0:
            target_boxes[j] = all_objects[i][k].box
            target_masks[j] = object_masks[i][k]
    answers = [q[2] for _, q in asked]
    return ShapesScenes(
        images=images,
        objects=all_objects,
        object_masks=object_masks,
        questions=[q[1] for _, q in asked],
        answers=answers,
        answer_index=np.array([ANSWERS.index(a) for a in answers], dtype=np.int64),
        image_index=image_index,
        question_type=[q[0] for _, q in asked],
        target_boxes=target_boxes,
        target_masks=target_masks,
        seed=seed,
        target_object=target_object,
        target_words=[q[4] for _, q in asked],
    )
