"""Re-running a registered U method on a point with edited parameters: the form comes from the method's
spec, the server checks the submitted values with the same spec before running anything."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from multiviz.dashboard.rerun import HIDDEN, form_fields, parse_form
from multiviz.errors import InputError
from multiviz.registry import get_method, list_methods


@pytest.mark.parametrize("name", [m.name for m in list_methods("U")])
def test_the_form_has_one_field_per_parameter_of_the_spec(name: str) -> None:
    schema = get_method(name).schema()
    fields = {f["name"]: f for f in form_fields(name)}
    for parameter, spec in schema.items():
        if parameter in HIDDEN or spec["type"] not in ("integer", "real", "options", "boolean", "text",
                                                        "names", "indices", "grid"):  # fmt: skip
            assert parameter not in fields
            continue
        assert fields[parameter]["type"] == spec["type"]
        assert spec["description"] in fields[parameter]["description"]


def test_submitted_strings_are_converted_and_checked_by_the_spec() -> None:
    form = {"n_samples": "50", "kernel_width": "0.5", "batch_size": "", "output": "probability",
            "modalities": "question, image"}  # fmt: skip
    assert parse_form("lime", form) == {
        "n_samples": 50,
        "kernel_width": 0.5,
        "batch_size": None,
        "output": "probability",
        "modalities": ["question", "image"],
    }
    for bad, argument in (
        ({"n_samples": "0"}, "n_samples"),
        ({"n_samples": "1e3"}, "n_samples"),
        ({"kernel_width": "nan"}, "kernel_width"),
        ({"kernel_width": "-1"}, "kernel_width"),
        ({"output": "logits"}, "output"),
        ({"show_progress": "on"}, "show_progress"),
        ({"nope": "1"}, "nope"),
    ):
        with pytest.raises(InputError) as error:
            parse_form("lime", bad)
        assert error.value.argument == argument
    with pytest.raises(InputError, match="stage-U method"):
        parse_form("dime", {})


@pytest.fixture(scope="module")
def rerun_client(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from fastapi.testclient import TestClient

    from multiviz.dashboard import create_app

    copy = tmp_path_factory.mktemp("rerun") / "run"
    shutil.copytree(small_run, copy)
    return TestClient(create_app(copy, load_inputs=False), base_url="http://127.0.0.1:8000")


def test_a_method_is_rerun_with_the_edited_parameters(rerun_client: Any) -> None:
    page = rerun_client.get("/point?id=0").text
    assert "rerun?id=0" in page  # the overview links to the form
    form = rerun_client.get("/rerun?id=0&method=gradient_x_input").text
    assert 'name="aggregation"' in form and 'name="show_progress"' not in form
    url = "/rerun?id=0&class=0&method=gradient_x_input"
    assert (
        rerun_client.post(url, data={"aggregation": "l2"}, headers={"Origin": "http://x.example"}).status_code
        == 403
    )
    assert rerun_client.post(url, data={"aggregation": "max"}).status_code == 400  # refused before running
    answer = rerun_client.post(url, data={"aggregation": "l2"})
    assert answer.status_code == 200 and "gradient_x_input (re-run)" in answer.text
    assert "<code>aggregation=l2</code>" in answer.text and "read back" not in answer.text
    again = rerun_client.post(url, data={"aggregation": "l2"})
    assert "read back from the run" in again.text  # cached in the run's SQLite
    assert rerun_client.post("/rerun?id=0&class=0&method=dime", data={}).status_code == 400
