import pytest
import torch

from multiviz import InputError, TextTokens


def test_wordpieces_group_to_words_and_special_tokens_are_never_atoms(wordpiece_tokenizer):
    encoded = wordpiece_tokenizer(
        ["what colour is the triangle?", "red circle"], padding=True, return_tensors="pt"
    )
    ids = encoded["input_ids"]
    layout = TextTokens.from_tokenizer(wordpiece_tokenizer).layout(ids, "question")
    assert layout.labels[0] == ["what", "colour", "is", "the", "triangle", "?"]
    assert layout.labels[1] == ["red", "circle"]
    special = set(wordpiece_tokenizer.all_special_ids)
    for row_ids, row_assign in zip(ids.tolist(), layout.assignment.tolist(), strict=True):
        for token, atom in zip(row_ids, row_assign, strict=True):
            assert (atom == -1) == (token in special)
    # "tri" and "##angle" are one atom, the same as the tokenizer's own word ids say
    word_ids = encoded.word_ids(0)
    atoms = layout.assignment[0].tolist()
    for position, word in enumerate(word_ids):
        assert (word is None) == (atoms[position] == -1)
        if word is not None:
            assert atoms[position] == word


def test_without_grouping_each_piece_is_an_atom(wordpiece_tokenizer):
    ids = wordpiece_tokenizer(["the triangle"], return_tensors="pt")["input_ids"]
    layout = TextTokens.from_tokenizer(wordpiece_tokenizer, group_word_pieces=False).layout(ids, "q")
    assert layout.labels[0] == ["the", "tri", "angle"]


def test_empty_text_raises_naming_the_modality():
    atoms = TextTokens(special_token_ids=[101, 102], pad_token_id=0)
    with pytest.raises(InputError, match=r"modality 'question'.*empty text: sample 1"):
        atoms.layout(torch.tensor([[101, 7, 102], [101, 102, 0]]), "question")


def test_mask_baseline_needs_a_mask_id():
    with pytest.raises(InputError, match="baseline 'mask' needs a mask_token_id"):
        TextTokens(pad_token_id=0).baseline_id("mask", "q")
