"""A run of vector modalities (the DIME synthetic MLP, untrained): no image, no text; the overview draws
bars, the data-set page has no thumbnail column, and the report is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.runs.conftest import fast_config, synthetic_checkpoint


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from multiviz.runs import explain

    folder = tmp_path_factory.mktemp("vector-run")
    checkpoint = synthetic_checkpoint(folder / "mlp")
    config = fast_config(checkpoint, points={"count": 4, "rule": "first"})
    return explain(config, folder / "run", show_progress=False)


@pytest.fixture(scope="module")
def vector_client(vector_run: Path) -> Any:
    from fastapi.testclient import TestClient

    from multiviz.dashboard import create_app

    return TestClient(create_app(vector_run), base_url="http://127.0.0.1:8000")


def test_vector_modalities_are_drawn_as_bars(vector_client: Any) -> None:
    page = vector_client.get("/point?id=0")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') >= 2 and 'figure class="heatmap"' not in page.text
    assert "live second-order query" not in page.text  # no text x image pair to query
    table = vector_client.get("/")
    assert table.status_code == 200 and "thumb?point" not in table.text
    assert vector_client.get("/model").status_code == 200


def test_report_of_a_vector_run(vector_run: Path, tmp_path: Path) -> None:
    from multiviz.dashboard.report import write_report

    written = write_report(vector_run, tmp_path / "report")
    assert written.pages >= 5 and (tmp_path / "report" / "point-0.html").is_file()
