"""The Ip-norm toy table, fast: one setting, one normalisation, one seed, a small data set."""

import pytest

from multiviz.evaluation.ip_norm_toy import ToyRun, ToyTable, run_toy, toy_markdown

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_small_toy_run_learns_view_one_and_renders_its_row():
    table = run_toy(["v1-2views"], ["ibn"], (0,), sizes=(1500, 10, 300), epochs=8, lam=3e-2)
    (run,) = table.runs
    assert set(run.relevance) == {"1", "2", "12"} and sum(run.relevance.values()) == pytest.approx(1.0)
    assert run.test_accuracy > 0.8  # the Bayes accuracy is 0.95 at p_motif = 0.9
    assert run.relevance["1"] > 5 * run.relevance["2"]  # the label's view beats the noise view
    assert run.true_mass == run.relevance["1"] and run.inflated_mass == run.relevance["12"]
    lines = toy_markdown(table).splitlines()
    assert lines[0].startswith("| setting | rule | norm | 1 | 2 | 3 | 12 | 13 | 23 | 123 |")
    cells = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert cells[:3] == ["v1-2views", "y = c1", "IBN"] and cells[3:10].count("-") == 4  # 3, 13, 23, 123


def test_the_table_averages_seeds_and_reports_the_worst_true_mass():
    def run(seed, share, constants):
        relevance = dict.fromkeys(("1", "2", "3", "12", "13", "23", "123"), 0.0) | {
            "1": share,
            "123": 1 - share,
        }
        return ToyRun("v1", "vbn", seed, relevance, 0.9, share, 1 - share, constants)

    row = toy_markdown(ToyTable([run(0, 1.0, None), run(1, 0.5, 0.8)])).splitlines()[2]
    assert "| 0.75 |" in row and row.endswith("| 0.750 (0.500) | 0.250 | 0.80 | 0.900 |")


def test_lower_order_share_tells_constants_from_interactions():
    """A raw 12 block with view 2's features made constant is a function of view 1 alone (share 1); an
    IBN block of independent views is a pure interaction (share 0), up to Monte Carlo error."""
    import torch

    from multiviz.data.motifs import make_motifs
    from multiviz.evaluation.ip_norm_toy import lower_order_share, toy_model

    test = make_motifs("v1-2views", sizes=(1, 1, 300)).split("test")
    views = {k: v for k, v in test.items() if k != "label"}
    torch.manual_seed(0)
    raw, ibn = toy_model(2, "none", lam=0.0, p=1.0), toy_model(2, "ibn", lam=0.0, p=1.0)
    with torch.no_grad():
        layer = raw.encoders["view2"].project[0]
        layer.weight.zero_()
        layer.bias.fill_(1.0)  # view 2's features: the constant 1
        for _ in range(60):  # running statistics of the IBN model
            ibn.train()(**views)
    assert lower_order_share(raw.eval(), test, [(0, 1)]) == pytest.approx(1.0, abs=0.01)
    assert lower_order_share(ibn.eval(), test, [(0, 1)]) == pytest.approx(0.0, abs=0.05)
