"""Every stage-U method is registered with what it needs, and the CLI lists it."""

from typer.testing import CliRunner

from multiviz import Capability, get_method, list_methods
from multiviz.cli import app

STAGE_U = {
    "saliency": {Capability.GRADIENTS},
    "gradient_x_input": {Capability.GRADIENTS},
    "integrated_gradients": {Capability.GRADIENTS, Capability.MASK},
    "smoothgrad": {Capability.GRADIENTS},
    "grad_cam": {Capability.LAYERS},
    "lime": {Capability.LOGITS, Capability.MASK},
    "kernel_shap": {Capability.LOGITS, Capability.MASK},
    "occlusion": {Capability.LOGITS, Capability.MASK},
    "kl_occlusion": {Capability.LOGITS, Capability.MASK},
    "modality_summary": {Capability.LOGITS, Capability.MASK},
}


def test_stage_u_methods_are_registered_with_their_needs():
    assert set(STAGE_U) <= {info.name for info in list_methods("U")}
    for name, needs in STAGE_U.items():
        assert get_method(name).requires == needs, name


def test_cli_lists_the_stage_u_methods():
    result = CliRunner().invoke(app, ["methods", "--stage", "U"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in STAGE_U:
        assert f" {name} " in result.output, name
