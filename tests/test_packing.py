"""Packing and the chunked loss change no example's loss: checked on the tiny models, token for token."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from common.chunked_loss import (
    IGNORE_INDEX,
    ChunkedLinearCrossEntropy,
    add_chunked_loss,
    chunked_causal_lm_loss,
)
from common.packing import PackedCollator, pack_examples, plan_rows, positions_restarting_after


def test_best_fit_decreasing_fills_rows_and_places_every_example_once():
    lengths = [6, 4, 5, 5, 3, 7]  # 30 tokens: three rows of 10 exactly
    rows = plan_rows(lengths, 10)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert sorted(sorted(lengths[i] for i in row) for row in rows) == [[3, 7], [4, 6], [5, 5]]
    assert plan_rows(lengths, 10) == rows  # deterministic
    with pytest.raises(ValueError, match="longer than the row"):
        plan_rows([11], 10)


def test_best_fit_on_many_examples_stays_near_the_lower_bound():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 400, (3000,), generator=generator).tolist()
    rows = plan_rows(lengths, 512)
    assert all(sum(lengths[i] for i in row) <= 512 for row in rows)
    lower_bound = -(-sum(lengths) // 512)
    assert len(rows) <= lower_bound * 1.02, (len(rows), lower_bound)


def examples_for(
    vocab: int, lengths: list[int], prompt: int = 3, seed: int = 0
) -> dict[str, list[list[int]]]:
    """Examples whose first `prompt` tokens are masked out of the labels, as SFT's prompts are."""
    generator = torch.Generator().manual_seed(seed)
    input_ids, labels = [], []
    for length in lengths:
        ids = torch.randint(3, vocab, (length,), generator=generator).tolist()
        input_ids.append(ids)
        labels.append([IGNORE_INDEX] * prompt + ids[prompt:])
    return {"input_ids": input_ids, "labels": labels}


def token_losses(model, input_ids, labels, **kwargs) -> torch.Tensor:
    """Per-position next-token loss (0 where the label is ignored), as the model's own loss computes it.
    No KV cache: as in training (finetune.py turns it off), since transformers reads packed rows from
    position_ids only when there is none."""
    logits = model(input_ids=input_ids, use_cache=False, **kwargs).logits.float()
    targets = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), targets.clamp(min=0), reduction="none"
    )
    return losses * (targets != IGNORE_INDEX)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_rows_give_every_example_its_unpacked_loss_and_gradient(tiny_llama, attn):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32, attn_implementation=attn)
    lengths = [9, 17, 5, 12, 2]
    examples = examples_for(model.config.vocab_size, lengths, prompt=2)
    packed = pack_examples(examples, capacity=64)
    assert len(packed) == 1
    batch = PackedCollator(pad_token_id=0, row_length=64)([packed[0]])

    # Unpacked: each example alone. Loss summed over its labelled tokens; gradient of the sum over all.
    model.zero_grad()
    alone = []
    for ids, labels in zip(examples["input_ids"], examples["labels"], strict=True):
        loss = token_losses(model, torch.tensor([ids]), torch.tensor([labels])).sum()
        loss.backward()
        alone.append(loss.item())
    grads_alone = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad()
    # No attention mask: the model masks per example from the restarting position ids.
    per_position = token_losses(
        model, batch["input_ids"], batch["labels"], position_ids=batch["position_ids"]
    )[0]
    per_position.sum().backward()
    # The row holds the examples in data order; row position t predicts token t + 1.
    packed_sums, start = [], 0
    for length in lengths:
        packed_sums.append(per_position[start : start + length - 1].sum().item())
        start += length
    assert packed_sums == pytest.approx(alone, abs=1e-5)
    assert per_position[start:].abs().sum() == 0  # padding trains nothing
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, grads_alone[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_changing_one_example_leaves_the_others_logits_in_the_row_unchanged(tiny_llama, attn):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32, attn_implementation=attn)
    examples = examples_for(model.config.vocab_size, [10, 8, 6])
    batch = PackedCollator(pad_token_id=0, row_length=None)([pack_examples(examples, 32)[0]])
    changed = batch["input_ids"].clone()
    changed[0, 1:10] = torch.flip(changed[0, 1:10], [0]) + 1  # the first example's tokens, all different
    with torch.no_grad():
        before = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        after = model(input_ids=changed, position_ids=batch["position_ids"], use_cache=False).logits
    assert not torch.allclose(before[0, 1:10], after[0, 1:10])  # the changed example itself did change
    torch.testing.assert_close(after[0, 10:], before[0, 10:], atol=1e-6, rtol=0)


def test_packing_labels_never_predict_an_example_from_the_one_before():
    examples = {"input_ids": [[5, 6, 7], [8, 9]], "labels": [[5, 6, 7], [8, 9]]}  # train_on_inputs style
    row = pack_examples(examples, 8)[0]
    assert row["input_ids"] == [5, 6, 7, 8, 9]
    assert row["labels"] == [IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9]
    assert row["position_ids"] == [0, 1, 2, 0, 1]
    batch = PackedCollator(pad_token_id=0, row_length=8)([row])
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0, 0, 0]]  # for the Trainer's token count
    assert positions_restarting_after([4, 5, 2, 6, 2, 7], separator_id=2) == [0, 1, 2, 0, 1, 0]


def test_chunked_cross_entropy_equals_the_plain_one_with_gradients():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 50, (37,), generator=generator)
    chunked = ChunkedLinearCrossEntropy.apply(hidden, weight, labels, 8)  # 5 chunks, the last one short
    chunked.backward(torch.tensor(0.5, dtype=torch.float64))
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    plain = torch.nn.functional.cross_entropy(hidden @ weight.T, labels, reduction="sum")
    (plain * 0.5).backward()
    torch.testing.assert_close(chunked, plain, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grads[0], hidden.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads[1], weight.grad, rtol=1e-9, atol=1e-12)


def test_fused_chunk_softmax_equals_the_in_place_one():
    """The out-of-place chunk function (what a GPU compiles) and the eager in-place one give the same loss and
    gradient from the same bf16 logits, and both equal autograd's gradient of fp32 cross-entropy over them."""
    from common.chunked_loss import _chunk_loss_and_grad

    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(33, 70, generator=generator) * 4).to(torch.bfloat16)
    targets = torch.randint(0, 70, (33,), generator=generator)
    loss, grad = _chunk_loss_and_grad(logits, targets, in_place=False)
    loss_in_place, grad_in_place = _chunk_loss_and_grad(logits.clone(), targets, in_place=True)
    scores = logits.float().requires_grad_()
    reference = torch.nn.functional.cross_entropy(scores, targets, reduction="sum")
    reference.backward()
    assert grad.dtype == grad_in_place.dtype == torch.bfloat16
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(loss_in_place, reference.detach(), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad, scores.grad.to(torch.bfloat16), rtol=0, atol=0)
    torch.testing.assert_close(grad_in_place, scores.grad.to(torch.bfloat16), rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
def test_model_with_chunked_loss_matches_its_own_loss_and_gradients(tiny_models, arch):
    torch.manual_seed(0)
    plain = AutoModelForCausalLM.from_pretrained(tiny_models / arch, dtype=torch.float32)
    chunked = AutoModelForCausalLM.from_pretrained(tiny_models / arch, dtype=torch.float32)
    add_chunked_loss(chunked)
    examples = examples_for(plain.config.vocab_size, [20, 20], prompt=5)
    input_ids, labels = torch.tensor(examples["input_ids"]), torch.tensor(examples["labels"])
    reference = plain(input_ids=input_ids, labels=labels, num_items_in_batch=torch.tensor(40))
    ours = chunked(input_ids=input_ids, labels=labels, num_items_in_batch=torch.tensor(40))
    assert ours.logits is None  # the point: no [tokens x vocab] tensor
    torch.testing.assert_close(ours.loss, reference.loss, rtol=1e-5, atol=1e-6)
    reference.loss.backward()
    ours.loss.backward()
    for (name, p), q in zip(plain.named_parameters(), chunked.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    # Without labels the model is the original one (generation).
    with torch.no_grad():
        torch.testing.assert_close(chunked(input_ids=input_ids).logits, plain(input_ids=input_ids).logits)


def test_chunked_loss_ignores_masked_positions_like_the_model():
    hidden = torch.randn(2, 6, 8)
    weight = torch.randn(11, 8)
    labels = torch.tensor([[1, 2, IGNORE_INDEX, 4, 5, IGNORE_INDEX], [IGNORE_INDEX] * 6])
    loss = chunked_causal_lm_loss(hidden, weight, labels)
    logits = hidden @ weight.T
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, expected)


def test_packing_is_refused_for_alibi_models_that_ignore_position_ids(tiny_models):
    from common.packing import check_model_supports_packing

    check_model_supports_packing(AutoModelForCausalLM.from_pretrained(tiny_models / "tiny-llama"))
    with pytest.raises(ValueError, match="bloom uses ALiBi"):
        check_model_supports_packing(AutoModelForCausalLM.from_pretrained(tiny_models / "tiny-bloom"))


def test_chunked_loss_steps_aside_when_peft_wraps_the_head(tiny_llama):
    """LoRA on lm_head (or modules_to_save) changes what the head computes: the model's own loss is used."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    plain = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    chunked = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    add_chunked_loss(chunked)
    lora = LoraConfig(r=4, target_modules=["q_proj", "lm_head"], init_lora_weights=False)
    torch.manual_seed(1)
    plain = get_peft_model(plain, lora)
    torch.manual_seed(1)
    chunked = get_peft_model(chunked, lora)
    examples = examples_for(plain.config.vocab_size, [12, 12], prompt=2)
    input_ids, labels = torch.tensor(examples["input_ids"]), torch.tensor(examples["labels"])
    with torch.no_grad():
        torch.testing.assert_close(
            chunked(input_ids=input_ids, labels=labels).loss, plain(input_ids=input_ids, labels=labels).loss
        )
