"""An optional CPU speed path for training Semi-IIN, applied by `train.py` (`--cpu_word_dropout`); never part of a
saved model's code.

PyTorch's CPU dropout draws its mask with `bernoulli_` (about 13 ns per element): up to a third of a Semi-IIN step
at the default job's shapes. Here every training dropout of a Semi-IIN (inputs, embeddings, feed-forward ReLU,
residuals, attention weights) draws its mask from 8/16-bit words of numpy's SFC64 generator instead, filled by
threads (numpy releases the GIL), and needs no mask kept for backward where the output tells it (ReLU dropout,
attention weights). Same distribution as `nn.Dropout` with p rounded to a multiple of 2**-16 (exact for multiples of
2**-8), reproducible under `torch.manual_seed`; another random stream. Eager CPU training only: on accelerators
and under `torch.compile` the model's own `nn.Dropout` and SDPA run.

[`apply_cpu_word_dropout`] swaps the model's `nn.Dropout` modules for [`WordDropout`], fuses the feed-forward ReLU
into its dropout ([`ReLUWordDropout`]) and selects the attention function [`sdpa_with_word_dropout`], registered
with transformers' `AttentionInterface` (masks as SDPA's); [`remove_cpu_word_dropout`] undoes all of it.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION_NAME = "msa_cpu_word_dropout"
_DRAWS_PER_CHUNK = 1 << 17  # 64-bit draws per separately seeded chunk (the same words for any thread count)
_BLOCK = 1 << 16  # words turned into mask values at a time (cache-resident)
_INTEGER_VIEWS = {torch.bfloat16: torch.int16, torch.float16: torch.int16}  # numpy has no bfloat16
_draw_pool = None


def _word_rate(p: float) -> tuple[int, int, int]:
    """(bits, levels = 2**bits, dropped words out of levels) for rate `p`: 8-bit words when p is a multiple of 2**-8,
    else 16-bit ones, the rate rounded to q = dropped / levels (|q - p| <= 2**-17)."""
    bits = 8 if float(p * 256).is_integer() else 16
    levels = 1 << bits
    return bits, levels, min(round(p * levels), levels)


def word_dropout_scale(p: float) -> float:
    """1 / (1 - q) for the rate q that [`_word_rate`] rounds p to (0.0 when every element is dropped)."""
    _, levels, dropped = _word_rate(p)
    return 0.0 if dropped == levels else levels / (levels - dropped)


def _for_each_chunk(count: int, bits: int, fill) -> None:
    """`fill(index, start, size)` for each chunk of `count` `bits`-bit words, in up to `torch.get_num_threads()`
    threads."""
    per_chunk = _DRAWS_PER_CHUNK * (64 // bits)
    chunks = -(-count // per_chunk)

    def fill_chunk(index: int) -> None:
        start = index * per_chunk
        fill(index, start, min(per_chunk, count - start))

    threads = min(chunks, torch.get_num_threads())
    if threads < 2:
        for index in range(chunks):
            fill_chunk(index)
        return
    global _draw_pool
    if _draw_pool is None or _draw_pool._max_workers < threads:
        from concurrent.futures import ThreadPoolExecutor

        _draw_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="msa-dropout-words")
    list(_draw_pool.map(fill_chunk, range(chunks)))


def dropout_keep_mask(hidden: torch.Tensor, p: float, scaled: bool = True) -> torch.Tensor | None:
    """The dropout mask for `hidden` in its dtype: 0 for a dropped element (word < threshold), the kept value
    ([`word_dropout_scale`] rounded to the dtype, or 1 with `scaled=False`) for a kept one; None when q = 0. The seed
    is one draw of torch's CPU generator, so `torch.manual_seed` fixes the mask."""
    bits, levels, dropped = _word_rate(p)
    if dropped == 0:
        return None
    if dropped == levels:
        return hidden.new_zeros(hidden.shape)
    dtype = hidden.dtype
    native = dtype if dtype in (torch.float32, torch.float64, *_INTEGER_VIEWS) else torch.float32
    kept = torch.tensor(word_dropout_scale(p) if scaled else 1.0, dtype=native)
    threshold = dropped - levels // 2  # words are uniform on [-levels/2, levels/2): P(word < threshold) = q
    seed = int(torch.randint(0, 1 << 62, (), dtype=torch.int64))
    mask = torch.empty(math.prod(hidden.shape), dtype=native)
    target = mask.view(_INTEGER_VIEWS.get(native, native)).numpy()
    value = np.asarray(kept.view(_INTEGER_VIEWS[native]).item(), np.int16) if native in _INTEGER_VIEWS else kept.numpy()
    word = np.int8 if bits == 8 else np.int16

    def fill(index: int, start: int, size: int) -> None:
        words = np.random.SFC64([seed, index]).random_raw(-(-size // (64 // bits))).view(word)[:size]
        for offset in range(0, size, _BLOCK):
            block, out = words[offset:offset + _BLOCK], target[start + offset:start + offset + _BLOCK]
            if native in _INTEGER_VIEWS:  # the bit pattern of the kept value, or 0
                np.multiply(np.greater_equal(block, threshold), value, out=out)
            else:
                np.greater_equal(block, threshold, out=out)
                if value != 1:
                    np.multiply(out, value, out=out)

    _for_each_chunk(mask.numel(), bits, fill)
    return mask.view(hidden.shape).to(device=hidden.device, dtype=dtype)


def _scale_is_exact(dtype: torch.dtype, scale: float) -> bool:
    """Whether `scale` is exactly representable in the floating `dtype` (1.25 is in bf16, 1 / 0.9 is not)."""
    info = torch.finfo(dtype)
    significand, _ = math.frexp(scale)
    return (significand * 2 ** (round(-math.log2(info.eps)) + 1)).is_integer() and info.tiny <= scale <= info.max


def _mask_and_scale(hidden: torch.Tensor, p: float) -> tuple[torch.Tensor | None, float]:
    """(mask, scale still to apply): the scale goes into the mask when its dtype holds it exactly, else it is applied
    as a python float (bf16 would round 1 / 0.9 down by 0.16%, biasing every kept element)."""
    scale = word_dropout_scale(p)
    exact = hidden.dtype in (torch.float32, torch.float64) or _scale_is_exact(hidden.dtype, scale)
    return dropout_keep_mask(hidden, p, scaled=exact), 1.0 if exact else scale


def word_dropout(hidden: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout with the mask of [`dropout_keep_mask`]."""
    mask, scale = _mask_and_scale(hidden, p)
    if mask is None:
        return hidden
    output = hidden * mask if hidden.requires_grad else mask.mul_(hidden)
    return output if scale == 1.0 else output * scale


def _positive_part_grad(grad: torch.Tensor, output: torch.Tensor, scale: float) -> torch.Tensor:
    """`grad * scale` where `output` > 0, else 0 (ReLU's `threshold_backward`)."""
    grad_input = torch.ops.aten.threshold_backward(grad, output, 0)
    return grad_input if scale == 1.0 else grad_input.mul_(scale)


class _ReLUWordDropout(torch.autograd.Function):
    """dropout(relu(x)) in one masked multiply; backward needs only the output (which the next layer saves anyway)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, p: float) -> torch.Tensor:
        mask, scale = _mask_and_scale(hidden, p)
        output = F.relu(hidden)
        output = output if mask is None else output.mul_(mask)
        output = output if scale == 1.0 else output.mul_(scale)
        ctx.scale = 1.0 if _word_rate(p)[2] == 0 else word_dropout_scale(p)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (output,) = ctx.saved_tensors
        return _positive_part_grad(grad, output, ctx.scale), None


class _WeightsWordDropout(torch.autograd.Function):
    """Unscaled word dropout of attention weights (>= 0): backward recovers the mask from the output (a kept weight
    is positive unless it is 0, where softmax's backward multiplies the gradient by that 0), so none is kept."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, p: float) -> torch.Tensor:
        output = weights * dropout_keep_mask(weights, p, scaled=False)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (output,) = ctx.saved_tensors
        return _positive_part_grad(grad, output, 1.0), None


def _samples_words(module: nn.Dropout, hidden: torch.Tensor) -> bool:
    return module.training and module.p > 0 and hidden.device.type == "cpu" and not torch.compiler.is_compiling()


class WordDropout(nn.Dropout):
    """`nn.Dropout` whose CPU training masks come from [`word_dropout`]."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return word_dropout(hidden, self.p) if _samples_words(self, hidden) else super().forward(hidden)


class ReLUWordDropout(nn.Dropout):
    """`dropout(relu(x))` fused into one masked multiply in CPU training (stands for a ReLU followed by a dropout)."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if _samples_words(self, hidden) and hidden.requires_grad:
            return _ReLUWordDropout.apply(hidden, self.p)
        return super().forward(F.relu(hidden))


def sdpa_with_word_dropout(module, query, key, value, attention_mask, dropout: float = 0.0,
                           scaling: float | None = None, **kwargs):
    """SDPA's math (softmax(q k^T * scaling + mask) v) with the attention weights' dropout drawn as words; without
    dropout, or off the CPU, transformers' SDPA function itself. Takes SDPA's masks (boolean, True = attend)."""
    if dropout == 0 or query.device.type != "cpu" or torch.compiler.is_compiling():
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scaling, key.transpose(-2, -1))
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf")) if attention_mask.dtype == torch.bool \
            else scores + attention_mask
    weights = scores.softmax(dim=-1)
    _, levels, dropped = _word_rate(dropout)
    if dropped:
        weights = weights * 0 if dropped == levels else _WeightsWordDropout.apply(weights, dropout)
    attended = torch.matmul(weights, value)
    if word_dropout_scale(dropout) != 1.0:
        attended = attended * word_dropout_scale(dropout)
    return attended.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, sdpa_with_word_dropout)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def fusion_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of a Semi-IIN (base or with heads) outside its bundled encoders."""
    encoders = set(getattr(model, "encoders", nn.ModuleDict()).modules())
    return [module for module in model.modules() if module not in encoders]


def apply_cpu_word_dropout(model: nn.Module) -> bool:
    """Put the word-dropout modules and attention function into a Semi-IIN's fusion part; its bundled encoders are
    left alone. Returns False (and changes nothing) for any other model. The weights, the saved config and the
    model's code are unchanged."""
    if getattr(model.config, "model_type", None) != "semi_iin":
        return False
    for parent in fusion_modules(model):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, WordDropout(child.p))
        if type(parent).__name__ == "SemiIINFeedForward" and isinstance(parent.activation, nn.ReLU):
            parent.activation, parent.intermediate_dropout = nn.Identity(), ReLUWordDropout(parent.intermediate_dropout.p)
    if model.config._attn_implementation == "sdpa":
        model.set_attn_implementation(ATTENTION_NAME)
    return True


def remove_cpu_word_dropout(model: nn.Module) -> None:
    """Undo [`apply_cpu_word_dropout`]: PyTorch's modules and SDPA again."""
    for parent in fusion_modules(model):
        for name, child in list(parent.named_children()):
            if isinstance(child, ReLUWordDropout):
                parent.activation = nn.ReLU()
                setattr(parent, name, nn.Dropout(child.p))
            elif isinstance(child, WordDropout):
                setattr(parent, name, nn.Dropout(child.p))
    if getattr(model.config, "_attn_implementation", None) == ATTENTION_NAME:
        model.set_attn_implementation("sdpa")
