"""The easy-VQA routing rows of docs/fl-i2moe.md: FL-I2MoE with I2MoE's losses only (``easy-vqa-fl-i2moe``)
against FL-I2MoE routed by interaction type (``easy-vqa-fl-i2moe-routed``), both from the model cache
(trained there on first use, about an hour each on 2 CPU cores), on the whole test split.

    python -m scripts.fl_i2moe_routing [--quick] [--json docs/fl-i2moe/easy-vqa-routing.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from multiviz.evaluation.fl_i2moe_routing import EASY_VQA_GROUPS, routing_report
from multiviz.training import checkpoint_with_data
from multiviz.training.cache import cached_model, demo_config

PRESETS = ("easy-vqa-fl-i2moe", "easy-vqa-fl-i2moe-routed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the one-epoch quick presets (pipeline check)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    reports = {}
    for preset in PRESETS:
        cached = cached_model(demo_config(preset, quick=args.quick))
        adapter, data = checkpoint_with_data(cached.checkpoint.path, "cpu")
        test = data.batch("test", torch.arange(data.size("test")))
        reports[preset] = routing_report(adapter, test, data.class_names, EASY_VQA_GROUPS)
    print(markdown(reports))
    if args.json is not None:
        args.json.write_text(json.dumps(reports, indent=1) + "\n")


def markdown(reports: dict[str, dict]) -> str:  # type: ignore[type-arg]
    """Accuracy of the mixture and of each expert alone; then routing per answer group."""
    experts = ("unique:image", "unique:question", "synergy", "redundancy")
    lines = [
        "| model | unique experts see | answers | mixture | " + " | ".join(experts) + " |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for preset, report in reports.items():
        for group, summary in [("all", report), *report["by_group"].items()]:
            accuracy = summary["expert_accuracy"]
            lines.append(
                f"| `{preset}` | {report['unique_inputs']} | {group} | {summary['accuracy']:.4f} | "
                + " | ".join(f"{accuracy[e]:.4f}" for e in experts)
                + " |"
            )
    lines += [
        "",
        "| model | answers | points | " + " | ".join(experts) + " |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, report in reports.items():
        everything = {"points": None, **report["routing"]}
        for group, summary in [("all", everything), *report["by_group"].items()]:
            cells = [f"{summary['mean_weight'][e]:.3f} ({summary['top1_rate'][e]:.2f})" for e in experts]
            lines.append(f"| `{preset}` | {group} | {summary['points'] or ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
