"""Vector BatchNorm and Iterative BatchNorm (Ledent et al. poster): batch moments, the Psi centring against
closed forms and independent float64 einsum computations (the layout of every term in the block's own
index order), decorrelation from lower-order products, the reduction to VBN at order 2, running statistics."""

import itertools
import math

import pytest
import torch

from multiviz import InputError
from multiviz.models.batchnorm import IterativeBatchNorm, VectorBatchNorm, kronecker_rows

EPS = 1e-5


def features(n, dims, seed=0, offset=2.0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(n, d, generator=g, dtype=torch.float64)
        * torch.rand(d, generator=g, dtype=torch.float64)
        * 3
        + offset * torch.rand(d, generator=g, dtype=torch.float64)
        for d in dims
    ]


def test_vbn_gives_mean_zero_and_mean_squared_norm_one_per_batch():
    x = features(64, [5])[0]
    norm = VectorBatchNorm(5).double().train()
    out = norm(x)
    var = float((x - x.mean(0)).pow(2).sum(1).mean())
    assert float(out.mean(0).abs().max()) < 1e-14
    assert float(out.pow(2).sum(1).mean()) == pytest.approx(var / (var + EPS), rel=1e-13)
    assert float(out.pow(2).sum(1).mean()) == pytest.approx(1.0, abs=1e-5)
    # one scalar per block: the coordinates keep their relative scales
    assert torch.allclose(out * math.sqrt(var + EPS), x - x.mean(0), rtol=0, atol=1e-12)


def test_vbn_evaluates_with_its_running_statistics():
    x, y = features(32, [4], seed=1)[0], features(16, [4], seed=2)[0]
    norm = VectorBatchNorm(4, momentum=0.1).double().train()
    norm(x)
    mean, unbiased = x.mean(0), (x - x.mean(0)).pow(2).sum(1).mean() * 32 / 31
    assert torch.allclose(norm.running_mean, 0.1 * mean, rtol=0, atol=1e-15)
    assert float(norm.running_var) == pytest.approx(0.9 + 0.1 * float(unbiased), rel=1e-14)
    norm.eval()
    expected = (y - norm.running_mean) / torch.sqrt(norm.running_var + EPS)
    assert torch.equal(norm(y), expected)
    assert float(norm(y).mean(0).abs().max()) > 0.01  # not the batch's own statistics


def psi_two(f1, f2):
    """(f1 - E f1) x (f2 - E f2) - E[(f1 - E f1) x (f2 - E f2)], flattened, float64 einsum."""
    z1, z2 = f1 - f1.mean(0), f2 - f2.mean(0)
    t = torch.einsum("bi,bj->bij", z1, z2)
    return (t - t.mean(0)).reshape(len(f1), -1)


def rms_normalised(block):
    return block / torch.sqrt(block.pow(2).sum(1).mean() + EPS)


def test_ibn_of_two_modalities_is_the_closed_form_psi():
    f1, f2 = features(40, [3, 4])
    ibn = IterativeBatchNorm([3, 4], [(0,), (1,), (0, 1)]).double().train()
    out = ibn([f1, f2])
    assert torch.allclose(out[2], rms_normalised(psi_two(f1, f2)), rtol=0, atol=1e-13)
    assert torch.allclose(out[0], rms_normalised(f1 - f1.mean(0)), rtol=0, atol=1e-14)  # singletons: VBN


def test_three_modality_block_lays_out_every_term_in_its_own_index_order():
    f1, f2, f3 = features(30, [2, 3, 4])
    z1, z2, z3 = (f - f.mean(0) for f in (f1, f2, f3))
    n = 30
    e12 = torch.einsum("bi,bj->ij", z1, z2) / n
    e13 = torch.einsum("bi,bk->ik", z1, z3) / n
    e23 = torch.einsum("bj,bk->jk", z2, z3) / n
    t = torch.einsum("bi,bj,bk->bijk", z1, z2, z3)
    lower = torch.einsum("ij,bk->bijk", e12, z3) + torch.einsum("ik,bj->bijk", e13, z2)
    lower = lower + torch.einsum("jk,bi->bijk", e23, z1)
    expected = (t - t.mean(0) - lower).reshape(n, -1)
    ibn = IterativeBatchNorm([2, 3, 4], [(0, 1, 2)]).double().train()
    assert torch.allclose(ibn([f1, f2, f3])[0], rms_normalised(expected), rtol=0, atol=1e-13)
    # The published slip, E(z1 x z3) x z2 flattened in (i, k, j) order, gives another block: this test
    # would catch it.
    wrong_13 = torch.einsum("ik,bj->bikj", e13, z2).reshape(n, 2, 3, 4)
    wrong = (t - t.mean(0) - lower + torch.einsum("ik,bj->bijk", e13, z2) - wrong_13).reshape(n, -1)
    assert not torch.allclose(rms_normalised(wrong), rms_normalised(expected), atol=1e-3)


def literal_psi(raw, block):
    """The seed's formula on the raw features: sum over collections of disjoint non-empty subsets s^k of
    (-1)^l l! prod_{m outside} f^m prod_k E[prod_{m in s^k} f^m], each term as an einsum in block order."""
    n, letters = len(raw[0]), "ijkl"[: len(block)]

    def product(members, batch):
        spec = ",".join(f"b{letters[block.index(m)]}" for m in members)
        value = torch.einsum(
            f"{spec}->b{''.join(letters[block.index(m)] for m in members)}", *[raw[m] for m in members]
        )
        return value if batch else value.mean(0)

    candidates = [s for r in range(1, len(block) + 1) for s in itertools.combinations(block, r)]
    total = torch.zeros(n, *[raw[m].shape[1] for m in block], dtype=torch.float64)
    for count in range(len(block) + 1):
        for collection in itertools.combinations(candidates, count):
            used = [m for s in collection for m in s]
            if len(used) != len(set(used)):
                continue
            rest = [m for m in block if m not in used]
            term = product(rest, True) if rest else torch.ones(n, dtype=torch.float64)
            term = term.reshape(n, *[raw[m].shape[1] if m in rest else 1 for m in block])
            for s in collection:
                term = term * product(list(s), False).reshape(
                    1, *[raw[m].shape[1] if m in s else 1 for m in block]
                )
            total = total + (-1) ** count * math.factorial(count) * term
    return total.reshape(n, -1)


def test_ibn_matches_the_literal_formula_with_its_factorials_for_four_modalities():
    dims = [2, 3, 2, 2]
    raw = features(25, dims, seed=3, offset=3.0)
    blocks = [(0, 1), (0, 1, 2), (0, 1, 2, 3)]
    out = IterativeBatchNorm(dims, blocks).double().train()(raw)
    for block, value in zip(blocks, out, strict=True):
        assert torch.allclose(value, rms_normalised(literal_psi(raw, list(block))), rtol=0, atol=1e-12)


def test_with_independent_modalities_a_block_is_uncorrelated_with_products_over_strict_subsets():
    g = torch.Generator().manual_seed(4)
    n = 20000
    raw = [
        torch.rand(n, 2, generator=g, dtype=torch.float64).pow(2) * 3 + 1 for _ in range(3)
    ]  # skewed, means far from 0
    out = IterativeBatchNorm([2, 2, 2], [(0, 1), (0, 1, 2)]).double().train()(raw)
    lower = [
        raw[0][:, 0],
        raw[1][:, 1],
        raw[2][:, 0],
        raw[0][:, 1] * raw[1][:, 0],
        raw[0][:, 0] * raw[2][:, 1],
        raw[1][:, 1] * raw[2][:, 0],
    ]

    def correlations(block, candidates):
        return torch.corrcoef(torch.cat([block, torch.stack(candidates, 1)], 1).T)[
            : block.shape[1], block.shape[1] :
        ]

    assert float(correlations(out[1], lower).abs().max()) < 0.04  # 1/sqrt(n) = 0.007
    assert float(correlations(out[0], lower[:2]).abs().max()) < 0.04
    standardised = kronecker_rows(raw)  # plain batch norm of the raw product keeps lower-order terms
    standardised = (standardised - standardised.mean(0)) / standardised.std(0)
    assert float(correlations(standardised, lower).abs().max()) > 0.3


def test_order_two_reduces_to_vbn_of_each_modality():
    f1, f2 = features(50, [3, 2], seed=5)
    ibn = IterativeBatchNorm([3, 2], [(0,), (1,), (0, 1)], momentum=0.3).double().train()
    vbn = [
        VectorBatchNorm(3, momentum=0.3).double().train(),
        VectorBatchNorm(2, momentum=0.3).double().train(),
    ]
    out, v1, v2 = ibn([f1, f2]), vbn[0](f1), vbn[1](f2)
    assert torch.allclose(out[0], v1, rtol=0, atol=1e-14) and torch.allclose(out[1], v2, rtol=0, atol=1e-14)
    # The 12 block is VBN(f1) x VBN(f2) times one positive scalar plus a constant (absorbed by the bias):
    # a = s1 s2 / r12 and c = -E[z1 x z2] / r12, with s_m the VBN scales and r12 the block's RMS.
    product = kronecker_rows([v1, v2])
    s1, s2 = (torch.sqrt((f - f.mean(0)).pow(2).sum(1).mean() + EPS) for f in (f1, f2))
    psi = psi_two(f1, f2)
    r12 = torch.sqrt(psi.pow(2).sum(1).mean() + EPS)
    constant = -kronecker_rows([f1 - f1.mean(0), f2 - f2.mean(0)]).mean(0) / r12
    assert torch.allclose(out[2], s1 * s2 / r12 * product + constant, rtol=0, atol=1e-13)
    ibn.eval(), vbn[0].eval(), vbn[1].eval()
    x1, x2 = features(7, [3, 2], seed=6)
    evaluated = ibn([x1, x2])
    assert torch.allclose(evaluated[0], vbn[0](x1), rtol=0, atol=1e-14)  # same running statistics too


def test_independent_modalities_make_the_order_two_block_the_product_of_vbns():
    g = torch.Generator().manual_seed(7)
    f1, f2 = (torch.rand(40000, 2, generator=g, dtype=torch.float64) * 2 + 1 for _ in range(2))
    out = IterativeBatchNorm([2, 2], [(0,), (1,), (0, 1)]).double().train()([f1, f2])
    assert torch.allclose(out[2], kronecker_rows(out[:2]), rtol=0, atol=0.05)


def test_ibn_evaluates_with_its_running_statistics():
    raw = features(20, [2, 3, 2], seed=8)
    ibn = IterativeBatchNorm([2, 3, 2], [(0,), (0, 1), (0, 1, 2)], momentum=1.0).double().train()
    trained = ibn(raw)
    ibn.eval()
    evaluated = ibn(raw)  # same means and moments; the mean square with the unbiased factor 20 / 19
    for block, a, b in zip(ibn.blocks, trained, evaluated, strict=True):
        square = float(ibn.get_buffer("mean_square_" + "_".join(map(str, block)))) * 19 / 20
        assert torch.allclose(b, a * math.sqrt((square + EPS) / (square * 20 / 19 + EPS)), rtol=0, atol=1e-13)
    assert torch.equal(ibn([x[:1] for x in raw])[2], evaluated[2][:1])  # rows do not interact in eval


def test_a_training_batch_of_one_row_is_refused_by_both_norms():
    with pytest.raises(
        InputError, match="argument 'batch'.*Vector BatchNorm needs a batch of at least 2 rows"
    ):
        VectorBatchNorm(3).train()(torch.randn(1, 3))
    with pytest.raises(InputError, match="argument 'batch'.*Iterative BatchNorm needs a batch of at least 2"):
        IterativeBatchNorm([2, 2], [(0, 1)]).train()([torch.randn(1, 2), torch.randn(1, 2)])
