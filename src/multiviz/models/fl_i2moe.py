"""FL-I2MoE: a feature-level interaction mixture of experts over the token sequences of every modality.

Source: the FL-I2MoE abstract (Kim, Babiker, Kim et al., *Feature-level Interaction Explanations in
Multimodal Transformers*; seed ``abstracts-fl-i2moe-dve.txt``) and its published base, I2MoE (Xin et al.,
*I2MoE: Interpretable Multimodal Interaction-aware Mixture-of-Experts*, ICML 2025, code Raina-Xin/I2MoE).

**Experts.** For ``M`` modalities there are ``E = M + 2`` experts, in this order: one *unique* expert per
modality (``unique:<name>``), one *synergy* and one *redundancy* expert. Every expert is a small fusion
transformer (:class:`~multiviz.models.token_fusion.JointTransformer`: self-attention over the joint token
sequence of all modalities, per-modality masked mean pooling, concatenation to ``z_e``, ``M d_model``
numbers) with its own linear head: ``logits_e = W_e z_e + b_e``. As the abstract says, the experts work at the
feature level: they see the token/patch sequences (frozen MiniLM word states, the image CNN's feature-map
positions) directly, not one pooled vector per modality.

**Routing.** ``w = softmax(MLP([mean tokens of modality 1; ...; modality M]) / temperature)`` (the means of
the projected input tokens), and the output is ``sum_e w_e logits_e``. It is computed as one linear ``head``
over ``phi = [w_1 z_1; w_1; ...; w_E z_E; w_E]`` whose weight holds every ``[W_e | b_e]``: the logits are
exactly the routed sum, and ``phi`` is the penultimate representation that stages R and P read (the sparse
linear model of stage P sees every expert's features scaled by its routing weight).

**Interaction losses** (I2MoE's, on the expert logits). In training, with ``lambda_int > 0``, each modality
``j`` in turn has its token contents replaced by standard Gaussian noise (positions, modality embedding and
validity kept), giving ``h_e^-j`` beside ``h_e^0`` for every expert ``e``:

* unique expert ``i``: triplet margin loss (margin ``margin``, L2) with anchor ``h_i^0``, negative ``h_i^-i``
  and each positive ``h_i^-j`` (``j != i``), averaged over ``j``: removing its own modality must move it more
  than removing another;
* synergy: ``mean_j cos(h^0, h^-j)`` (removing any modality changes it);
* redundancy: ``mean_j (1 - cos(h^0, h^-j))`` (removing one modality does not change it);
* ``L = L_task + lambda_int (sum_i L_uni,i + L_syn + L_red) / (M + 2)``.

The trainer adds the interaction term through :meth:`regularisation` (computed by the training-mode forward
pass). I2MoE perturbs a modality's whole input embedding; here it is the projected token sequence, so the
frozen encoders run once per batch.

**Routing by interaction type** (our addition, off by default: ``lambda_route = 0`` and
``unique_inputs = "all"`` are I2MoE). I2MoE's losses shape what each expert's output depends on, not which
expert the router picks: every expert sees every modality, so any of them can fit a task alone and the
routing weights need not say whether a prediction rests on unique, synergistic or redundant evidence (on
our planted-type tasks they did not; ``docs/fl-i2moe.md``). Two switches make the routing carry that
meaning:

* ``unique_inputs = "own"``: unique expert ``i`` sees only modality ``i`` (every other modality's tokens
  are marked invalid, so attention and pooling skip them; its output is a function of modality ``i``
  alone, and its attributions on other modalities are exactly zero);
* ``lambda_route > 0`` adds, per training batch, with ``y`` the batch's labels (the trainer passes them to
  :meth:`regularisation`; without them the mixture's detached predicted classes stand in):

  - *unimodal sufficiency*: ``s_i = clip((q_i(y) - 1/C) / (1 - 1/C), 0, 1)``, where ``q_i`` is the class
    distribution of unique expert ``i`` seeing modality ``i`` alone: how far above chance modality ``i``
    alone gives the label; the unique experts learn it by the cross-entropy ``CE(h_i^only-i, y)`` (mean
    over ``i``). (Labels, not the mixture's own predictions: with predictions, a modality that the
    half-trained mixture happens to follow would be read as sufficient and routed to, which kept the
    model from learning the synergy task in our first trials.)
  - the *interaction-type target* (detached, sums to 1): synergy ``prod_i (1 - s_i)`` (no modality
    suffices alone), unique ``i``: ``s_i prod_{j != i} (1 - s_j)`` (exactly modality ``i`` suffices),
    redundancy: the rest (two or more suffice alone), the partial-information-decomposition reading of
    unique, synergistic and redundant evidence on one point;
  - the router's cross-entropy ``-sum_e t_e log w_e`` to that target;
  - ``L += lambda_route (CE_sufficiency + CE_routing)``.

**Explaining one expert.** The expert logits ``[B, E, C]`` (flattened) are the output of the module
``expert_outputs`` and the routing weights ``[B, E]`` that of ``routing_weights``: the targets
``("expert", e)`` and ``("routing", e)`` of :mod:`multiviz.targets` read them, so every U and C method
explains one expert. :meth:`expert_view` gives a module whose logits *are* expert ``e``'s, for metrics that
score class probabilities (``multiviz.adapters.expert_adapter``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiviz.errors import InputError
from multiviz.models.attention import MultiHeadAttention, TokenSpan, masked_mean
from multiviz.models.fusion import FusionClassifier
from multiviz.models.token_fusion import (
    JointTransformer,
    TokenInputs,
    check_inputs,
    check_transformer_options,
)

Parts = list[tuple[Tensor, Tensor, tuple[int, ...]]]
#: what a unique expert sees: every modality (I2MoE) or its own only
UNIQUE_INPUTS = ("all", "own")


class FLI2MoE(FusionClassifier):
    """Unique, synergy and redundancy experts over the joint token sequence, mixed by a router.

    Args:
        encoders, num_classes: as :class:`~multiviz.models.fusion.FusionClassifier` (at least two
            modalities; every encoder must give a token sequence).
        d_model, heads, layers: width, attention heads and self-attention blocks of each expert.
        router_hidden: width of the router MLP's hidden layer.
        temperature: softmax temperature of the routing weights (> 0).
        lambda_int: weight of the interaction losses (>= 0; 0 trains the mixture without them).
        margin: margin of the unique experts' triplet loss (>= 0).
        lambda_route: weight of the routing-by-interaction-type losses (>= 0; 0: I2MoE's router, trained
            by the task loss only). See the module docstring.
        unique_inputs: ``"all"`` (I2MoE: every expert sees every modality) or ``"own"`` (unique expert ``i``
            sees modality ``i`` only).
    """

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        num_classes: int,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 2,
        router_hidden: int = 64,
        temperature: float = 1.0,
        lambda_int: float = 0.1,
        margin: float = 1.0,
        lambda_route: float = 0.0,
        unique_inputs: str = "all",
    ) -> None:
        super().__init__(encoders, num_classes, ())
        if len(self.modality_names) < 2:
            raise InputError("FL-I2MoE needs at least two modalities", argument="encoders")
        self.d_model, self.heads, self.layers = check_transformer_options(d_model, heads, layers)
        self.router_hidden = check_transformer_options(router_hidden, 1, 1)[0]
        self.temperature = _real(temperature, "temperature", strictly_positive=True)
        self.lambda_int = _real(lambda_int, "lambda_int")
        self.margin = _real(margin, "margin")
        self.lambda_route = _real(lambda_route, "lambda_route")
        if unique_inputs not in UNIQUE_INPUTS:
            raise InputError(
                f"expected one of {list(UNIQUE_INPUTS)}, got {unique_inputs!r}", argument="unique_inputs"
            )
        self.unique_inputs = unique_inputs
        count = len(self.modality_names)
        self.n_experts = count + 2
        self.inputs = TokenInputs(self.encoders, self.d_model)
        self.experts = nn.ModuleList(
            JointTransformer(self.d_model, self.heads, self.layers) for _ in range(self.n_experts)
        )
        self.router = nn.Sequential(
            nn.Linear(count * self.d_model, self.router_hidden),
            nn.ReLU(),
            nn.Linear(self.router_hidden, self.n_experts),
        )
        self.expert_outputs = nn.Identity()  # [B, E * C]: the ("expert", e) targets
        self.routing_weights = nn.Identity()  # [B, E]: the ("routing", e) targets
        self.latent_dim = count * self.d_model
        # Defined last: the last nn.Linear is the head TorchAdapter reads the penultimate features from.
        self.head = nn.Linear(self.n_experts * (self.latent_dim + 1), self.num_classes, bias=False)
        bound = 1.0 / math.sqrt(self.latent_dim + 1)  # each expert's head initialised as its own Linear
        nn.init.uniform_(self.head.weight, -bound, bound)
        self.token_spans: dict[str, TokenSpan] = {}
        self._interaction: Tensor | None = None
        self._routing_state: tuple[Tensor, Tensor, Tensor] | None = None

    # -- the forward pass ------------------------------------------------------------------------------
    def forward(self, **inputs: Tensor) -> Tensor:
        check_inputs(self, inputs)
        parts = self.inputs.per_modality(self.encoders, inputs)
        latent = self._latent(parts)
        expert_logits = self._expert_logits(latent)
        self.expert_outputs(expert_logits.flatten(1))
        log_weights = self._log_routing(parts)
        weights = self.routing_weights(log_weights.exp())
        phi = torch.cat([weights[..., None] * latent, weights[..., None]], dim=-1).flatten(1)
        logits = self.head(phi)
        if self.training and self.lambda_int > 0:
            self._interaction = self.lambda_int * self._interaction_loss(parts, expert_logits)
        if self.training and self.lambda_route > 0:
            self._routing_state = (
                self._unimodal_logits(parts, expert_logits),
                log_weights,
                logits.detach().argmax(-1),
            )
        return logits

    def _latent(self, parts: Parts) -> Tensor:
        """Every expert's pooled representation ``z_e`` -> ``[B, E, M d_model]``."""
        tokens, valid, self.token_spans = self.inputs.join(parts)
        return torch.stack([self._expert_latent(e, tokens, valid) for e in range(self.n_experts)], dim=1)

    def _expert_latent(self, expert: int, tokens: Tensor, valid: Tensor) -> Tensor:
        """Expert ``e``'s ``z_e`` from the joint sequence (a unique expert of ``unique_inputs="own"`` with
        every other modality's tokens marked invalid)."""
        if self.unique_inputs == "own" and expert < len(self.modality_names):
            own = self.token_spans[self.modality_names[expert]]
            keep = torch.zeros_like(valid)
            keep[:, own.start : own.stop] = True
            valid = valid & keep
        return self.experts[expert](tokens, valid, self.token_spans)

    def _expert_logits(self, latent: Tensor) -> Tensor:
        """``W_e z_e + b_e`` for every expert -> ``[B, E, C]`` (the blocks of the mixture head)."""
        weight = self.head.weight.view(self.num_classes, self.n_experts, self.latent_dim + 1)
        return torch.einsum("bed,ced->bec", latent, weight[..., :-1]) + weight[..., -1].T

    def _log_routing(self, parts: Parts) -> Tensor:
        pooled = torch.cat([masked_mean(tokens, valid) for tokens, valid, _ in parts], dim=1)
        return torch.log_softmax(self.router(pooled) / self.temperature, dim=-1)

    def _unimodal_logits(self, parts: Parts, clean: Tensor) -> Tensor:
        """Each unique expert's logits seeing its own modality alone (the others' tokens invalid):
        ``[B, M, C]`` (``unique_inputs="own"``: its clean logits)."""
        count = len(parts)
        if self.unique_inputs == "own":
            return clean[:, :count]
        alone = []
        for i in range(count):
            only = [p if j == i else (p[0], torch.zeros_like(p[1]), p[2]) for j, p in enumerate(parts)]
            tokens, valid, self.token_spans = self.inputs.join(only)
            alone.append(self._expert_logits_of(i, self._expert_latent(i, tokens, valid)))
        self.token_spans = self.inputs.join(parts)[2]  # restore the clean input's spans
        return torch.stack(alone, dim=1)

    def _expert_logits_of(self, expert: int, latent: Tensor) -> Tensor:
        """``W_e z_e + b_e`` of one expert from its ``z_e [B, M d_model]``."""
        weight = self.head.weight.view(self.num_classes, self.n_experts, self.latent_dim + 1)[:, expert]
        return latent @ weight[:, :-1].T + weight[:, -1]

    def _interaction_loss(self, parts: Parts, clean: Tensor) -> Tensor:
        """I2MoE's interaction losses (module docstring) on the expert logits, before ``lambda_int``."""
        count = len(parts)
        perturbed = []
        for j in range(count):
            noisy = list(parts)
            tokens, valid, grid = parts[j]
            noisy[j] = (torch.randn_like(tokens), valid, grid)
            perturbed.append(self._expert_logits(self._latent(noisy)))
        self._latent(parts)  # restore token_spans of the clean input
        total = clean.new_zeros(())
        for i in range(count):
            anchor, negative = clean[:, i], perturbed[i][:, i]
            positives = [perturbed[j][:, i] for j in range(count) if j != i]
            total = (
                total
                + torch.stack(
                    [F.triplet_margin_loss(anchor, p, negative, margin=self.margin, p=2) for p in positives]
                ).mean()
            )
        synergy, redundancy = count, count + 1
        total = (
            total
            + torch.stack(
                [F.cosine_similarity(clean[:, synergy], h[:, synergy], dim=-1).mean() for h in perturbed]
            ).mean()
        )
        unchanged = [F.cosine_similarity(clean[:, redundancy], h[:, redundancy], dim=-1) for h in perturbed]
        total = total + torch.stack([(1 - cosine).mean() for cosine in unchanged]).mean()
        return total / self.n_experts

    def regularisation(self, labels: Tensor | None = None) -> Tensor | None:
        """The interaction term ``lambda_int (...) / (M + 2)`` plus the routing term ``lambda_route (...)``
        of the last training-mode forward pass (then forgotten), or None (evaluation mode, both weights 0).

        ``labels`` (the batch's classes; the trainer passes them) define unimodal sufficiency; without them
        the mixture's own predicted classes stand in."""
        terms = [] if self._interaction is None else [self._interaction]
        if self._routing_state is not None:
            alone, log_weights, predicted = self._routing_state
            target = predicted if labels is None else labels.to(predicted.device)
            terms.append(self.lambda_route * routing_loss(alone, log_weights, target, self.num_classes))
        self._interaction = self._routing_state = None
        return torch.stack(terms).sum() if terms else None

    # -- explaining experts ----------------------------------------------------------------------------
    def expert_names(self) -> list[str]:
        return [f"unique:{name}" for name in self.modality_names] + ["synergy", "redundancy"]

    def check_expert(self, expert: int) -> int:
        if isinstance(expert, bool) or not isinstance(expert, int) or not 0 <= expert < self.n_experts:
            raise InputError(
                f"expert index {expert!r} is out of range; this model has {self.n_experts} experts "
                f"(0 <= e < {self.n_experts}: {self.expert_names()})",
                argument="expert",
            )
        return expert

    def expert_logits(self, **inputs: Tensor) -> Tensor:
        """Every expert's logits ``[B, E, C]`` (no routing)."""
        check_inputs(self, inputs)
        return self._expert_logits(self._latent(self.inputs.per_modality(self.encoders, inputs)))

    def routing(self, **inputs: Tensor) -> Tensor:
        """The routing weights ``[B, E]`` (rows sum to 1)."""
        check_inputs(self, inputs)
        return self._log_routing(self.inputs.per_modality(self.encoders, inputs)).exp()

    def expert_view(self, expert: int) -> ExpertView:
        return ExpertView(self, self.check_expert(expert))

    def attention_stacks(self) -> list[list[MultiHeadAttention]]:
        return [cast(JointTransformer, expert).attention_layers() for expert in self.experts]

    def config(self) -> dict[str, Any]:
        config = super().config()
        del config["hidden"]
        return config | {
            "d_model": self.d_model,
            "heads": self.heads,
            "layers": self.layers,
            "router_hidden": self.router_hidden,
            "temperature": self.temperature,
            "lambda_int": self.lambda_int,
            "margin": self.margin,
            "lambda_route": self.lambda_route,
            "unique_inputs": self.unique_inputs,
        }


class ExpertView(nn.Module):
    """One expert of an :class:`FLI2MoE` as a classifier of its own: ``forward`` returns expert ``e``'s
    logits; the expert's pooled representation is the input of ``head`` (an identity), so the penultimate
    features are ``z_e``."""

    def __init__(self, model: FLI2MoE, expert: int) -> None:
        super().__init__()
        self.model, self.expert = model, model.check_expert(expert)
        self.latent = nn.Identity()

    def forward(self, **inputs: Tensor) -> Tensor:
        check_inputs(self.model, inputs)
        model = self.model
        parts = model.inputs.per_modality(model.encoders, inputs)
        tokens, valid, model.token_spans = model.inputs.join(parts)
        latent = self.latent(model._expert_latent(self.expert, tokens, valid))
        return model._expert_logits_of(self.expert, latent)

    @property
    def token_spans(self) -> dict[str, TokenSpan]:
        return self.model.token_spans

    def attention_stacks(self) -> list[list[MultiHeadAttention]]:
        return [cast(JointTransformer, self.model.experts[self.expert]).attention_layers()]

    def embedding_modules(self) -> dict[str, str]:
        return {name: f"model.{module}" for name, module in self.model.embedding_modules().items()}

    def second_order(self) -> Any:
        return self.model.second_order()


def routing_loss(alone: Tensor, log_weights: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``CE_sufficiency + CE_routing`` of ``lambda_route`` (module docstring).

    Args:
        alone: ``[B, M, C]`` each unique expert's logits seeing its own modality alone.
        log_weights: ``[B, M + 2]`` log routing weights.
        target: ``[B]`` the classes the unimodal experts should give (the labels in training).
        num_classes: ``C``.
    """
    count = alone.shape[1]
    sufficiency = torch.stack([F.cross_entropy(alone[:, i], target) for i in range(count)]).mean()
    agreement = torch.softmax(alone.detach(), dim=-1).gather(2, target[:, None, None].expand(-1, count, 1))
    routing = -(interaction_type_target(agreement[..., 0], num_classes) * log_weights).sum(-1).mean()
    return sufficiency + routing


def interaction_type_target(agreement: Tensor, num_classes: int) -> Tensor:
    """The routing target of ``lambda_route`` from how far each modality alone gives the target class.

    Args:
        agreement: ``[B, M]``, the probability unique expert ``i`` (seeing modality ``i`` alone) gives the
            target class (the label in training).
        num_classes: ``C``; chance agreement is ``1 / C``.

    Returns:
        ``[B, M + 2]`` rows summing to 1, in expert order: unique ``i`` = ``s_i prod_{j != i} (1 - s_j)``,
        synergy = ``prod_i (1 - s_i)``, redundancy = ``1 -`` the others, with the sufficiency
        ``s_i = clip((agreement_i - 1/C) / (1 - 1/C), 0, 1)``.
    """
    chance = 1.0 / num_classes
    sufficient = ((agreement - chance) / (1.0 - chance)).clamp(0.0, 1.0)
    missing = 1.0 - sufficient
    count = sufficient.shape[1]
    unique = torch.stack(
        [sufficient[:, i] * missing[:, [j for j in range(count) if j != i]].prod(1) for i in range(count)],
        dim=1,
    )
    synergy = missing.prod(1, keepdim=True)
    redundancy = (1.0 - unique.sum(1, keepdim=True) - synergy).clamp(min=0.0)
    return torch.cat([unique, synergy, redundancy], dim=1)


def _real(value: float, argument: str, strictly_positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"expected a finite number, got {value!r}", argument=argument)
    if value < 0 or (strictly_positive and value == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise InputError(f"expected a number {bound}, got {value!r}", argument=argument)
    return float(value)
