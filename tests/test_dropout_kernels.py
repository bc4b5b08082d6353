"""The numba kernels of CPU word dropout (`modeling_msa/dropout_kernels.py`, issue #15) against the numpy path they
replace: the same masks, the same products bit for bit, the same training step; and the numpy path without numba."""

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import random_batch, tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis, msa_utils
from modeling_msa.dropout_kernels import KERNELS
from modeling_msa.modeling_semi_iin import attention_with_word_dropout
from modeling_msa.msa_utils import Dropout, drop_attention_weights, dropout_keep_mask, use_dropout_kernels, word_dropout

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(KERNELS is None, reason="numba is not installed")
CHUNK = msa_utils._DRAWS_PER_CHUNK


def both_paths(function):
    """function() with the kernels, then with the numpy path, each from the same torch seed."""
    results = []
    for enabled in (True, False):
        torch.manual_seed(21)
        with use_dropout_kernels(enabled):
            results.append(function())
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("p", [0.5, 0.2, 0.1, 1 / 3])
def test_kernel_masks_are_the_numpy_masks(dtype, p):
    # several chunks, the last one cut inside a block and inside a draw; 3 threads share them out differently
    count = 2 * CHUNK * (8 if p == 0.5 else 4) + 4097 * 3 + 5
    threads = torch.get_num_threads()
    try:
        for thread_count in (1, 3):
            torch.set_num_threads(thread_count)
            for scaled in (True, False):
                kernel, numpy_path = both_paths(lambda: dropout_keep_mask(torch.empty(count, dtype=dtype), p, scaled))
                assert kernel.dtype == dtype and torch.equal(kernel, numpy_path), (thread_count, scaled)
    finally:
        torch.set_num_threads(threads)
    assert 0 < (kernel == 0).double().mean().item() < 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.5, 0.2])
def test_kernel_products_are_the_products_with_the_mask_bit_for_bit(dtype, p):
    x = torch.randn(3, CHUNK + 77, 5, dtype=dtype)
    x.view(-1)[:6] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, -1e-30], dtype=dtype)
    for relu in (False, True):
        torch.manual_seed(4)
        mask = dropout_keep_mask(x, p)
        torch.manual_seed(4)
        found = msa_utils._cpu_keep_times(x, p, relu=relu)
        expected = (F.relu(x) if relu else x) * mask
        assert torch.equal(found.isnan(), expected.isnan()), relu
        finite = ~expected.isnan()
        assert torch.equal(found[finite], expected[finite]) and torch.equal(found.signbit()[finite],
                                                                            expected.signbit()[finite]), relu
    assert msa_utils._cpu_keep_times(x.bfloat16(), p) is None  # no bf16 arithmetic in the kernels: the mask path


def test_training_step_is_the_same_with_and_without_kernels():
    """A Semi-IIN training step (every dropout kind, attention dropout on the weights) gives the same loss and
    gradients bit for bit either way."""
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(attention_dropout=0.1, input_dropout=0.5)).train()
    batch = random_batch()

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(**batch, labels=torch.tensor([0.5, -1.0, 2.0])).loss
        loss.backward()
        return loss.detach(), {name: parameter.grad.clone() for name, parameter in model.named_parameters()
                               if parameter.grad is not None}

    (loss, grads), (numpy_loss, numpy_grads) = both_paths(step)
    assert torch.equal(loss, numpy_loss) and grads.keys() == numpy_grads.keys()
    assert all(torch.equal(grads[name], numpy_grads[name]) for name in grads), [
        name for name in grads if not torch.equal(grads[name], numpy_grads[name])]


def test_attention_weights_dropout_keeps_no_mask_and_has_the_masked_gradient():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, 6, 7, generator=generator)
    scores[1, :, :, 5:] = float("-inf")  # padded keys: weights exactly 0
    leaf = scores.clone().requires_grad_()
    reference_leaf = scores.clone().requires_grad_()
    upstream = torch.randn(2, 3, 6, 7, generator=generator)
    torch.manual_seed(9)
    dropped = drop_attention_weights(leaf.softmax(-1), 0.3)
    assert [t.data_ptr() for t in dropped.grad_fn.saved_tensors] == [dropped.data_ptr()]  # the output, no mask
    dropped.backward(upstream)
    torch.manual_seed(9)
    weights = reference_leaf.softmax(-1)
    expected = weights * dropout_keep_mask(weights, 0.3, scaled=False)
    expected.backward(upstream)
    assert torch.equal(dropped, expected)
    torch.testing.assert_close(leaf.grad, reference_leaf.grad, rtol=0, atol=0)
    assert torch.equal(drop_attention_weights(weights, 2 ** -20), weights)  # p rounds to 0: the weights themselves


def test_attention_and_dropout_modules_give_the_same_values_either_way():
    generator = torch.Generator().manual_seed(1)
    query, key, value = (torch.randn(2, 2, 9, 4, generator=generator, requires_grad=True) for _ in range(3))
    mask = torch.zeros(2, 1, 1, 9)
    kernel, numpy_path = both_paths(lambda: attention_with_word_dropout(query, key, value, mask, 0.1))
    assert torch.equal(kernel, numpy_path)
    x = torch.randn(33, 65)
    dropout = Dropout(0.2).train()
    for function in (lambda: dropout(x), lambda: dropout.after_relu(x.requires_grad_()), lambda: word_dropout(x, 0.5)):
        kernel, numpy_path = both_paths(function)
        assert torch.equal(kernel, numpy_path)


def test_kernels_never_run_in_the_calling_thread(monkeypatch):
    """numba compiles a kernel on its first call; a Ctrl-C raised inside its compiler left numba broken (a
    RuntimeError, not the KeyboardInterrupt train.py turns into one line), so even with one torch thread the kernels
    run in the pool and the calling thread only waits."""
    threads = []
    monkeypatch.setitem(KERNELS, "keep_mask", lambda *args: threads.append(threading.current_thread()))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        msa_utils._cpu_keep_mask((3 * CHUNK * 4,), torch.float32, 0.2, True)
    finally:
        torch.set_num_threads(previous)
    assert len(threads) == 3 and threading.main_thread() not in threads


def test_without_numba_the_numpy_path_draws_the_same_masks():
    blocked = textwrap.dedent(
        """
        import json, sys
        sys.modules["numba"] = None  # `import numba` raises ImportError
        import torch
        from modeling_msa import dropout_kernels
        from modeling_msa.msa_utils import word_dropout
        torch.manual_seed(3)
        x = torch.arange(1.0, 40_001.0)
        print(json.dumps({"kernels": dropout_kernels.KERNELS is None, "kept": (word_dropout(x, 0.2) != 0).tolist()}))
        """
    )
    result = subprocess.run([sys.executable, "-c", blocked], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["kernels"] is True
    torch.manual_seed(3)
    kept = word_dropout(torch.arange(1.0, 40_001.0), 0.2) != 0
    assert found["kept"] == kept.tolist()
