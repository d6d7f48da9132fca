"""A causal-LM loss that never holds the full `[tokens x vocabulary]` logits.

With a 128k vocabulary, the fp32 logits of one 16k-token batch are 8 GiB, and their gradient as much again:
that, not the model, is what ran out of memory at 16 examples a step. Here the output head is applied to
the labelled positions only, a chunk of rows at a time; each chunk's logits give its loss and, at once, its
gradients with respect to the hidden states and the head's weight, and are then freed. The backward pass only
scales those stored gradients. The loss and both gradients equal the plain computation (the chunk's logits
are rounded as the head's own matmul would round them under autocast; log-softmax is taken in fp32).

`add_chunked_loss(model)` makes `model(..., labels=...)` use it; without labels the model is unchanged
(generation, evaluation of logits).
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any

import torch

IGNORE_INDEX = -100
# Bytes of one chunk's logits in the compute dtype (512 MiB): about 2,000 rows at a 128k vocabulary in bf16,
# 1,000 in fp32. Larger chunks keep the head's matmuls efficient (a GPU profile of liger's 256-row chunks
# found them at ~300 TFLOP/s on an H200, a third of the step's other matmuls) and hold memory to a few chunks.
CHUNK_BYTES = 1 << 29


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype the head's matmul runs in: autocast's when it is on, else the hidden states'."""
    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype


def _chunk_loss_and_grad(
    logits: torch.Tensor, targets: torch.Tensor, in_place: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk's summed loss and d loss / d logits in the logits' dtype; log-softmax in fp32 for bf16/fp16.

    `in_place` (eager): softmax - one_hot(label) over the scores' own memory, so one chunk of fp32 logits needs
    no second copy. Otherwise out of place, so that torch.compile fuses it into a pass or two over the logits
    (read once, gradient written once)."""
    scores = logits.to(torch.promote_types(logits.dtype, torch.float32))
    log_norm = torch.logsumexp(scores, dim=-1)
    loss = (log_norm - scores.gather(1, targets[:, None]).squeeze(1)).sum()
    if in_place:
        grad = scores.sub_(log_norm[:, None]).exp_()
        grad[torch.arange(len(targets), device=targets.device), targets] -= 1
    else:
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        grad = (scores - log_norm[:, None]).exp() - (vocab[None, :] == targets[:, None]).to(scores.dtype)
    return loss, grad.to(logits.dtype)


@functools.cache
def _compiled_chunk_loss_and_grad() -> Any:
    return torch.compile(functools.partial(_chunk_loss_and_grad, in_place=False), dynamic=True)


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Sum over rows of -log softmax(hidden @ weight.T)[label], computed in chunks of rows.

    On a GPU with bf16/fp16 logits, each chunk's softmax and gradient run as one compiled (inductor) kernel;
    elsewhere (CPU, fp32) in place in eager mode. Both take log-softmax in fp32 from the rounded logits."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk_rows: int):
        compute_dtype = _compute_dtype(hidden)
        need_hidden_grad, need_weight_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        weight_c = weight.to(compute_dtype)
        softmax_dtype = torch.promote_types(compute_dtype, torch.float32)  # bf16/fp16 logits: fp32 log-softmax
        fused = hidden.is_cuda and compute_dtype != softmax_dtype
        total = torch.zeros((), dtype=softmax_dtype, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden_grad else None
        grad_weight = torch.zeros_like(weight, dtype=softmax_dtype) if need_weight_grad else None
        for start in range(0, hidden.shape[0], chunk_rows):
            rows = hidden[start : start + chunk_rows].to(compute_dtype)
            targets = labels[start : start + chunk_rows]
            logits = rows @ weight_c.T
            if fused:
                with torch.autocast(hidden.device.type, enabled=False):
                    loss, grad_logits = _compiled_chunk_loss_and_grad()(logits, targets)
            else:
                loss, grad_logits = _chunk_loss_and_grad(logits, targets, in_place=True)
            total += loss
            if need_hidden_grad:
                grad_hidden[start : start + chunk_rows] = (grad_logits @ weight_c).to(hidden.dtype)
            if need_weight_grad:
                grad_weight += grad_logits.T @ rows
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_output.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_output).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None


def chunked_causal_lm_loss(
    hidden_states: torch.Tensor,
    head_weight: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """The causal-LM loss of `labels` (shifted by one inside, -100 ignored), as the model's own loss computes
    it: summed over labelled tokens and divided by `num_items_in_batch` (their count when None)."""
    hidden = hidden_states[:, :-1]
    targets = labels[:, 1:].to(hidden.device)
    mask = targets != IGNORE_INDEX
    chunk_rows = max(128, CHUNK_BYTES // (head_weight.shape[0] * _compute_dtype(hidden).itemsize))
    total = ChunkedLinearCrossEntropy.apply(hidden[mask], head_weight, targets[mask], chunk_rows)
    denominator = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    if isinstance(denominator, torch.Tensor):
        denominator = denominator.to(total.device)
    return total / denominator


def supports_chunked_loss(model: Any) -> bool:
    """Whether the head is a plain bias-free Linear after the backbone's last hidden state (LLaMA, Qwen2,
    Mistral, BLOOM, Falcon...): then the loss needs nothing but its weight. Soft-capped or scaled logits
    (Gemma 2, Cohere...) keep the model's own loss, and so does a model folder's own code (trust_remote_code):
    what its backbone returns is its own (ChatGLM's hidden states are sequence-first)."""
    if type(model).__module__.startswith("transformers_modules."):
        return False
    head = model.get_output_embeddings()
    config = model.config.get_text_config()
    scaled = any(getattr(config, name, None) not in (None, 1.0) for name in
                 ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"))  # fmt: skip
    return isinstance(head, torch.nn.Linear) and head.bias is None and not scaled


def add_chunked_loss(model: Any) -> None:
    """Make `model(..., labels=labels)` return the chunked loss and no logits. Apply before PEFT wraps it.

    The backbone and head are looked up at each call, so PEFT's and DeepSpeed's later changes to them are seen;
    the loss is computed inside the model's forward, so DDP and DeepSpeed see one ordinary forward.
    """
    from transformers.modeling_outputs import CausalLMOutputWithPast

    original_forward = model.forward
    backbone_name = model.base_model_prefix

    def forward(
        self: Any, *args: Any, labels: Any = None, num_items_in_batch: Any = None, **kwargs: Any
    ) -> Any:
        head = self.get_output_embeddings()
        if labels is None or type(head) is not torch.nn.Linear or hasattr(head.weight, "ds_id"):
            # No labels: generation or logits wanted. A head that PEFT wrapped (LoRA on lm_head, or
            # modules_to_save) computes more than its base weight, and ZeRO-3 gathers a partitioned weight
            # only inside the head's own forward: the model's own forward runs them.
            if labels is not None:
                kwargs |= {"labels": labels, "num_items_in_batch": num_items_in_batch}
            return original_forward(*args, **kwargs)
        kwargs["use_cache"] = False
        kwargs.pop("logits_to_keep", None)
        outputs = getattr(self, backbone_name)(*args, **kwargs)
        loss = chunked_causal_lm_loss(outputs.last_hidden_state, head.weight, labels, num_items_in_batch)
        return CausalLMOutputWithPast(loss=loss, logits=None)

    # The original signature stays visible: the Trainer keeps the dataset columns it names, and generate()
    # checks its keyword arguments against it.
    functools.update_wrapper(forward, type(model).forward)
    forward.__signature__ = inspect.signature(type(model).forward)
    model.forward = types.MethodType(forward, model)
