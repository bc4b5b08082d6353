"""The CPU fast paths of Semi-IIN training (issue #15): dropout masks from random words, the frames-last Conv1d
and glibc's allocator kept from returning freed memory. Each is checked against what it replaces."""

import itertools
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import random_batch, tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis, msa_utils
from modeling_msa.modeling_semi_iin import (
    _conv1d_frames_last_compiled,
    attention_with_word_dropout,
    conv1d_frames_last,
)
from modeling_msa.msa_utils import Dropout, dropout_keep_mask, prefix_mask, random_words, word_dropout
from training_msa.runtime import (
    allocator_chosen_by_the_user,
    environment_without_allocator_choice,
    keep_freed_cpu_memory_for_reuse,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("p, bits", [(0.5, 8), (0.25, 8), (0.2, 16), (0.1, 16)])
def test_word_dropout_drops_at_the_documented_rate_and_keeps_the_mean(p, bits):
    torch.manual_seed(0)
    ones = torch.ones(1001, 999)  # an element count that is no multiple of the words per draw
    output = word_dropout(ones, p)
    levels = 1 << bits
    q = round(p * levels) / levels  # the rate actually used
    assert abs(q - p) <= 2 ** -17
    dropped = (output == 0).double().mean().item()
    sigma = math.sqrt(q * (1 - q) / ones.numel())
    assert abs(dropped - q) < 5 * sigma
    values = torch.unique(output).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - q), rel=1e-6)
    assert abs(output.double().mean().item() - 1.0) < 5 * sigma / (1 - q)


def test_word_dropout_masks_are_independent_between_neighbours_and_calls():
    torch.manual_seed(0)
    kept = (word_dropout(torch.ones(4_000_000), 0.5) != 0).double()
    # neighbouring elements come from the same 64-bit draw: their masks must still be uncorrelated
    for lag in (1, 2, 3, 4, 8):
        correlation = torch.corrcoef(torch.stack([kept[:-lag], kept[lag:]]))[0, 1].item()
        assert abs(correlation) < 0.003, (lag, correlation)
    again = (word_dropout(torch.ones(4_000_000), 0.5) != 0).double()
    assert abs(torch.corrcoef(torch.stack([kept, again]))[0, 1].item()) < 0.003


def test_random_words_are_the_same_for_any_thread_count_and_dtype():
    threads = torch.get_num_threads()
    count = 3 * msa_utils._DRAWS_PER_CHUNK * 4 + 5  # several chunks of 16-bit words, the last one cut
    try:
        streams = []
        for thread_count in (1, 2, 3):
            torch.set_num_threads(thread_count)
            torch.manual_seed(11)
            streams.append(random_words(count, 16))
        torch.manual_seed(11)
        as_float = random_words(count, 16, dtype=torch.float32)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(stream, streams[0]) for stream in streams[1:])
    assert torch.equal(as_float, streams[0].float())
    chunk = msa_utils._DRAWS_PER_CHUNK * 4
    first, second = streams[0][:chunk].double(), streams[0][chunk:2 * chunk].double()
    assert abs(torch.corrcoef(torch.stack([first, second]))[0, 1].item()) < 0.005  # chunks are separate streams


def test_word_dropout_follows_torch_manual_seed():
    x = torch.randn(64, 33)
    torch.manual_seed(7)
    first = word_dropout(x, 0.2)
    torch.manual_seed(7)
    assert torch.equal(word_dropout(x, 0.2), first)
    assert not torch.equal(word_dropout(x, 0.2), first)
    torch.manual_seed(7)
    words = random_words(1000, 16)
    assert words.dtype == torch.int16 and words.shape == (1000,)
    assert words.min() < -30000 and words.max() > 30000  # the whole signed 16-bit range


@pytest.mark.parametrize("p, bits", [(0.5, 8), (0.1, 16), (1 / 3, 16)])
def test_keep_mask_values_equal_the_word_comparison_for_every_word(p, bits):
    """Each chunk's words become mask values in numpy (a comparison cast to float, or a bf16/fp16 bit pattern): it
    must be exactly word >= t times the scale in the mask's dtype, at the boundary words t - 1 and t as everywhere
    else, across block edges."""

    levels = 1 << bits
    dropped = round(p * levels)
    threshold = dropped - levels // 2
    every_word = torch.arange(-(levels // 2), levels // 2, dtype=torch.int8 if bits == 8 else torch.int16)
    words = every_word.repeat(-(-(msa_utils._BLOCK + 7) // levels))  # more than one block
    for dtype in (torch.float32, torch.bfloat16, torch.float64, torch.float16):
        for scaled in (True, False):
            kept = torch.tensor(levels / (levels - dropped) if scaled else 1.0, dtype=dtype)
            mask = torch.empty(words.numel(), dtype=dtype)
            target = mask.view(msa_utils._INTEGER_VIEWS.get(dtype, dtype)).numpy()
            msa_utils._keep_writer(threshold, kept)(words.numpy(), target)
            expected = torch.where(words.long() >= threshold, kept, torch.zeros((), dtype=dtype))
            assert torch.equal(mask, expected), (dtype, scaled)
            assert (mask[:levels] == 0).sum() == dropped  # exactly q of all the words are dropped


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_keep_mask_is_the_comparison_of_the_seeded_word_stream(dtype):
    """dropout_keep_mask draws the same words as random_words under the same seed (several chunks, the last cut),
    and keeps exactly those >= t."""
    count = 2 * msa_utils._DRAWS_PER_CHUNK * 4 + 3
    threshold = round(0.1 * 65536) - 32768
    torch.manual_seed(5)
    words = random_words(count, 16)
    torch.manual_seed(5)
    mask = dropout_keep_mask(torch.empty(count, dtype=dtype), 0.1, scaled=False)
    assert mask.dtype == dtype and torch.equal(mask, (words >= threshold).to(dtype))


def test_fused_relu_dropout_keeps_no_mask_for_backward():
    x = torch.randn(64, 512, requires_grad=True)
    output = Dropout(0.2).train().after_relu(x)
    saved = [tensor for tensor in (output.grad_fn.saved_tensors or ())]
    assert len(saved) == 1 and saved[0].data_ptr() == output.data_ptr()  # the output itself, no extra mask


def test_word_dropout_gradient_is_the_scaled_mask():
    torch.manual_seed(0)
    x = torch.randn(17, 31, requires_grad=True)
    output = word_dropout(x, 0.2)
    output.sum().backward()
    kept = output.detach() != 0
    scale = 65536 / (65536 - round(0.2 * 65536))
    torch.testing.assert_close(x.grad, kept.float() * scale)
    torch.testing.assert_close(output[kept], x.detach()[kept] * scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_relu_dropout_equals_relu_then_dropout(dtype):
    x = torch.randn(40, 70, dtype=dtype, requires_grad=True)
    reference_input = x.detach().clone().requires_grad_()
    module = Dropout(0.2).train()
    torch.manual_seed(5)
    fused = module.after_relu(x)
    torch.manual_seed(5)  # the same words are drawn: the same elements dropped
    reference = word_dropout(F.relu(reference_input), 0.2)
    torch.testing.assert_close(fused, reference, rtol=0, atol=0)
    upstream = torch.randn_like(fused)
    fused.backward(upstream)
    reference.backward(upstream)
    torch.testing.assert_close(x.grad, reference_input.grad, rtol=0, atol=0)
    assert torch.equal(module.eval().after_relu(x), F.relu(x))


def test_attention_with_word_dropout_is_sdpa_math_with_its_own_mask():
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 5, 8, generator=generator) for _ in range(3))
    key = key[:, :, :4]
    value = value[:, :, :4]
    key_mask = torch.zeros(2, 1, 1, 4).masked_fill_(torch.tensor([[False] * 4, [False, False, True, True]])[:, None, None],
                                                   float("-inf"))
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask)
    weights = (query @ key.transpose(-2, -1) / math.sqrt(8) + key_mask).softmax(-1)
    torch.manual_seed(3)
    found = attention_with_word_dropout(query, key, value, key_mask, 0.3)
    torch.manual_seed(3)
    torch.testing.assert_close(found, (weights * dropout_keep_mask(weights, 0.3)) @ value)
    # unbiased: averaged over many masks it approaches the attention without dropout
    mean = torch.stack([attention_with_word_dropout(query, key, value, key_mask, 0.3) for _ in range(2000)]).mean(0)
    torch.testing.assert_close(mean, expected, atol=0.06, rtol=0)
    assert (found[1, :, :, :] != 0).any() and torch.isfinite(found).all()


def test_dropout_module_eval_identity_and_pytorch_fallback():
    x = torch.randn(8, 20)
    fast = Dropout(0.3)
    assert torch.equal(fast.eval()(x), x)
    slow, reference = Dropout(0.3, fast_sampling=False).train(), torch.nn.Dropout(0.3).train()
    torch.manual_seed(1)
    expected = reference(x)
    torch.manual_seed(1)
    assert torch.equal(slow(x), expected)  # fast_sampling=False is PyTorch's dropout, draw for draw
    assert "fast_sampling=True" in repr(fast)


@pytest.mark.parametrize("fast", [True, False])
def test_semi_iin_config_chooses_the_dropout_sampler(fast):
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(fast_cpu_dropout=fast))
    dropouts = [module for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    assert dropouts and all(isinstance(module, Dropout) and module.fast_sampling is fast for module in dropouts)
    model.train()
    batch = random_batch()
    loss = model(**batch, labels=torch.tensor([0.5, -1.0, 2.0])).loss
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("implementation", [conv1d_frames_last, _conv1d_frames_last_compiled],
                         ids=["eager", "compiled"])
@pytest.mark.parametrize("kernel, stride, padding", [
    (k, s, p) for k, s, p in itertools.product((1, 2, 3, 4, 5), (1, 2, 3, 4), (0, 1, 2)) if p < k
])
def test_frames_last_conv1d_equals_conv1d_on_masked_frames(kernel, stride, padding, implementation):
    """Both versions (eager, and the branch-free one compiled graphs trace) on every length residue."""
    torch.manual_seed(kernel * 100 + stride * 10 + padding)
    for length in (1, 2, 3, 5, 6, 7, 8, 50, 51):
        frames = torch.randn(3, length, 6, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(5, 6, kernel, dtype=torch.float64, requires_grad=True)
        mask = prefix_mask(torch.tensor([length, max(1, length // 2), 1]), length)
        reference_input = (frames * mask[..., None]).transpose(1, 2)
        shortfall = kernel - 2 * padding - length
        if shortfall > 0:  # what SemiIINFeatureProjection did: zero-extend to one output
            reference_input = F.pad(reference_input, (0, shortfall))
        expected = F.conv1d(reference_input, weight, stride=stride, padding=padding).transpose(1, 2)
        found = implementation(frames, weight, stride, padding, mask)
        torch.testing.assert_close(found, expected)
        upstream = torch.randn_like(expected)
        expected_grads = torch.autograd.grad(expected, (frames, weight), upstream)
        found_grads = torch.autograd.grad(found, (frames, weight), upstream)
        for a, b in zip(found_grads, expected_grads):
            torch.testing.assert_close(a, b)


def test_allocator_tuning_respects_a_chosen_allocator(monkeypatch):
    for name, value in (("LD_PRELOAD", "libjemalloc.so.2"), ("MALLOC_MMAP_THRESHOLD_", "1"), ("MALLOC_MMAP_MAX_", "0"),
                        ("MALLOC_TRIM_THRESHOLD_", "1"), ("MALLOC_TOP_PAD_", "1"), ("MALLOC_ARENA_MAX", "2"),
                        ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0")):
        monkeypatch.setenv(name, value)
        assert allocator_chosen_by_the_user()
        assert keep_freed_cpu_memory_for_reuse() is False
        monkeypatch.delenv(name)
    unrelated = {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F", "OMP_NUM_THREADS": "2"}
    assert not allocator_chosen_by_the_user(unrelated)
    chosen = {**unrelated, "MALLOC_ARENA_MAX": "2", "LD_PRELOAD": "x.so"}
    assert environment_without_allocator_choice(chosen) == unrelated


def _page_faults_untuned_and_tuned(script: str) -> dict[str, float]:
    """Runs `script` (its argv[1]: "1" to apply the allocator tuning; it prints whether it applied and a page-fault
    count) in two fresh interpreters free of any allocator choice of this environment: {"0": untuned, "1": tuned}."""
    faults = {}
    for tuned in ("0", "1"):
        result = subprocess.run([sys.executable, "-c", script, tuned], capture_output=True, text=True,
                                env=environment_without_allocator_choice(), timeout=300)
        assert result.returncode == 0, result.stderr
        applied, count = result.stdout.split()
        assert applied == ("True" if tuned == "1" else "False")
        faults[tuned] = float(count)
    return faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_allocator_tuning_stops_the_page_faults_of_a_training_step():
    """Two fresh interpreters run the same Semi-IIN steps; with the tuning, the steps page-fault far less."""
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'benchmarks')!r}]
        import torch
        torch.set_num_threads(1)
        from training_msa.runtime import keep_freed_cpu_memory_for_reuse
        applied = sys.argv[1] == "1" and keep_freed_cpu_memory_for_reuse()
        import mfu
        shapes = {{"text": (50, 768), "audio": (100, 5), "vision": (100, 20)}}
        model, optimizer = mfu.build(shapes, "cpu", 0.0)
        inputs = mfu.random_batch(shapes, 16, "cpu")
        for _ in range(6):  # the heap grows to its working size (tuned, it still grows now and then until ~step 9)
            mfu.train_step(model, optimizer, inputs)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(6):
            mfu.train_step(model, optimizer, inputs)
        print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 6)
    """)
    faults = _page_faults_untuned_and_tuned(script)
    assert faults["1"] < 0.3 * faults["0"], faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_allocator_tuning_reuses_blocks_above_the_largest_mmap_threshold():
    """Tensors of 64 MiB (MMSA's T ~ 600 attention weights are 128 MiB) are above glibc's largest mmap threshold
    (32 MiB): untuned, each one is a fresh mapping, page-faulted in page by page; tuned, the heap serves it again."""
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path[:0] = [{str(ROOT)!r}]
        import torch
        from training_msa.runtime import keep_freed_cpu_memory_for_reuse
        applied = sys.argv[1] == "1" and keep_freed_cpu_memory_for_reuse()
        def allocate_and_free():
            blocks = [torch.ones(16 << 20) for _ in range(3)]  # 64 MiB each, written (faulted in) by the fill
            return sum(float(block[-1]) for block in blocks)
        for _ in range(6):  # tuned, the heap grows to its working size over the first rounds
            allocate_and_free()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            allocate_and_free()
        print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
    """)
    faults = _page_faults_untuned_and_tuned(script)
    assert faults["0"] > 3 * 16384 * 0.9, faults  # three 64 MiB blocks of 4 KiB pages, faulted in every round
    assert faults["1"] < 0.05 * faults["0"], faults


@pytest.mark.parametrize("fused", [False, True])
def test_bf16_dropout_scale_is_not_rounded_to_bf16(fused):
    """1 / (1 - 0.1) is not a bf16 number: a mask holding it rounded (1.109375) would shrink every kept element by
    0.16%. Each output must be the correctly rounded bf16 of x * scale."""
    torch.manual_seed(0)
    x = torch.randn(300, 700).abs().bfloat16().requires_grad_()
    module = Dropout(0.1).train()
    output = module.after_relu(x) if fused else module(x)
    scale = 65536 / (65536 - round(0.1 * 65536))
    kept = output.detach() != 0
    expected = (x.detach().double() * scale).bfloat16()
    assert torch.equal(output.detach()[kept], expected[kept])
    assert abs(kept.double().mean().item() - 0.9) < 0.005
    output.backward(torch.ones_like(output))
    assert torch.equal(x.grad[kept], torch.full_like(x.grad[kept], scale))  # bf16(scale): the one rounding


def test_attention_under_bf16_autocast_keeps_the_weights_in_bf16():
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 6, 8, generator=generator) for _ in range(3))
    key_mask = torch.zeros(2, 1, 1, 6)
    key_mask[1, ..., 4:] = float("-inf")
    seen = []
    original = torch.Tensor.softmax
    with pytest.MonkeyPatch.context() as patch, torch.autocast("cpu", dtype=torch.bfloat16):
        patch.setattr(torch.Tensor, "softmax", lambda self, *a, **k: seen.append(self.dtype) or original(self, *a, **k))
        output = attention_with_word_dropout(query, key, value, key_mask, 0.1)
    assert seen == [torch.bfloat16] and output.dtype == torch.bfloat16 and torch.isfinite(output).all()
