"""The README's Python example runs as written."""

import re
from pathlib import Path


def test_readme_api_example_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"## The API in ten lines\n\n```python\n(.*?)```", text, re.S)
    assert example is not None
    code = example.group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 11
    exec(compile(code, "README.md", "exec"), {})


def test_readme_stage_c_example_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"## Stage C: .*?```python\n(.*?)```", text, re.S)
    assert example is not None
    exec(compile(example.group(1), "README.md", "exec"), {"__name__": "readme"})


def test_readme_stage_e_example_runs_after_the_stage_c_one():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    stage_c = re.search(r"## Stage C: .*?```python\n(.*?)```", text, re.S)
    stage_e = re.search(r"## Stage E: .*?```python\n(.*?)```", text, re.S)
    assert stage_c is not None and stage_e is not None
    scope = {"__name__": "readme"}
    exec(compile(stage_c.group(1), "README.md", "exec"), scope)
    exec(compile(stage_e.group(1), "README.md", "exec"), scope)
