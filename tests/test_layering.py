"""Data flows one way: data -> adapter -> methods -> results -> report/CLI. Every import inside the
package (module level or inside a function) goes from a higher layer to a lower one, never back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "multiviz"

#: top-level module or subpackage -> layer; a module may import from lower layers only (and from its own
#: subpackage), except for the pairs in SAME_LAYER_IMPORTS
LAYERS = {
    "errors": 0,
    "params": 1,
    "progress": 1,
    "ray_actors": 1,
    "io": 1,
    "pretrained": 1,
    "deprecation": 1,
    "presets": 1,
    "atoms": 2,
    "modality": 3,
    "masking": 4,
    "results": 4,
    "adapters": 5,
    "data": 5,
    "models": 5,
    "targets": 6,
    "training": 6,
    "registry": 7,
    "methods": 7,
    "representations": 8,
    "prediction": 8,
    "evaluation": 8,
    "plot": 9,
    "runs": 9,
    "demo": 10,
    "demo_vqa": 10,
    "demo_run": 10,
    "cli": 10,
    "cli_analyze": 10,
    "cli_common": 10,
    "cli_data": 10,
    "cli_evaluate": 10,
    "cli_explain": 10,
    "cli_features": 10,
    "cli_serve": 10,
    "dashboard": 10,
    "evaluation_suite": 10,
    "__init__": 11,
    "__main__": 11,
}

#: allowed imports between modules of one layer: the registry loads the built-in methods that register
#: with it; representations use the sparse model of prediction; the CLI's modules and the demos share code
SAME_LAYER_IMPORTS = {
    ("registry", "methods"),
    ("methods", "registry"),
    ("representations", "prediction"),
}


def unit_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_units(path: Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "multiviz" and len(parts) > 1:
                units.add(parts[1])
            elif parts == ["multiviz"]:
                units.add("__init__")
    return units


def test_every_module_has_a_layer():
    units = {unit_of(path) for path in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), f"give these a layer in LAYERS: {sorted(units - set(LAYERS))}"


def test_imports_go_down_the_layers_only():
    backward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(path)
        for target in imported_units(path) - {source}:
            if source not in LAYERS or target not in LAYERS:
                continue  # reported by the test above
            same_layer_ok = LAYERS[source] == LAYERS[target] and (
                (source, target) in SAME_LAYER_IMPORTS or LAYERS[source] == LAYERS["cli"]
            )
            if LAYERS[target] > LAYERS[source] or (LAYERS[target] == LAYERS[source] and not same_layer_ok):
                backward.append(f"{path.relative_to(PACKAGE)} imports multiviz.{target}")
    assert backward == []
