"""Writing an :class:`~multiviz.evaluation_suite.suite.EvaluationReport`: a folder, and optionally a run.

``write_report(report, out)`` writes ``out/report.md`` (the leaderboard per metric, what was skipped
and why, the time each metric took, with the plots), ``out/report.json`` (the whole report, every typed
result in it: ``multiviz.result_from_dict`` reads it back), ``out/leaderboard.csv`` and the plots as
PNG under ``out/plots``. Everything is written into a temporary sibling folder first and moved into
place at the end, so an interrupted evaluation leaves no half-written report. ``store_in_run`` puts
the results into a run store (``evaluation/<metric>/<i>`` data-set results and one row per point and
method in the ``evaluation_scores`` table) so the dashboard can show them next to each explanation.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.evaluation_suite.suite import EvaluationReport


def _faithfulness_figures(result: Any) -> list[tuple[str, Any]]:
    from multiviz.plot.faithfulness import deletion_insertion_curves

    return [(f"{result.method}-deletion-insertion", deletion_insertion_curves(result.deletion))]


def _pair_masking_figures(result: Any) -> list[tuple[str, Any]]:
    from multiviz.plot.pair_masking import plot_pair_masking

    return [(f"{result.modality_a}-{result.modality_b}-probability", plot_pair_masking(result))]


#: result type -> function drawing its figures ``[(file stem, matplotlib Figure)]``
PLOTS: dict[str, Callable[[Any], list[tuple[str, Any]]]] = {
    "faithfulness": _faithfulness_figures,
    "pair_masking": _pair_masking_figures,
}

LEADERBOARD_COLUMNS = (
    "metric_group",
    "method",
    "metric",
    "modality",
    "value",
    "ci_low",
    "ci_high",
    "higher_is_better",
)


def write_report(report: EvaluationReport, out: str | Path, *, plots: bool = True) -> Path:
    """Write the report folder ``out`` (replacing an earlier report there); returns its path."""
    target = Path(out)
    if target.exists() and (
        not target.is_dir() or (any(target.iterdir()) and not (target / "report.json").exists())
    ):
        raise InputError(
            f"{target} exists and is not an evaluation report folder; give a new or empty --out",
            argument="out",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a report folder is as readable as any other
    try:
        figures = _draw(report, staging / "plots") if plots else {}
        (staging / "report.json").write_text(report.to_json())
        (staging / "leaderboard.csv").write_text(leaderboard_csv(report))
        (staging / "report.md").write_text(markdown(report, figures))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def leaderboard_csv(report: EvaluationReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LEADERBOARD_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in report.leaderboard:
        writer.writerow(row)
    return buffer.getvalue()


def markdown(report: EvaluationReport, figures: dict[str, list[str]] | None = None) -> str:
    """The report as markdown: the setup, one leaderboard table per metric, plots, skips and times."""
    figures = figures or {}
    model = next(iter(report.model.values()))
    lines = [
        f"# Evaluation of `{model}`",
        "",
        f"- data: {report.data.get('name')}, split `{report.split}`, {len(report.rows)} points "
        f"(rows {_rows(report.rows)})",
        f"- target: `{report.target}`; explanations evaluated: {', '.join(report.explanation_methods)}",
        f"- seed {report.parameters.get('seed')}, "
        f"batch size {report.parameters.get('batch_size') or 'default'}",
        "",
        "Each value is the mean over the points with its 95 % interval; the arrow says which way is better.",
        "",
    ]
    lines += points_table(report)
    groups = list(dict.fromkeys(row["metric_group"] for row in report.leaderboard))
    for group in groups:
        rows = [r for r in report.leaderboard if r["metric_group"] == group]
        lines += [f"## {group}", "", *headline(rows), ""]
        for path in figures.get(group, []):
            lines += [f"![{group}]({path})", ""]
        lines += [
            "<details><summary>every number</summary>",
            "",
            "| method | metric | modality | value | 95 % interval | better |",
            "|---|---|---|---:|---|:-:|",
        ]
        for row in rows:
            better = (
                {True: "↑", False: "↓"}.get(bool(row["higher_is_better"]), "")
                if row.get("higher_is_better") is not None
                else ""
            )
            interval = _interval(row.get("ci_low"), row.get("ci_high"))
            lines.append(
                f"| {row['method']} | {row['metric']} | {row.get('modality') or ''} | "
                f"{_number(row['value'])} | {interval} | {better} |"
            )
        lines += ["", "</details>", ""]
    if report.skipped:
        lines += ["## Skipped", ""] + [f"- **{name}**: {why}" for name, why in report.skipped.items()] + [""]
    lines += ["## Time", "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in report.seconds.items()]
    return "\n".join(lines) + "\n"


def points_table(report: EvaluationReport) -> list[str]:
    """The evaluated points by their words and class names, folded away."""
    if not report.points:
        return []
    lines = [
        "<details><summary>the points</summary>",
        "",
        "| row | text | label | predicted | explained class |",
        "|---:|---|---|---|---|",
    ]
    for point in report.points:
        text = str(point.get("text") or "").replace("|", "\\|")
        lines.append(
            f"| {point['row']} | {text} | {point.get('label_name') or ''} | {point['predicted_name']} | "
            f"{point['explained_name']} |"
        )
    return [*lines, "", "</details>", ""]


#: the columns of a metric's headline table, when it has more than fit on a line (every number is in the
#: table below it): the AUCs with their gaps to random, one top-K, ERASER and the correlation
HEADLINE_METRICS = {
    "faithfulness": (
        "deletion_auc",
        "deletion_gap_to_random",
        "insertion_auc",
        "insertion_gap_to_random",
        "top_20%_probability_drop",
        "comprehensiveness",
        "sufficiency",
        "faithfulness_correlation",
    ),
}


def headline(rows: list[dict[str, Any]]) -> list[str]:
    """One table per metric group: a row per method, a column per metric, on the joint scope (all
    modalities at once) where there is one, else per modality; references (``*_random``) left out."""
    group = str(rows[0].get("metric_group", "")) if rows else ""
    chosen = HEADLINE_METRICS.get(group)
    scopes = list(dict.fromkeys(str(r.get("modality") or "") for r in rows))
    scope = "joint" if "joint" in scopes else (scopes[0] if len(scopes) == 1 else None)
    kept = [
        r
        for r in rows
        if (not str(r["metric"]).endswith("_random") or str(r["metric"]).endswith("_to_random"))
        and (scope is None or str(r.get("modality") or "") == scope)
        and (chosen is None or str(r["metric"]) in chosen)
    ]
    columns = list(dict.fromkeys((str(r["metric"]), str(r.get("modality") or "")) for r in kept))
    if chosen is not None:
        columns.sort(key=lambda column: chosen.index(column[0]))
    methods = list(dict.fromkeys(str(r["method"]) for r in kept))
    values = {(str(r["method"]), str(r["metric"]), str(r.get("modality") or "")): r for r in kept}
    title = [
        f"{metric}{'' if scope or not modality else f' ({modality})'} {_arrow(kept, metric, modality)}"
        for metric, modality in columns
    ]
    out = ["| method | " + " | ".join(title) + " |", "|---|" + "---:|" * len(columns)]
    for method in methods:
        cells = [
            _number(values[(method, m, mod)]["value"]) if (method, m, mod) in values else ""
            for m, mod in columns
        ]
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    if scope == "joint":
        out += ["", "Joint: atoms of every modality ranked and masked together; per-modality values below."]
    elif scope:
        out += ["", f"On {scope}."]
    return out


def _arrow(rows: list[dict[str, Any]], metric: str, modality: str) -> str:
    """↑ (higher is better), ↓, or nothing for numbers that describe the model rather than rank
    explanations (``higher_is_better`` None)."""
    flags = {
        r.get("higher_is_better")
        for r in rows
        if str(r["metric"]) == metric and str(r.get("modality") or "") == modality
    }
    if flags == {None}:
        return ""
    return "↑" if True in flags else "↓"


def store_in_run(report: EvaluationReport, run: str | Path) -> int:
    """Put every result of ``report`` into run ``run`` (data-set results ``evaluation/<metric>/<i>`` and
    ``evaluation/report``) and its per-point scores into the table ``evaluation_scores``, all in one
    transaction; returns the number of per-point scores written. The run must hold the same model."""
    from multiviz.runs.store import RunStore

    store = RunStore(run)
    try:
        if store.manifest().get("model_sha256") != report.model_sha256:
            raise InputError(
                f"{run} is a run of another model (its weights' sha256 differs from the evaluated model's)",
                argument="run",
            )
        scores = point_scores(report)
        by_row = dict(
            store.connection.execute(
                "SELECT row, point_id FROM points WHERE split = ?", (report.split,)
            ).fetchall()
        )
        results = {f"evaluation/{name}": result for name, result in report.results.items()}
        results["evaluation/report"] = report
        with store.transaction() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO dataset_results (name, result_type, payload, seconds) "
                "VALUES (?, ?, ?, ?)",
                [
                    (name, result.result_type, result.to_bytes(), report.seconds.get(name.split("/")[1], 0.0))
                    for name, result in results.items()
                ],
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS evaluation_scores (point_id INTEGER NOT NULL, "
                "method TEXT NOT NULL, metric TEXT NOT NULL, modality TEXT NOT NULL, value REAL, "
                "PRIMARY KEY (point_id, method, metric, modality))"
            )
            connection.executemany(
                "INSERT OR REPLACE INTO evaluation_scores VALUES (?, ?, ?, ?, ?)",
                [
                    (by_row[row], method, metric, modality, None if not math.isfinite(value) else value)
                    for row, method, metric, modality, value in scores
                    if row in by_row
                ],
            )
    finally:
        store.close()
    return len(scores)


def point_scores(report: EvaluationReport) -> list[tuple[int, str, str, str, float]]:
    """``(split row, method, metric, modality, value)`` for every result that has per-point scores
    (``point_scores()`` on the result, indexed by the report's points)."""
    out = []
    for result in report.results.values():
        if not hasattr(result, "point_scores"):
            continue
        for index, method, metric, modality, value in result.point_scores():
            out.append((report.rows[index], method, metric, modality, float(value)))
    return out


def _draw(report: EvaluationReport, folder: Path) -> dict[str, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn: dict[str, list[str]] = {}
    for name, result in report.results.items():
        draw = PLOTS.get(result.result_type)
        if draw is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for stem, figure in draw(result):
            path = folder / f"{name.replace('/', '-')}-{stem}.png"
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            drawn.setdefault(name.split("/")[0], []).append(f"plots/{path.name}")
    return drawn


def _rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:8])
    return shown + (f", ... ({len(rows)} in all)" if len(rows) > 8 else "")


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"[{low:.4g}, {high:.4g}]"
