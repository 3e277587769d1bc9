"""Human studies (MultiViz section 3): the assignment, Krippendorff's alpha, the study server (TestClient
and a real browser) and ``multiviz study report``."""

from __future__ import annotations

import math
import random
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from multiviz.dashboard.study import (
    SETTINGS,
    assignment,
    krippendorff_alpha_nominal,
    save_annotation,
    study_report,
)
from multiviz.errors import InputError

N = None
#: Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 coders, 12 units,
#: nominal values with missing data; the paper's nominal alpha is 0.743.
WORKED = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]


def test_alpha_reproduces_krippendorffs_worked_example() -> None:
    assert krippendorff_alpha_nominal(WORKED) == pytest.approx(0.743, abs=5e-4)
    assert math.isnan(krippendorff_alpha_nominal([[1, 1, 1], [1, 1, 1]]))  # no variation: undefined
    assert krippendorff_alpha_nominal([[1, 2, 1, 2], [1, 2, 1, 2]]) == 1.0
    assert math.isnan(krippendorff_alpha_nominal([[1, N], [N, 2]]))  # no unit has two values


def test_alpha_agrees_with_the_krippendorff_package() -> None:
    krippendorff = pytest.importorskip("krippendorff")
    import numpy as np

    rng = random.Random(0)
    for trial in range(30):
        coders, units, values = rng.randint(2, 5), rng.randint(3, 25), rng.randint(2, 5)
        data = [
            [None if rng.random() < 0.2 else rng.randrange(values) for _ in range(units)]
            for _ in range(coders)
        ]
        ours = krippendorff_alpha_nominal(data)
        array = np.array([[np.nan if v is None else v for v in row] for row in data], dtype=float)
        try:
            theirs = krippendorff.alpha(reliability_data=array, level_of_measurement="nominal")
        except (ValueError, ZeroDivisionError):
            assert math.isnan(ours), trial
            continue
        if math.isnan(theirs):
            assert math.isnan(ours), trial
        else:
            assert ours == pytest.approx(theirs, abs=1e-9), trial
    array = np.array([[np.nan if v is None else v for v in row] for row in WORKED], dtype=float)
    assert krippendorff_alpha_nominal(WORKED) == pytest.approx(
        krippendorff.alpha(reliability_data=array, level_of_measurement="nominal"), abs=1e-12
    )


@pytest.mark.parametrize("study", sorted(SETTINGS))
def test_each_annotator_sees_each_item_once_in_a_latin_square(study: str) -> None:
    items = [(p, -1) for p in range(13)]
    settings = SETTINGS[study]
    for annotator in ("alice", "bob", "carol", "dan"):
        plan = assignment(items, study, annotator, seed=3)
        assert sorted(item for item, _ in plan) == items  # every item exactly once
        counts = Counter(setting for _, setting in plan)
        assert set(counts) <= set(settings) and max(counts.values()) - min(counts.values()) <= 1
        assert plan == assignment(items, study, annotator, seed=3)  # seeded: the same on every reload
    assert assignment(items, study, "alice", 3) != assignment(items, study, "bob", 3)


def test_annotations_are_checked_before_they_are_stored(tmp_path: Path) -> None:
    good: dict[str, Any] = {"study": "errors", "annotator": "ann", "point_id": 1, "feature": -1,
                            "setting": "U+C+R_l+R_g", "answer": "prediction", "confidence": 3,
                            "seconds": 2.0}  # fmt: skip
    for change, argument in (
        ({"study": "taste"}, "study"),
        ({"annotator": "<script>"}, "annotator"),
        ({"setting": "U"}, "setting"),
        ({"answer": "the model"}, "answer"),
        ({"confidence": 6}, "confidence"),
        ({"seconds": math.nan}, "seconds"),
    ):
        with pytest.raises(InputError) as error:
            save_annotation(tmp_path, **(good | change))
        assert error.value.argument == argument
    assert not (tmp_path / "run.sqlite").exists()  # nothing was written


@pytest.fixture(scope="module")
def study_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("study") / "run"
    shutil.copytree(small_run, copy)
    return copy


def test_the_study_server_stores_an_annotation_and_hides_the_rest(study_run: Path) -> None:
    from fastapi.testclient import TestClient

    from multiviz.dashboard import create_app

    client = TestClient(
        create_app(study_run, study="errors", annotator="bea", load_inputs=False),
        base_url="http://127.0.0.1:8000",
    )
    for path in ("/", "/point?id=0", "/model", "/feature?j=1"):  # every other page would reveal answers
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "study"
    page = client.get("/study")
    assert page.status_code == 200 and "Error categorisation" in page.text and "0 of " in page.text
    point = int(page.text.split('name="point" value="')[1].split('"')[0])
    form = {"point": str(point), "feature": "-1", "setting": "U+C+R_l+R_g", "shown": "0",
            "answer": "cross-modal interaction", "confidence": "4"}  # fmt: skip
    foreign = client.post("/study", data=form, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert client.post("/study", data=form | {"confidence": "9"}).status_code == 400
    saved = client.post("/study", data=form, follow_redirects=False)
    assert saved.status_code == 303
    assert "1 of " in client.get("/study").text
    with sqlite3.connect(study_run / "run.sqlite") as connection:
        row = connection.execute(
            "SELECT annotator, answer, confidence, seconds FROM dashboard_study"
        ).fetchone()
        assert row[:3] == ("bea", "cross-modal interaction", 4) and row[3] > 0
        assert study_report(connection)["errors"][0]["annotations"] == 1


def test_a_simulation_in_the_browser_is_counted_by_the_report(
    study_run: Path, browser: Any, tmp_path: Path
) -> None:
    from tests.dashboard.conftest import Server

    from multiviz.cli import app
    from multiviz.dashboard import create_app

    server = Server(create_app(study_run, study="simulation", annotator="alice"))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        page.goto(server.url)  # redirected to the study
        assert page.url.endswith("/study") and "0 of 6 done" in page.inner_text("h1")
        setting = page.inner_text(".setting")
        page.select_option("select[name=answer]", index=1)  # the first class
        page.check("input[name=confidence][value='5']")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "1 of 6 done" in page.inner_text("h1")
        assert problems == []
    finally:
        context.close()
        server.stop()
    with sqlite3.connect(study_run / "run.sqlite") as connection:
        simulation = study_report(connection)["simulation"]
    assert [(e["setting"], e["annotations"], e["mean_confidence"]) for e in simulation] == [(setting, 1, 5.0)]
    csv = tmp_path / "annotations.csv"
    result = CliRunner().invoke(app, ["study", "report", str(study_run), "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    assert "simulation" in result.output and setting in result.output
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("study,annotator,point_id") and any(",alice," in line for line in lines[1:])
