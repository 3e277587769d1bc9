"""The conformance suite: every registered method on every model kind it applies to (``check_estimator``).

The matrix is read from the registry (:func:`multiviz.registry.list_methods`) and the model kinds of
:mod:`tests.conformance.models`: a method runs on a kind when the adapter has every capability in the
method's ``requires``. A method registered later joins the matrix by itself; :data:`FAST_PARAMS` must
then name its small, fast parameters (:func:`test_the_registry_and_the_suite_agree` fails until it does).

Checks, per (method, model kind, parameter variant):

* **seed**: two calls with the same parameters and seed give the same result, bit for bit
  (``to_dict()`` equality, NaN padding included), the second drawing a progress bar;
* **batch invariance**: a point's result does not depend on the other points of its batch: the batch of
  three, each point alone and a regrouping (points 2 and 0 together) agree to :data:`BATCH_TOLERANCE`.
  DIME is given the three points as a fixed ``sample_set`` (by default its expectations run over the
  explained batch itself, by design). EMAP describes its whole sample set, so permutation equivariance
  is checked instead (:data:`GLOBAL_CHECKS`);
* **chunking**: the rows per forward pass (``batch_size``, ``atoms_per_backward``) do not change the
  result (to :data:`BATCH_TOLERANCE`);
* **float64**: the model and inputs in float64 give the float32 result to :data:`FLOAT64_TOLERANCE`;
* **model state**: parameters (values, ``requires_grad``, ``.grad``, tensor hooks), buffers, train/eval
  mode of every submodule, every module hook (forward, forward-pre, backward, backward-pre, state-dict)
  and global hook, the attention implementation, the global torch and numpy random states, grad mode and
  the input batch are the same after the call as before;
* **serialisation**: the result is of the registered result type, names its method, records every
  resolved hyperparameter, and round-trips through strict JSON and through the binary form with every
  array equal bit for bit (and of the same dtype).

Per method:

* **capabilities**: with each declared capability removed in turn (from every kind the method runs on),
  and on every kind that lacks one, the call raises a :class:`CapabilityError` before any forward pass
  (counted by a hook on the model; the black box's function calls a model too), naming the missing
  capability and exactly the methods of the same stage the adapter can run (or saying there are none);
  an adapter with only the declared capabilities (and logits, which every adapter has: targets are
  resolved from them) runs the method, every other capability's calls refusing;
* **parameters**: invalid values of every parameter (generated from its constraint in the spec, e.g.
  ``Integer(low)`` -> ``low - 1`` and ``1.5``, ``Real`` -> NaN, ``Options`` -> ``"no-such-option"``,
  ``Boolean`` -> ``"yes"``) and a missing required one are refused before any forward pass with an
  :class:`InputError` whose ``argument`` is the parameter and whose message says what is allowed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from tests.conformance.models import KINDS, ModelKind, capabilities
from torch import Tensor, nn

from multiviz.adapters.base import Adapter, Capability
from multiviz.errors import CapabilityError, InputError
from multiviz.params import (
    Boolean,
    Constraint,
    Data,
    Grid,
    Indices,
    Integer,
    Names,
    Optional,
    Options,
    Real,
    Text,
)
from multiviz.registry import COMMON_PARAMS, MethodInfo, get_method, list_methods
from multiviz.results import (
    Attribution,
    Attributions,
    Disentanglement,
    EMAPResult,
    InteractionMap,
    MaskingRounds,
    ModalitySummary,
    Result,
    result_from_bytes,
    result_from_dict,
)
from multiviz.results.interaction import ShapleyInteractions

pytest.importorskip("transformers")
pytest.importorskip("shapiq")

#: placeholders in FAST_PARAMS, filled per call: the three-point batch (in the call's dtype), as a fixed
#: sample set; the model kind's image layer
REFERENCE = "<the three points>"
LAYER = "<the image layer>"
PAIR = {"modality_a": "question", "modality_b": "image"}

#: small, fast parameters of every registered method; a list gives several variants, each run fully.
FAST_PARAMS: dict[str, dict[str, Any] | list[dict[str, Any]]] = {
    "saliency": {},
    "attention_rollout": {},
    "gradient_x_input": {},
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad": {"n_samples": 4},
    "grad_cam": {"layer": LAYER},
    "occlusion": {},
    "kl_occlusion": {},
    "lime": {"n_samples": 12},
    "kernel_shap": {"n_samples": 8},  # fewer than 2^4 - 2: 4-atom modalities are sampled, not enumerated
    "modality_summary": {},
    "cross_modal_perturbation": [PAIR, {**PAIR, "estimator": "lime", "n_samples": 16}],
    # the sample set is given: by default DIME's expectations run over the explained batch itself
    "dime": {"sample_set": REFERENCE, "n_samples": 8, "n_expectation_samples": 4},
    # the second variant estimates the K > 2 expectations from sampled tuples instead of the full grid
    "emap": [{}, {"max_grid_rows": 1, "n_expectation_samples": 4}],
    "masking_rounds": PAIR,
    "second_order_gradient": PAIR,
    "shapley_interaction": {"modalities": ["question", "image"], "budget": 64},  # 8 players: 37 + 24 removals
}

#: methods whose result describes a whole sample set, not each point: what is checked instead of
#: batch invariance
GLOBAL_CHECKS = {
    "emap": "permutation equivariance: explaining the points in another order permutes the rows of "
    "full_logits, unimodal_logits and interaction_logits (EMAP projects the model onto additive "
    "functions over the empirical distribution of the batch, so every row depends on every point). "
    "When the expectations are estimated from sampled index tuples (K > 2 beyond max_grid_rows), the "
    "tuples are drawn by position, so only full_logits (the model's own logits) are permuted exactly",
}

#: ``|a - b| <= atol * max(1, max |b|) + rtol * |b|`` per array (atol scaled by the array's magnitude).
#: Batch invariance and chunking compare two float32 runs whose batches differ: BLAS sums in another
#: order (about 1e-7), amplified where a result divides by a small spread (a surrogate's R^2 of a part
#: that barely varies: up to 2e-5 on these models)
BATCH_TOLERANCE = {"rtol": 5e-5, "atol": 5e-5}
#: methods whose batch invariance is checked in float64: masking rounds take the image gradient at the
#: masked image, each image's mean colour, a constant image that puts whole channels of a CNN at one
#: pre-activation; where that sits at a ReLU kink, float32 rounding that differs with the batch size
#: (other kernels) flips the channel everywhere at once (seen on one machine: up to 3 % on that one
#: gradient norm, 1e-17 in float64), so float32 would test the kernels, not the method
FLOAT64_BATCH_CHECK = {"masking_rounds"}
#: fields that float32 cannot reproduce, compared in float64 only (the batch test above) and left out of
#: the float32 comparisons: masking rounds' gradient norms at a fully masked modality (the ReLU kinks
#: above: up to 13 % between float32 and float64 on one machine), and Shapley interactions'
#: ``redundant_share``, a ratio of sums of second differences that are noise-level on these small models
#: (0 against 0.125 for one point)
ILL_CONDITIONED_IN_FLOAT32 = {
    "masking_rounds": {"gradient_norms"},
    "shapley_interaction": {"redundant_share"},
}
#: float32 against float64 (model and inputs): float32 rounding through the model (1e-7 relative),
#: amplified by the surrogate fits, regressions and quadratures (up to 2e-5 on these models)
FLOAT64_TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}
#: parameters that set how many rows go into one forward (or backward) pass, and the value tried: 4
#: rows (Captum's integrated gradients needs at least the batch's 3 points per pass)
CHUNKING_PARAMS = {"batch_size": 4, "atoms_per_backward": 1}


@pytest.fixture(autouse=True, scope="module")
def one_thread_for_tiny_models():
    """Run the module on one torch thread: the models are tiny, so a second thread buys nothing, and on
    a busy machine OpenMP threads waiting for each other make small operations many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the matrix -------------------------------------------------------------------------------------------
def variants(name: str) -> list[dict[str, Any]]:
    entry = FAST_PARAMS.get(name, {})
    return list(entry) if isinstance(entry, list) else [entry]


def applies(info: MethodInfo, kind: ModelKind) -> bool:
    needs_layer = any(LAYER in params.values() for params in variants(info.name))
    return info.requires <= capabilities(kind.name) and not (needs_layer and kind.grad_cam_layer is None)


def cases(chunked_only: bool = False) -> list[Any]:
    found = []
    for info in list_methods():
        if chunked_only and not set(CHUNKING_PARAMS) & set(info.params):
            continue
        for kind in KINDS.values():
            if not applies(info, kind):
                continue
            for number in range(len(variants(info.name))):
                label = f"{info.name}-{kind.name}" + (f"-v{number}" if number else "")
                found.append(pytest.param(info.name, kind.name, number, id=label))
    return found


def first_kind(info: MethodInfo) -> ModelKind:
    """The first model kind a method applies to (for the checks that need one model only)."""
    return next(kind for kind in KINDS.values() if applies(info, kind))


def method_cases() -> list[Any]:
    return [pytest.param(info.name, id=info.name) for info in list_methods()]


def resolve(params: Mapping[str, Any], kind: ModelKind, dtype: torch.dtype) -> dict[str, Any]:
    filled = {REFERENCE: kind.batch(dtype), LAYER: kind.grad_cam_layer}
    return {k: filled[v] if isinstance(v, str) and v in filled else v for k, v in params.items()}


def explain(
    name: str,
    kind: ModelKind,
    variant: int = 0,
    *,
    adapter: Adapter | None = None,
    batch: Mapping[str, Tensor] | None = None,
    dtype: torch.dtype = torch.float32,
    **overrides: Any,
) -> Any:
    info = get_method(name)
    adapter = kind.adapter(dtype) if adapter is None else adapter
    batch = kind.batch(dtype) if batch is None else batch
    params = resolve(variants(name)[variant], kind, dtype) | overrides
    return info.function(adapter, batch, "predicted", **params)


def rows(batch: Mapping[str, Tensor], indices: list[int]) -> dict[str, Tensor]:
    return {key: value[indices] for key, value in batch.items()}


# -- comparing results ------------------------------------------------------------------------------------
def tree(value: Any) -> Any:
    """A result as nested dicts and lists with numpy arrays (the fields of every nested result)."""
    if isinstance(value, Result):
        return {"type": value.result_type} | {k: tree(v) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {str(k): tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tree(v) for v in value]
    return value


def assert_close(actual: Any, expected: Any, rtol: float, atol: float, path: str = "result") -> None:
    """Equal structure and labels; numbers equal to ``atol * max(1, max |expected|) + rtol |expected|``."""
    if isinstance(expected, PerPoint):
        assert isinstance(actual, PerPoint), path
        _compare_per_point(actual, expected, rtol, atol, path)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), (path, actual, expected)
        for key in expected:
            assert_close(actual[key], expected[key], rtol, atol, f"{path}.{key}")
    elif isinstance(expected, list) and not _numeric_list(expected):
        assert isinstance(actual, list) and len(actual) == len(expected), (path, actual, expected)
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, rtol, atol, f"{path}[{index}]")
    elif isinstance(expected, np.ndarray | float | list) and not isinstance(expected, bool):
        want = np.asarray(expected, dtype=np.float64)
        got = np.asarray(actual, dtype=np.float64)
        assert got.shape == want.shape, (path, got.shape, want.shape)
        finite = want[np.isfinite(want)]
        scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, equal_nan=True, err_msg=path)
    else:
        assert actual == expected, (path, actual, expected)


def _numeric_list(values: list[Any]) -> bool:
    return (
        bool(values)
        and all(isinstance(v, float | int) and not isinstance(v, bool) for v in values)
        and any(isinstance(v, float) for v in values)
    )


@dataclass(frozen=True)
class PerPoint:
    """Extras of one point: ``values`` of a result over ``size`` points, of which this is ``sample``.

    Which entries are per point (one per point of the batch) is decided on both results at once: a list
    whose length is each result's batch size in both."""

    values: Any
    sample: int
    size: int


def _compare_per_point(actual: PerPoint, expected: PerPoint, rtol: float, atol: float, path: str) -> None:
    def split(a: Any, e: Any, where: str) -> None:
        if isinstance(e, dict) and isinstance(a, dict) and a.keys() == e.keys():
            for key in e:
                split(a[key], e[key], f"{where}.{key}")
        elif isinstance(e, list) and isinstance(a, list) and (len(a), len(e)) == (actual.size, expected.size):
            assert_close(a[actual.sample], e[expected.sample], rtol, atol, where)
        else:
            assert_close(a, e, rtol, atol, where)

    split(actual.values, expected.values, path)


def attribution_view(result: Attribution, sample: int) -> dict[str, Any]:
    size, count = len(result.atom_labels), len(result.atom_labels[sample])
    return {
        "weights": result.weights[sample, :count],
        "atom_labels": result.atom_labels[sample],
        "target_index": result.target_index[sample],
        "parameters": result.parameters,
        "extras": PerPoint(result.extras, sample, size),
    }


def interaction_map_view(result: InteractionMap, sample: int) -> dict[str, Any]:
    size = len(result.labels_a)
    rows_, columns = len(result.labels_a[sample]), len(result.labels_b[sample])
    return {
        "values": result.values[sample, :rows_, :columns],
        "labels": (result.labels_a[sample], result.labels_b[sample]),
        "target_index": result.target_index[sample],
        "parameters": result.parameters,
        "extras": PerPoint(result.extras, sample, size),
    }


def _fields(result: Any, names: tuple[str, ...], sample: int) -> dict[str, Any]:
    return {name: getattr(result, name)[sample] for name in names}


#: the result types :func:`point_view` can cut into points (every method's, but the global ones)
POINT_VIEW_TYPES = (
    Attributions,
    InteractionMap,
    ModalitySummary,
    Disentanglement,
    MaskingRounds,
    ShapleyInteractions,
)


def point_view(result: Result, sample: int) -> Any:
    """Everything ``result`` says about point ``sample`` of its batch (padding cut off)."""
    if isinstance(result, Attributions):
        return {name: attribution_view(part, sample) for name, part in result.items()}
    if isinstance(result, InteractionMap):
        return interaction_map_view(result, sample)
    if isinstance(result, ModalitySummary):
        names = ("share", "score", "probability", "masked_score", "masked_probability", "target_index")
        return _fields(result, names, sample) | {
            "modalities": result.modalities,
            "parameters": result.parameters,
        }
    if isinstance(result, Disentanglement):
        size = len(result.target_index)
        return {
            "unimodal": {k: attribution_view(v, sample) for k, v in result.unimodal.items()},
            "interaction": {k: attribution_view(v, sample) for k, v in result.interaction.items()},
            "uninformative": result.uninformative[sample],
            "extras": PerPoint(result.extras, sample, size),
        }
    if isinstance(result, MaskingRounds):
        names = (
            "gradient_norms",
            "target_score",
            "predicted_class",
            "relative_norm_change",
            "decision",
            "bimodal_atoms",
            "bimodal_labels",
            "partial_similarity",
            "bimodal_confirmed",
            "target_index",
        )
        return _fields(result, names, sample) | {"roles": result.roles}
    if isinstance(result, ShapleyInteractions):
        names = ("score", "empty_score", "within_modality_sum", "redundant_share")
        names += ("top_synergistic", "top_redundant", "budget_used", "exact", "target_index")
        return _fields(result, names, sample) | {
            "first_order": {k: attribution_view(v, sample) for k, v in result.first_order.items()},
            "pairs": {k: interaction_map_view(v, sample) for k, v in result.pairs.items()},
        }
    raise AssertionError(f"no per-point view of {type(result).__name__}; add one to point_view()")


# -- the model's state --------------------------------------------------------------------------------------
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_forward_hooks_always_called",
)


def _hooks(table: Any) -> list[tuple[Any, int]]:
    return [(key, id(hook)) for key, hook in (table or {}).items()]


def model_state(model: nn.Module, batch: Mapping[str, Tensor]) -> dict[str, Any]:
    """Everything a method must leave as it found it."""
    import torch.nn.modules.module as module_globals

    return {
        "parameters": {
            name: (p.detach().clone(), p.requires_grad, p.grad, _hooks(p._backward_hooks))
            for name, p in model.named_parameters()
        },
        "buffers": {name: b.detach().clone() for name, b in model.named_buffers()},
        "training": {name: m.training for name, m in model.named_modules()},
        "hooks": {
            (name, table): _hooks(getattr(m, table, None))
            for name, m in model.named_modules()
            for table in _HOOK_DICTS
        },
        "global_hooks": {table: _hooks(getattr(module_globals, table, None)) for table in _GLOBAL_HOOKS},
        "attention": getattr(getattr(model, "config", None), "_attn_implementation", None),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),  # noqa: NPY002 (methods must not draw from it)
        "grad_enabled": torch.is_grad_enabled(),
        "batch": {k: (v.clone(), v.dtype, v.requires_grad) for k, v in batch.items()},
    }


def assert_same_state(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert after.keys() == before.keys()
    for section in before:
        assert _equal(after[section], before[section]), f"{section} changed"


def _equal(a: Any, b: Any) -> bool:
    if isinstance(b, Tensor):
        return isinstance(a, Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in b)
    if isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) if b is not None else a is None


@contextmanager
def counting_forwards(model: nn.Module) -> Iterator[list[int]]:
    """Count the forward passes of ``model`` (the black box's function calls it too)."""
    calls = [0]

    def count(_module: nn.Module, _args: Any) -> None:
        calls[0] += 1

    handle = model.register_forward_pre_hook(count)
    try:
        yield calls
    finally:
        handle.remove()


# -- adapters with fewer capabilities ---------------------------------------------------------------------
#: what each capability lets a method call; an adapter without the capability raises there
_CAPABILITY_CALLS = {
    Capability.LOGITS: ("logits",),
    Capability.MASK: ("mask",),
    Capability.GRADIENTS: ("embed", "logits_from_embeddings"),
    Capability.FEATURES: ("features",),
    Capability.ENCODE: ("encode_modality", "logits_from_encodings"),
    Capability.LAYERS: (),  # multiviz.adapters.base.layered_model() checks the capability itself
    Capability.ATTENTION: (),  # attention_rollout reads the model's attention_stacks() itself
}


def restricted(adapter: Adapter, keep: frozenset[Capability]) -> Adapter:
    """The same adapter (same model) with only the capabilities ``keep``: it says so in ``capabilities``
    and refuses every call that belongs to a removed capability."""
    base = type(adapter)
    kept = frozenset(adapter.capabilities & keep)
    removed = adapter.capabilities - kept

    def refuse(call: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise CapabilityError(f"the restricted adapter has no {call}() (capabilities {sorted(kept)})")

        return method

    body: dict[str, Any] = {"capabilities": property(lambda self: kept)}
    for capability in removed:
        body |= {call: refuse(call) for call in _CAPABILITY_CALLS[capability]}
    cls = type(f"Restricted{base.__name__}", (base,), body)
    clone = object.__new__(cls)
    clone.__dict__.update(adapter.__dict__)
    return clone


# -- invalid parameters -------------------------------------------------------------------------------------
def invalid_values(constraint: Constraint) -> list[Any]:
    """Values ``constraint`` must refuse, one per way of being wrong."""
    if isinstance(constraint, Optional):
        return invalid_values(constraint.inner)
    if isinstance(constraint, Integer):
        out_of_range = [] if constraint.low is None else [constraint.low - 1]
        out_of_range += [] if constraint.high is None else [constraint.high + 1]
        return [*out_of_range, 1.5, True]
    if isinstance(constraint, Real):
        values: list[Any] = [math.nan, "1"]
        if constraint.low is not None:
            values.append(constraint.low if constraint.closed in ("neither", "right") else constraint.low - 1)
        if constraint.high is not None:
            values.append(
                constraint.high if constraint.closed in ("neither", "left") else constraint.high + 1
            )
        return values
    if isinstance(constraint, Options):
        return ["no-such-option"]
    if isinstance(constraint, Boolean):
        return ["yes", 1]
    if isinstance(constraint, Text):
        return ["", 3]
    if isinstance(constraint, Names):
        return [[], ["image", "image"], [3]]
    if isinstance(constraint, Indices):
        return [[], [-1], [0, 0], "0"]
    if isinstance(constraint, Grid):
        return [(0, 1), (2,)]
    if isinstance(constraint, Data):
        return []  # passed through to the method, which checks it against the adapter
    raise AssertionError(f"no invalid values known for {type(constraint).__name__}; add them here")


def parameter_cases() -> list[Any]:
    found = []
    for info in list_methods():
        for name, constraint in {**info.params, **COMMON_PARAMS}.items():
            if invalid_values(constraint) or name in info.required:
                found.append(pytest.param(info.name, name, id=f"{info.name}-{name}"))
    return found


# == the registry and the suite ============================================================================
def test_the_registry_and_the_suite_agree():
    registered = {info.name for info in list_methods()}
    assert set(FAST_PARAMS) == registered, (
        f"methods without fast parameters: {sorted(registered - set(FAST_PARAMS))}; "
        f"stale entries: {sorted(set(FAST_PARAMS) - registered)}"
    )
    assert set(GLOBAL_CHECKS) <= registered
    for info in list_methods():
        assert any(applies(info, kind) for kind in KINDS.values()), f"{info.name} runs on no model kind"
        assert issubclass(info.result, POINT_VIEW_TYPES) or info.name in GLOBAL_CHECKS, (
            f"{info.name} returns {info.result.__name__}: add a per-point view to point_view(), or say in "
            "GLOBAL_CHECKS what is checked instead of batch invariance"
        )
        for params in variants(info.name):
            assert set(params) <= set(info.params), (info.name, sorted(set(params) - set(info.params)))
            assert set(info.required) <= set(params), (info.name, "a required parameter has no value")


# == per (method, model kind) ==============================================================================
@pytest.mark.parametrize(("name", "kind_name", "variant"), cases())
def test_the_same_seed_gives_the_same_result(name, kind_name, variant):
    kind = KINDS[kind_name]
    adapter = kind.adapter()
    first = explain(name, kind, variant, adapter=adapter)
    second = explain(name, kind, variant, adapter=adapter, show_progress=True)  # a bar changes nothing
    assert first.to_dict() == second.to_dict()


@pytest.mark.parametrize(("name", "kind_name", "variant"), cases())
def test_a_point_does_not_depend_on_the_rest_of_its_batch(name, kind_name, variant):
    kind = KINDS[kind_name]
    adapter, batch = kind.adapter(), kind.batch()
    if name in FLOAT64_BATCH_CHECK:
        adapter.model.double()  # type: ignore[attr-defined]
        batch = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    whole = explain(name, kind, variant, adapter=adapter, batch=batch)
    if name in GLOBAL_CHECKS:  # permutation equivariance instead (see GLOBAL_CHECKS)
        order = [2, 0, 1]
        permuted = explain(name, kind, variant, adapter=adapter, batch=rows(batch, order))
        assert isinstance(whole, EMAPResult) and isinstance(permuted, EMAPResult)
        exact = whole.extras["exact"]
        fields = ("full_logits", "unimodal_logits", "interaction_logits") if exact else ("full_logits",)
        for field in fields:
            assert_close(getattr(permuted, field), getattr(whole, field)[order], **BATCH_TOLERANCE)
        assert permuted.target_index == [whole.target_index[i] for i in order]
        return
    groupings = [[[0], [1], [2]], [[2, 0], [1]]]
    for grouping in groupings:
        for group in grouping:
            part = explain(name, kind, variant, adapter=adapter, batch=rows(batch, group))
            for position, sample in enumerate(group):
                assert_close(
                    point_view(part, position),
                    point_view(whole, sample),
                    **BATCH_TOLERANCE,
                    path=f"point {sample} in {group}",
                )


@pytest.mark.parametrize(("name", "kind_name", "variant"), cases())
def test_take_slices_a_point_as_the_suite_reads_it(name, kind_name, variant):
    """``Result.take`` (how the run store keeps one record per point) gives exactly what the suite's own
    reading of the batched result says about that point; with the test above, it equals the method run
    on that point alone."""
    if name in GLOBAL_CHECKS:
        return  # a data-set level result (EMAP) is not per point
    kind = KINDS[kind_name]
    whole = explain(name, kind, variant)
    for sample in (2, 0):
        one = whole.take([sample])
        assert_close(
            point_view(one, 0), point_view(whole, sample), rtol=0.0, atol=0.0, path=f"take([{sample}])"
        )
        assert result_from_bytes(one.to_bytes()) == one
    pair = whole.take([2, 0])
    assert_close(point_view(pair, 1), point_view(whole, 0), rtol=0.0, atol=0.0, path="take([2, 0])")


@pytest.mark.parametrize(("name", "kind_name", "variant"), cases(chunked_only=True))
def test_the_rows_per_forward_do_not_change_the_result(name, kind_name, variant):
    chunking = {k: v for k, v in CHUNKING_PARAMS.items() if k in get_method(name).params}
    kind = KINDS[kind_name]
    adapter = kind.adapter()
    default = explain(name, kind, variant, adapter=adapter)
    chunked = explain(name, kind, variant, adapter=adapter, **chunking)
    expected = tree(default)
    actual = tree(chunked)
    for result in (expected, actual):  # the recorded chunk sizes differ by design
        _drop_keys(result, set(chunking))
        _drop_fields(result, ILL_CONDITIONED_IN_FLOAT32.get(name, set()))
    assert_close(actual, expected, **BATCH_TOLERANCE)


def _drop_fields(value: Any, fields: set[str]) -> None:
    """Remove the result fields ``fields`` wherever they appear in a :func:`tree`."""
    if isinstance(value, dict):
        for field in fields:
            value.pop(field, None)
        for item in value.values():
            _drop_fields(item, fields)
    elif isinstance(value, list):
        for item in value:
            _drop_fields(item, fields)


def _drop_keys(value: Any, keys: set[str]) -> None:
    if isinstance(value, dict):
        if "parameters" in value and isinstance(value["parameters"], dict):
            for key in keys:
                value["parameters"].pop(key, None)
        for item in value.values():
            _drop_keys(item, keys)
    elif isinstance(value, list):
        for item in value:
            _drop_keys(item, keys)


@pytest.mark.parametrize(("name", "kind_name", "variant"), cases())
def test_float32_agrees_with_float64(name, kind_name, variant):
    kind = KINDS[kind_name]
    single, double = (tree(explain(name, kind, variant, dtype=d)) for d in (torch.float32, torch.float64))
    for result in (single, double):
        _drop_fields(result, ILL_CONDITIONED_IN_FLOAT32.get(name, set()))
    assert_close(single, double, **FLOAT64_TOLERANCE)


@pytest.mark.parametrize(("name", "kind_name", "variant"), cases())
def test_the_model_is_left_as_it_was(name, kind_name, variant):
    kind = KINDS[kind_name]
    model = kind.model()
    adapter, batch = kind.adapter(model=model), kind.batch()
    before = model_state(model, batch)
    explain(name, kind, variant, adapter=adapter, batch=batch)
    assert_same_state(model_state(model, batch), before)


@pytest.mark.parametrize(("name", "kind_name", "variant"), cases())
def test_the_result_round_trips_through_json_and_bytes(name, kind_name, variant):
    info = get_method(name)
    result = explain(name, KINDS[kind_name], variant)
    assert isinstance(result, info.result), (type(result), info.result)
    assert result.method == name
    recorded = {k for k, c in info.params.items() if c.record}
    assert recorded <= set(result.parameters), sorted(recorded - set(result.parameters))
    from_json = result_from_dict(json.loads(result.to_json()))
    from_bytes = result_from_bytes(result.to_bytes())
    for restored in (from_json, from_bytes):
        assert type(restored) is type(result)
        assert restored == result
        _assert_bitwise(tree(restored), tree(result))


def _assert_bitwise(actual: Any, expected: Any, path: str = "result") -> None:
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype, path
        assert actual.shape == expected.shape and actual.tobytes() == expected.tobytes(), path
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
        for key in expected:
            _assert_bitwise(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), path
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_bitwise(a, e, f"{path}[{index}]")
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(actual, float) and math.isnan(actual), path
    else:
        assert actual == expected and type(actual) is type(expected), (path, actual, expected)


# == per method ============================================================================================
def assert_refused_before_any_forward(name: str, kind: ModelKind, model: nn.Module, adapter: Adapter) -> None:
    """``name`` on ``adapter`` raises a :class:`CapabilityError` before any forward pass, naming each
    missing capability and exactly the methods of the same stage the adapter can run."""
    info = get_method(name)
    missing = info.requires - adapter.capabilities
    runnable = {
        m.name for m in list_methods(info.stage) if m.name != name and m.requires <= adapter.capabilities
    }
    with counting_forwards(model) as forwards, pytest.raises(CapabilityError) as error:
        explain(name, kind, adapter=adapter)
    assert forwards[0] == 0, f"{forwards[0]} forward passes before the capability check"
    message = str(error.value)
    assert f"'{name}'" in message and all(f"'{c.value}'" in message for c in missing), message
    if runnable:
        alternatives = message.split("supports:")[-1]
        named = {m.name for m in list_methods() if f"'{m.name}'" in alternatives}
        assert "supports:" in message and named == runnable, (message, sorted(runnable))
    else:
        assert f"No method of stage {info.stage} runs on it" in message, message


@pytest.mark.parametrize("name", method_cases())
def test_a_missing_capability_is_refused_before_any_forward(name):
    """Each declared capability removed in turn from every model kind the method runs on."""
    info = get_method(name)
    for kind in (kind for kind in KINDS.values() if applies(info, kind)):
        model = kind.model()
        adapter = kind.adapter(model=model)
        for capability in sorted(info.requires):
            lacking = restricted(adapter, adapter.capabilities - {capability})
            assert_refused_before_any_forward(name, kind, model, lacking)


def refused_cases() -> list[Any]:
    return [
        pytest.param(info.name, kind.name, id=f"{info.name}-{kind.name}")
        for info in list_methods()
        for kind in KINDS.values()
        if not info.requires <= capabilities(kind.name)
    ]


@pytest.mark.parametrize(("name", "kind_name"), refused_cases())
def test_a_model_kind_without_the_capabilities_is_refused(name, kind_name):
    """The other half of the matrix: a model kind that lacks what the method needs (the black box and
    the gradient methods, ...) is refused up front."""
    kind = KINDS[kind_name]
    model = kind.model()
    assert_refused_before_any_forward(name, kind, model, kind.adapter(model=model))


@pytest.mark.parametrize("name", method_cases())
def test_the_declared_capabilities_are_enough(name):
    info = get_method(name)
    kind = first_kind(info)
    adapter = restricted(kind.adapter(), info.requires | {Capability.LOGITS})
    result = explain(name, kind, adapter=adapter)
    assert isinstance(result, info.result)


@pytest.mark.parametrize(("name", "parameter"), parameter_cases())
def test_an_invalid_parameter_is_refused_by_the_spec(name, parameter):
    info = get_method(name)
    kind = first_kind(info)
    model = kind.model()
    adapter = kind.adapter(model=model)
    constraint = {**info.params, **COMMON_PARAMS}[parameter]
    # what the message must say is allowed (None, for an optional parameter, is the documented default)
    allowed = (constraint.inner if isinstance(constraint, Optional) else constraint).describe()
    valid = resolve(variants(name)[0], kind, torch.float32)
    attempts = [(value, valid | {parameter: value}) for value in invalid_values(constraint)]
    if parameter in info.required:
        attempts.append(("(missing)", {k: v for k, v in valid.items() if k != parameter}))
    for value, params in attempts:
        with counting_forwards(model) as forwards, pytest.raises(InputError) as error:
            info.function(adapter, kind.batch(), "predicted", **params)
        assert forwards[0] == 0, (value, f"{forwards[0]} forward passes before the parameter check")
        assert error.value.argument == parameter, (value, str(error.value))
        message = str(error.value)
        assert f"argument '{parameter}'" in message and allowed in message, (value, message)
