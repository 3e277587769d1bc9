"""One expert of a mixture of experts as a model of its own (FL-I2MoE's expert-wise explanations).

A model that offers ``expert_view(e)`` (:class:`multiviz.models.FLI2MoE`) returns a module whose logits are
expert ``e``'s; :func:`expert_adapter` wraps it with the adapter's modalities, so that every method *and*
every metric that scores class probabilities (top-K% masking, pair masking, deletion curves) measures the
expert's own prediction ``softmax(logits_e)``. The targets ``("expert", e)`` and ``("routing", e)`` of
:mod:`multiviz.targets` explain an expert's logit through the whole model instead.
"""

from __future__ import annotations

from multiviz.adapters.torch_adapter import TorchAdapter
from multiviz.errors import InputError


def expert_adapter(adapter: TorchAdapter, expert: int) -> TorchAdapter:
    """A :class:`TorchAdapter` over expert ``expert`` of ``adapter``'s mixture-of-experts model (same
    modalities, input names and text embeddings; penultimate features: the expert's pooled representation)."""
    view = getattr(adapter.model, "expert_view", None)
    if not isinstance(adapter, TorchAdapter) or not callable(view):
        raise InputError(
            f"expected a TorchAdapter over a mixture-of-experts model with expert_view() (e.g. "
            f"multiviz.models.FLI2MoE), got {type(getattr(adapter, 'model', adapter)).__name__}",
            argument="adapter",
        )
    module = view(expert)  # checks the expert index
    wrapped = TorchAdapter(
        module,
        adapter.modalities,
        arguments=adapter.arguments,
        embeddings={name: f"model.{path}" for name, path in adapter.embedding_modules.items()},
        head="latent",
        extra_arguments=adapter.extra_arguments,
        output=adapter.output,
    )
    wrapped._num_classes = adapter.num_classes  # the head is the expert's pooled output, not a Linear
    return wrapped
