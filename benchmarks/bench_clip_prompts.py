"""CLIP over K prompts: the adapter's cached prompt features versus running the text tower every call.

A perturbation method calls ``adapter.logits`` on many masked image batches; the K prompts never
change. ``CLIPAdapter`` computes their text features once and hands them back to ``CLIPModel.forward``
(ours); the reference is what a generic wrapper does, calling ``model(input_ids=prompts,
pixel_values=images)`` each time. Both give the same logits bit for bit (``max abs diff``).
The model is a randomly initialised CLIP with a ViT-B/32-shaped input (224 px, 32 px patches, 77 tokens)
and narrower towers, so it runs on 2 CPU cores.
"""

from __future__ import annotations

import torch

from benchmarks.harness import BenchmarkResult, Case, benchmark, measure

NAME = "clip_prompt_cache"
DESCRIPTION = (
    "CLIPAdapter logits of B images against K fixed prompts, with the prompts' text features cached "
    "(ours) versus calling CLIPModel with all K prompts on every call (reference)."
)
REFERENCE = "CLIPModel(input_ids=prompts, pixel_values=images) per call"


def _model(quick: bool):  # type: ignore[no-untyped-def]
    from transformers import CLIPConfig, CLIPModel

    width, layers = (64, 2) if quick else (256, 4)
    text = {
        "vocab_size": 1000,
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "bos_token_id": 2,
        "eos_token_id": 3,
        "pad_token_id": 1,
    }
    vision = {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "image_size": 224,
        "patch_size": 32,
    }
    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=128)).eval()


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    from multiviz.adapters.huggingface import CLIPAdapter

    model = _model(quick)
    generator = torch.Generator().manual_seed(0)
    cases = []
    sizes = [(8, 10)] if quick else [(16, 10), (16, 100), (64, 100)]
    repeats = 3 if quick else 5
    for batch, prompts in sizes:
        ids = torch.randint(4, 1000, (prompts, 77), generator=generator)
        ids[:, 0], ids[:, -1] = 2, 3
        images = torch.randn(batch, 3, 224, 224, generator=generator)
        adapter = CLIPAdapter(model, ids)

        def ours_fn(images: torch.Tensor = images, adapter: CLIPAdapter = adapter) -> torch.Tensor:
            return adapter.logits({"image": images})

        def reference_fn(images: torch.Tensor = images, ids: torch.Tensor = ids) -> torch.Tensor:
            return model(input_ids=ids, pixel_values=images).logits_per_image

        with torch.inference_mode():
            ours = measure(ours_fn, repeats=repeats)
            reference = measure(reference_fn, repeats=repeats)
            diff = (ours_fn() - reference_fn()).abs().max().item()
        cases.append(
            Case(
                name=f"cpu B={batch} K={prompts}",
                ours_s=ours.median_s,
                reference_s=reference.median_s,
                reference=REFERENCE,
                extra={"max abs diff": diff, "images/s ours": batch / ours.median_s},
            )
        )
    return BenchmarkResult(
        name=NAME,
        description=DESCRIPTION,
        cases=cases,
        notes=(
            f"Random CLIP, width {64 if quick else 256}, {2 if quick else 4} layers per tower, "
            "224 px images, "
            f"77-token prompts, SDPA attention, float32, CPU; medians of {repeats} calls after 1 warm-up, "
            "under torch.inference_mode(). The first adapter call (the warm-up) computes the prompt cache."
        ),
    )
