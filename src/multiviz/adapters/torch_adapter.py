"""``TorchAdapter``: the adapter protocol for any ``nn.Module`` from a small spec.

The spec says which forward argument carries which modality (default: the modality's name), which
submodule turns token ids into embeddings (so that gradient methods can differentiate text), and which
module is the classification head (whose input is the penultimate representation).

Embeddings are injected with a forward hook on the embedding module that replaces its output, and
features are read with forward hooks; every hook is removed in a ``finally`` block, so the model never
keeps one, even when the forward raises.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from multiviz.adapters.base import Batch, Capability, SeparableModel
from multiviz.adapters.common import ModalityAdapterBase, check_logits
from multiviz.adapters.encoding_cache import active_cache, cached_encoding, cached_encodings
from multiviz.errors import CapabilityError, InputError
from multiviz.modality import Modality


class TorchAdapter(ModalityAdapterBase):
    """Wrap ``model`` so that every multiviz method can explain it.

    Args:
        model: the classifier; ``model(**kwargs)`` returns logits ``[B, C]`` (or an object with ``.logits``).
        modalities: its input modalities.
        arguments: modality name -> forward keyword; default the modality's name.
        embeddings: text modality name -> dotted name of the submodule whose output is the token embeddings
            (e.g. ``"text_encoder.embedding"``). Needed for gradient methods on text. An ``nn.Embedding``
            is assumed to receive the modality's token ids unchanged and is called directly by
            :meth:`embed`; any other module's output is captured from a forward pass.
        head: dotted name of the classification head; its *input* is the penultimate representation.
            Default: the last ``nn.Linear`` in ``model.named_modules()`` order.
        extra_arguments: batch key -> forward keyword, passed unchanged (e.g. an attention mask).
        extra_key_modalities: extra batch key -> the modality it belongs to (``{"attention_mask": "text"}``),
            so that methods pairing modalities of different samples (EMAP, DIME) carry it along.
        output: optional function from the forward's return value to logits.

    The model is put in evaluation mode (``model.eval()``): explanations must not depend on dropout draws
    or on the other samples of a batch through batch-norm statistics.
    """

    def __init__(
        self,
        model: nn.Module,
        modalities: Sequence[Modality],
        *,
        arguments: Mapping[str, str] | None = None,
        embeddings: Mapping[str, str] | None = None,
        head: str | None = None,
        extra_arguments: Mapping[str, str] | None = None,
        output: Callable[[Any], Tensor] | None = None,
        extra_key_modalities: Mapping[str, str] | None = None,
    ) -> None:
        self.extra_arguments = dict(extra_arguments or {})
        super().__init__(
            modalities, extra_keys=self.extra_arguments, extra_key_modalities=extra_key_modalities
        )
        if not isinstance(model, nn.Module):
            raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}", argument="model")
        # Explanations of a model in training mode would depend on dropout draws and batch statistics.
        self.model = model.eval()
        self.arguments = {m.name: m.name for m in self.modalities} | dict(arguments or {})
        for name in self.arguments:
            self.modality(name)
        self.embedding_modules = dict(embeddings or {})
        for name, module_name in self.embedding_modules.items():
            self.modality(name)
            self._submodule(module_name, "embeddings")
        self.head = head if head is not None else self._last_linear()
        self._submodule(self.head, "head")
        self._check_forward_arguments()
        self.output = output
        self._num_classes: int | None = None

    # -- discovery -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.LOGITS, Capability.MASK, Capability.FEATURES, Capability.LAYERS}
        if all(not m.modality_kind.is_discrete or m.name in self.embedding_modules for m in self.modalities):
            caps.add(Capability.GRADIENTS)
        if self._separable_model() is not None:
            caps.add(Capability.ENCODE)
        if callable(getattr(self.model, "attention_stacks", None)) and hasattr(self.model, "token_spans"):
            caps.add(Capability.ATTENTION)
        return frozenset(caps)

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:
            head = self._submodule(self.head, "head")
            if isinstance(head, nn.Linear):
                self._num_classes = head.out_features
            else:
                raise InputError(
                    "cannot read the class count off a non-Linear head; run logits() once first",
                    argument="head",
                )
        return self._num_classes

    # -- protocol ---------------------------------------------------------------------------------------
    def validate(self, batch: Batch) -> dict[str, Tensor]:
        """:meth:`ModalityAdapterBase.validate`, and token ids inside the vocabulary of an ``nn.Embedding``
        (which would otherwise fail deep in the forward with a bare ``IndexError``)."""
        out = super().validate(batch)
        for name, module_name in self.embedding_modules.items():
            module = self._submodule(module_name, "embeddings")
            ids = out[name]
            if isinstance(module, nn.Embedding) and bool((ids >= module.num_embeddings).any()):
                rows = (ids >= module.num_embeddings).any(dim=1).nonzero().flatten().tolist()
                raise InputError(
                    f"token id {int(ids.max())} is outside the vocabulary (samples {rows[:10]}); the "
                    f"embedding {module_name!r} has {module.num_embeddings} ids, expected 0 <= id < "
                    f"{module.num_embeddings}",
                    modality=name,
                    argument=f"batch['{name}']",
                )
        return out

    def logits(self, batch: Batch) -> Tensor:
        batch = self.validate(batch)
        cache = active_cache()
        if cache is not None and self._separable_model() is not None:
            return self.logits_from_encodings(cached_encodings(self, batch))
        return self._forward(batch)

    def embed(self, batch: Batch) -> dict[str, Tensor]:
        batch = self.validate(batch)
        out: dict[str, Tensor] = {}
        captured: dict[str, Tensor] = {}
        for modality in self.modalities:
            if not modality.modality_kind.is_discrete:
                out[modality.name] = batch[modality.name]
            elif modality.name not in self.embedding_modules:
                raise InputError(
                    "text has no embedding module; pass embeddings={name: 'path.to.module'} to TorchAdapter",
                    modality=modality.name,
                    argument="embeddings",
                )
        # An nn.Embedding maps ids to vectors by itself: call it directly instead of running the model.
        direct = {
            name: module_name
            for name, module_name in self.embedding_modules.items()
            if isinstance(self._submodule(module_name, "embeddings"), nn.Embedding)
        }
        for name, module_name in direct.items():
            out[name] = self._submodule(module_name, "embeddings")(batch[name])
        captured_modules = {n: m for n, m in self.embedding_modules.items() if n not in direct}
        if captured_modules:
            with self._capture_outputs(captured_modules, captured):
                self._forward(batch)
            out.update({name: captured[name] for name in captured_modules})
        return out

    def logits_from_embeddings(self, embeddings: Mapping[str, Tensor], batch: Batch) -> Tensor:
        batch = self.validate(batch)
        return self._forward_with_embeddings(embeddings, batch)

    def features(
        self, batch: Batch, layer: str | None = None, embeddings: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        return self.features_and_logits(batch, layer, embeddings)[0]

    def features_and_logits(
        self, batch: Batch, layer: str | None = None, embeddings: Mapping[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        batch = self.validate(batch)
        module = self._submodule(layer or self.head, "layer")
        captured: list[Tensor] = []

        def keep_input(_module: nn.Module, args: tuple[Any, ...]) -> None:
            captured.append(args[0])

        def keep_output(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)

        handle = (
            module.register_forward_pre_hook(keep_input)
            if layer is None
            else module.register_forward_hook(keep_output)
        )
        try:
            if embeddings is None:
                logits = self._forward(batch)
            else:
                logits = self._forward_with_embeddings(embeddings, batch)
        finally:
            handle.remove()
        if not captured:
            raise InputError(
                f"module {layer or self.head!r} did not run in the forward pass", argument="layer"
            )
        return captured[-1].reshape(captured[-1].shape[0], -1), logits

    def encode_modality(self, batch: Batch, modality: str) -> Tensor:
        """The encoder output of one modality, ``[B, d]``, for a model with :attr:`Capability.ENCODE`.

        The batch is expected validated (on :attr:`device`); only ``batch[modality]`` is read.
        """
        model = self._require_separable()
        self.modality(modality)
        argument = self.arguments[modality]
        cache = active_cache()
        if cache is not None:  # within caching_encodings: each distinct row once
            return cached_encoding(
                cache, self, modality, batch[modality], lambda rows: model.encode_modality(argument, rows)
            )
        return model.encode_modality(argument, batch[modality])

    def logits_from_encodings(self, encodings: Mapping[str, Tensor]) -> Tensor:
        """Logits from one encoding per modality (rows aligned), equal to :meth:`logits` of the inputs
        the encodings came from."""
        model = self._require_separable()
        of_argument = {self.arguments[m.name]: m.name for m in self.modalities}
        return model.logits_from_encodings([encodings[of_argument[a]] for a in model.modality_names])

    # -- internals -------------------------------------------------------------------------------------
    def _separable_model(self) -> SeparableModel | None:
        """The model if it is a :class:`SeparableModel` (encoders, then a fusion head, e.g. a
        :class:`multiviz.models.FusionClassifier` that keeps its ``forward``) whose inputs are exactly
        the modalities, with no output function or extra arguments in between; otherwise None."""
        model = self.model
        if not isinstance(model, SeparableModel) or not model.is_separable:
            return None
        if self.output is not None or self.extra_arguments:
            return None
        arguments = [self.arguments[m.name] for m in self.modalities]
        if sorted(arguments) != sorted(model.modality_names):
            return None
        return model

    def _require_separable(self) -> SeparableModel:
        model = self._separable_model()
        if model is None:
            raise CapabilityError(
                f"{type(self.model).__name__} does not factor into per-modality encoders and a fusion head "
                "(a multiviz FusionClassifier with its own forward); use logits() instead"
            )
        return model

    def _forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        kwargs = {self.arguments[m.name]: batch[m.name] for m in self.modalities}
        kwargs |= {argument: batch[key] for key, argument in self.extra_arguments.items() if key in batch}
        result = self.model(**kwargs)
        logits = self.output(result) if self.output is not None else _logits_of(result)
        check_logits(logits, self.batch_size(batch), None, "model")
        self._num_classes = int(logits.shape[1])
        return logits

    def _forward_with_embeddings(self, embeddings: Mapping[str, Tensor], batch: dict[str, Tensor]) -> Tensor:
        replaced = dict(batch)
        hooked: dict[str, Tensor] = {}
        for name, value in embeddings.items():
            modality = self.modality(name)
            if modality.modality_kind.is_discrete:
                if name not in self.embedding_modules:
                    raise InputError(
                        "no embedding module is known for this text modality",
                        modality=name,
                        argument="embeddings",
                    )
                hooked[name] = value
            else:
                replaced[name] = value
        with self._replace_outputs(hooked):
            return self._forward(replaced)

    @contextmanager
    def _capture_outputs(self, modules: Mapping[str, str], store: dict[str, Tensor]) -> Iterator[None]:
        handles = []
        try:
            for name, module_name in modules.items():

                def hook(_m: nn.Module, _a: tuple[Any, ...], output: Tensor, name: str = name) -> None:
                    store[name] = output

                handles.append(self._submodule(module_name, "embeddings").register_forward_hook(hook))
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def _replace_outputs(self, values: Mapping[str, Tensor]) -> Iterator[None]:
        handles = []
        try:
            for name, value in values.items():

                def hook(
                    _m: nn.Module,
                    _a: tuple[Any, ...],
                    output: Tensor,
                    value: Tensor = value,
                    name: str = name,
                ) -> Tensor:
                    if value.shape != output.shape:
                        raise InputError(
                            f"expected embeddings of shape {tuple(output.shape)}, got {tuple(value.shape)}",
                            modality=name,
                            argument="embeddings",
                        )
                    return value

                module = self._submodule(self.embedding_modules[name], "embeddings")
                handles.append(module.register_forward_hook(hook))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _check_forward_arguments(self) -> None:
        """Every forward keyword the spec passes must be a parameter of ``model.forward`` (unless it takes
        ``**kwargs``), and every parameter without a default must be passed: a mismatch is reported here,
        naming both sides, instead of as a ``TypeError`` from inside the first forward."""
        try:
            parameters = list(inspect.signature(self.model.forward).parameters.values())
        except (TypeError, ValueError):  # a C extension or a wrapper without a signature: trust it
            return
        named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted = [p.name for p in named]
        passed = {argument: key for key, argument in self.arguments.items()}
        passed |= {argument: key for key, argument in self.extra_arguments.items()}
        where = f"{type(self.model).__name__}.forward"
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            for argument, key in passed.items():
                if argument not in accepted:
                    raise InputError(
                        f"{where} has no parameter {argument!r} (where {key!r} would go); its parameters "
                        f"are {accepted}; map each modality to one with arguments={{name: parameter}}",
                        argument="arguments",
                    )
        missing = [p.name for p in named if p.default is p.empty and p.name not in passed]
        if missing:
            raise InputError(
                f"{where} needs {missing}, which no modality or extra argument is passed as (passed: "
                f"{sorted(passed)}); map each modality to one with arguments={{name: parameter}}",
                argument="arguments",
            )

    def _submodule(self, name: str, argument: str) -> nn.Module:
        try:
            return self.model.get_submodule(name)
        except AttributeError:
            names = [n for n, _ in self.model.named_modules() if n]
            shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
            raise InputError(
                f"the model has no submodule {name!r}; it has: {shown}", argument=argument
            ) from None

    def _last_linear(self) -> str:
        linear = [name for name, module in self.model.named_modules() if isinstance(module, nn.Linear)]
        if not linear:
            raise InputError(
                "the model has no nn.Linear; name the classification head with head=...", argument="head"
            )
        return linear[-1]


def _logits_of(result: Any) -> Tensor:
    if isinstance(result, Tensor):
        return result
    logits = getattr(result, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    raise InputError(
        f"the model returned {type(result).__name__}; expected a Tensor or an object with .logits "
        "(or pass output=... to TorchAdapter)",
        argument="model",
    )
