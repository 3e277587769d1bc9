"""Ip-norm weighted fusion (Ledent et al. poster; Kloft, JMLR 2011): the block-norm exponent and beta in
closed form, the convex equivalence of explicit beta and the block-norm regulariser, the zoo models (blocks,
memory guard, checkpoints, the trainer's regulariser hook) and their bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multiviz import InputError, Modality, TorchAdapter
from multiviz.models import MODELS, IpNormFusion, IpNormTensorFusion, build_model, subset_relevance
from multiviz.models.ip_norm import beta_from_norms, block_exponent, block_norm_penalty, subsets
from multiviz.results import Relevance, result_from_dict
from multiviz.training import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENCODERS = {
    "a": {"type": "vector_mlp", "in_dim": 3, "hidden": [5], "out_dim": 3},
    "b": {"type": "vector_mlp", "in_dim": 2, "hidden": [4], "out_dim": 2},
    "c": {"type": "vector_mlp", "in_dim": 4, "hidden": [4], "out_dim": 4},
}


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(n, 3, generator=g),
        "b": torch.randn(n, 2, generator=g),
        "c": torch.randn(n, 4, generator=g),
    }


def test_exponent_and_beta_follow_kloft():
    assert block_exponent(1) == 1.0 and block_exponent(3) == 1.5 and block_exponent("inf") == 2.0
    norms = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    assert torch.allclose(beta_from_norms(norms, 1), norms / norms.sum(), rtol=0, atol=1e-15)  # p = 1
    assert torch.equal(beta_from_norms(norms, math.inf), torch.ones(3, dtype=torch.float64))
    for p in (1.0, 1.5, 4.0):
        beta = beta_from_norms(norms, p)
        assert float(beta.pow(p).sum()) == pytest.approx(1.0, abs=1e-14)  # ||beta||_p = 1
        # beta is the minimiser of sum ||W_I||^2 / beta_I over ||beta||_p <= 1, and the minimum is the
        # block-norm penalty (sum ||W_I||^q)^(2/q): check against random feasible betas.
        value = float((norms**2 / beta).sum())
        assert value == pytest.approx(float(block_norm_penalty(norms, p)), rel=1e-13)
        g = torch.Generator().manual_seed(0)
        other = torch.rand(2000, 3, generator=g, dtype=torch.float64) + 1e-3
        other = other / other.pow(p).sum(1, keepdim=True).pow(1 / p)
        assert float((norms**2 / other).sum(1).min()) >= value * (1 - 1e-12)
    assert torch.isnan(beta_from_norms(torch.zeros(3), 2.0)).all()


def _fit(parameters, objective, iterations=400):
    optimiser = torch.optim.LBFGS(
        parameters,
        lr=1,
        max_iter=iterations,
        tolerance_grad=1e-13,
        tolerance_change=1e-16,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimiser.zero_grad()
        value = objective()
        value.backward()
        return value

    for _ in range(3):
        optimiser.step(closure)


@pytest.mark.parametrize(("p", "lam"), [(1.0, 0.01), (1.5, 0.05), (3.0, 0.05)])
def test_explicit_beta_and_the_block_norm_regulariser_reach_the_same_predictor_and_beta(p, lam):
    """Fixed features, logistic loss, float64. (A) explicit kernel weights: score
    sum_m sqrt(beta_m) <F_m, W_m> + b, penalty lam sum ||W_m||^2, beta = exp(u) / ||exp(u)||_p free on the
    p-sphere; (B) one linear model with the block-norm penalty lam (sum ||V_m||^q)^(2/q). Both reach the
    same predictor and the same beta (from B's blocks in closed form) to 1e-6. (Every block stays active
    at these lambdas: at a group-lasso zero block B is not smooth and LBFGS stalls short of 1e-6.)"""
    g = torch.Generator().manual_seed(0)
    dims, n = (3, 4, 2), 300
    features = [torch.randn(n, d, generator=g, dtype=torch.float64) for d in dims]
    truth = [
        torch.randn(d, generator=g, dtype=torch.float64) * s
        for d, s in zip(dims, (1.0, 0.6, 0.3), strict=True)
    ]
    score = sum(f @ w for f, w in zip(features, truth, strict=True))
    labels = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(score)).double()

    blocks = [torch.zeros(d, dtype=torch.float64, requires_grad=True) for d in dims]
    bias_b = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def block_norm_objective():
        logits = sum(f @ v for f, v in zip(features, blocks, strict=True)) + bias_b
        norms = torch.stack([torch.linalg.vector_norm(v) for v in blocks])
        return F.binary_cross_entropy_with_logits(logits, labels) + lam * block_norm_penalty(norms, p)

    with torch.no_grad():  # start away from 0, where ||V_m|| is not differentiable
        for v in blocks:
            v.fill_(0.1)
    _fit([*blocks, bias_b], block_norm_objective)

    weights = [torch.full((d,), 0.1, dtype=torch.float64, requires_grad=True) for d in dims]
    bias_a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    log_beta = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def explicit_beta():
        beta = log_beta.exp()
        return beta / beta.pow(p).sum().pow(1 / p)

    def explicit_objective():
        beta = explicit_beta()
        logits = sum(beta[m].sqrt() * (features[m] @ weights[m]) for m in range(3)) + bias_a
        penalty = sum(w.pow(2).sum() for w in weights)
        return F.binary_cross_entropy_with_logits(logits, labels) + lam * penalty

    _fit([*weights, bias_a, log_beta], explicit_objective)
    with torch.no_grad():
        beta = explicit_beta()
        predictor_a = sum(beta[m].sqrt() * (features[m] @ weights[m]) for m in range(3)) + bias_a
        predictor_b = sum(f @ v for f, v in zip(features, blocks, strict=True)) + bias_b
        closed_form = beta_from_norms(torch.stack([torch.linalg.vector_norm(v) for v in blocks]), p)
    assert float((predictor_a - predictor_b).abs().max()) < 1e-6
    assert float((beta - closed_form).abs().max()) < 1e-6
    with torch.no_grad():
        assert float(explicit_objective()) == pytest.approx(float(block_norm_objective()), abs=1e-10)
    assert float(closed_form.pow(p).sum()) == pytest.approx(1.0, abs=1e-12)


def test_blocks_are_the_subsets_in_table_order_and_the_head_splits_into_them():
    assert subsets(3, 3) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    model = IpNormTensorFusion(ENCODERS, 3)
    assert [b.shape[1] for b in model.normalised_blocks(model.encode(batch()))] == [3, 2, 4, 6, 12, 8, 24]
    weight = model.head.weight.detach()
    norms = torch.stack([weight[:, a:b].norm() for a, b in model.block_slices])
    assert torch.allclose(model.beta(), beta_from_norms(norms.double(), 1.0), rtol=0, atol=1e-15)
    late = IpNormFusion(ENCODERS, 3)
    assert late.blocks == [(0,), (1,), (2,)] and late.head.in_features == 9
    assert MODELS["ip_norm_fusion"] is IpNormFusion and MODELS["ip_norm_tensor_fusion"] is IpNormTensorFusion


def test_regularisation_is_lambda_times_encoder_weights_plus_the_block_norm():
    torch.manual_seed(0)
    model = IpNormTensorFusion(ENCODERS, 3, p=2.0, lam=0.3).double()
    lower = sum(float(w.detach().pow(2).sum()) for w in model.encoders.parameters() if w.dim() == 2)
    weight = model.head.weight.detach()
    norms = np.array([float(weight[:, a:b].norm()) for a, b in model.block_slices])
    q = 4 / 3
    expected = 0.3 * (lower + np.sum(norms**q) ** (2 / q))
    assert float(model.regularisation().detach()) == pytest.approx(expected, rel=1e-12)
    with torch.no_grad():
        model.head.weight.zero_()
    model.regularisation().backward()  # a block at zero has the subgradient 0, not NaN
    assert torch.isfinite(model.head.weight.grad).all()


def test_relevance_result_round_trips_and_checkpoints_rebuild_the_model(tmp_path):
    torch.manual_seed(0)
    model = IpNormTensorFusion(ENCODERS, 3, normalisation="ibn", p="inf")
    model.train()
    for seed in range(3):  # fill the running statistics
        model(**batch(seed=seed))
    modalities = [Modality(name, "vector") for name in ENCODERS]
    adapter = TorchAdapter(model, modalities)
    relevance = subset_relevance(adapter)
    assert relevance.labels[-1] == "a x b x c" and np.allclose(relevance.relevance, 1 / 7)  # p = inf
    again = result_from_dict(relevance.to_dict())
    assert isinstance(again, Relevance) and again == relevance and math.isinf(again.p)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "model", adapter))
    assert type(loaded.model) is IpNormTensorFusion and loaded.model.p == math.inf
    x = batch(seed=5)
    assert torch.equal(loaded.adapter.logits(x), adapter.logits(x))  # running statistics saved too
    with pytest.raises(InputError, match="argument 'model'"):
        subset_relevance(torch.nn.Linear(2, 2))


def test_the_trainer_adds_the_regulariser_to_the_loss(tmp_path):
    from multiviz.training import TrainConfig, fit

    dataset = {"name": "motifs", "setting": "v1-2views", "sizes": [64, 16, 16]}
    encoder = {"type": "sequence_cnn", "channels": 4, "kernel_size": 7, "out_dim": 3}
    norms = {}
    for lam in (0.0, 1.0):
        model = {"name": "ip_norm_fusion", "encoders": {"view1": encoder, "view2": encoder}, "num_classes": 2}
        config = TrainConfig(
            dataset=dataset, model=model | {"lam": lam}, epochs=4, batch_size=16, learning_rate=0.05
        )
        result = fit(config, tmp_path / str(lam), show_progress=False)
        norms[lam] = float(result.adapter.model.block_norms().detach().sum())
        assert load_checkpoint(tmp_path / str(lam)).model.lam == lam
    assert norms[1.0] < 0.5 * norms[0.0]  # the block-norm penalty shrank the classifier's blocks


@pytest.mark.parametrize("p", [0.5, -1, float("nan"), "two", True, None])
def test_p_outside_one_to_infinity_is_refused(p):
    with pytest.raises(InputError, match=r"argument 'p': expected p in \[1, inf\]"):
        IpNormFusion(ENCODERS, 3, p=p)


def test_bad_options_are_refused():
    with pytest.raises(InputError, match="argument 'hidden'"):
        IpNormFusion(ENCODERS, 3, hidden=[8])
    with pytest.raises(InputError, match="argument 'normalisation'"):
        IpNormFusion(ENCODERS, 3, normalisation="layer")
    with pytest.raises(InputError, match="argument 'lam'"):
        IpNormFusion(ENCODERS, 3, lam=-1.0)
    with pytest.raises(InputError, match="argument 'max_order'"):
        IpNormFusion(ENCODERS, 3, max_order=4)


def test_a_block_above_the_memory_limit_is_refused_with_its_size_and_a_projection():
    big = {
        name: {"type": "vector_mlp", "in_dim": 2, "hidden": [], "out_dim": 256} for name in ("x", "y", "z")
    }
    with pytest.raises(
        InputError,
        match=r"argument 'encoders'.*x x y x z has 256 \(x\) x 256 \(y\) x 256 \(z\) "
        r"= 16,777,216 entries per point.*max_block_size=65,536.*out_dim=40 for each gives 64,000",
    ):
        build_model("ip_norm_tensor_fusion", {"encoders": big, "num_classes": 2})
    assert IpNormTensorFusion(big, 2, max_order=1).blocks == [(0,), (1,), (2,)]  # late fusion fits


@pytest.mark.parametrize("normalisation", ["vbn", "ibn", "dbn"])
def test_a_training_batch_of_one_row_is_refused(normalisation):
    model = IpNormTensorFusion(ENCODERS, 3, normalisation=normalisation).train()
    with pytest.raises(InputError, match="argument 'batch'.*at least 2 rows in training mode.*got 1"):
        model(**batch(n=1))
    assert model.eval()(**batch(n=1)).shape == (1, 3)  # evaluation uses the running statistics


@pytest.mark.parametrize(("preset", "blocks"), [("easy-vqa-ipnorm", 2), ("easy-vqa-ibn", 3)])
def test_the_easy_vqa_presets_build_their_ip_norm_models(preset, blocks):
    from multiviz.training import TrainConfig

    section = dict(TrainConfig.from_preset(preset).model)
    assert section["encoders"]["question"]["type"] == "minilm"
    section["encoders"] |= {"question": {"type": "vector_mlp", "in_dim": 4, "out_dim": 32}}  # no MiniLM load
    model = build_model(section.pop("name"), section)
    assert isinstance(model, IpNormFusion) and len(model.blocks) == blocks and model.p == 1.0


@pytest.mark.parametrize("normalisation", ["vbn", "ibn", "dbn"])
def test_methods_work_through_the_adapter_and_the_fast_path_is_exact(normalisation):
    from multiviz import Capability, emap, gradient_x_input

    torch.manual_seed(0)
    model = IpNormTensorFusion(ENCODERS, 3, normalisation=normalisation).double().train()
    model(**{k: v.double() for k, v in batch(n=32).items()})  # running statistics
    adapter = TorchAdapter(model, [Modality(name, "vector") for name in ENCODERS])
    assert Capability.ENCODE in adapter.capabilities and not model.training
    x = {k: v.double() for k, v in batch(n=6, seed=1).items()}
    fast, plain = emap(adapter, x, fast_path=True), emap(adapter, x, fast_path=False)
    np.testing.assert_allclose(fast.unimodal_logits, plain.unimodal_logits, rtol=0, atol=1e-12)
    assert gradient_x_input(adapter, x, target=0)["a"].weights.shape == (6, 3)
