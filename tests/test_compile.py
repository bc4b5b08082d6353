"""torch.compile captures both models (dynamo + AOT autograd, checked with the `aot_eager` backend, which needs no
C++ compilation): same loss and gradients as eager. Semi-IIN is one graph (`fullgraph=True`); the shared/private
model's nn.LSTMs are run eagerly between graphs (dynamo does not trace RNN modules). Speed-ups with the inductor
backend: benchmarks/compile_speedup.py."""

import pytest
import torch

from conftest import TINY_DIMS, random_batch, tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateConfig, SharedPrivateForSentimentAnalysis

LABELS = torch.tensor([0.5, -1.0, 2.0])


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["semi_iin", "shared_private"])
def test_compiled_training_step_equals_eager(name):
    torch.manual_seed(0)
    if name == "semi_iin":
        model = SemiIINForSentimentAnalysis(tiny_semi_iin_config())
    else:
        model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(text_input="features", **TINY_DIMS))
    model.eval()  # dropout off: the two runs see the same network
    model.validate_inputs = False  # as under MSATrainer (the checks' host sync would break the graph)
    batch = {**random_batch(), "labels": LABELS}
    eager = model(**batch)
    eager.loss.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=name == "semi_iin")
    output = compiled(**batch)
    output.loss.backward()
    torch.testing.assert_close(output.loss, eager.loss)
    torch.testing.assert_close(output.logits, eager.logits)
    found = gradients(model)
    assert found.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], rtol=1e-4, atol=1e-6, msg=key)
    # new data of the same shapes reuses the graph; other lengths (a bucket of another size) compile once more
    other = {**random_batch(seed=1), "labels": LABELS}
    torch.testing.assert_close(compiled(**other).logits, model(**other).logits)


def test_compiled_training_mode_semi_iin_keeps_the_word_dropout_in_one_graph(monkeypatch):
    """In train mode the CPU word-dropout masks come from the custom op `msa_hub::dropout_keep_mask` inside the
    graph: one graph, the same masks in the same order as eager (same seed), so the same loss and gradients."""
    from modeling_msa import msa_utils

    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config()).train()
    assert model.config.fast_cpu_dropout and model.config.attention_dropout > 0
    model.validate_inputs = False
    batch = {**random_batch(), "labels": LABELS}
    torch.manual_seed(1)
    eager = model(**batch)
    eager.loss.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    masks = []
    original = msa_utils._cpu_keep_mask
    monkeypatch.setattr(msa_utils, "_cpu_keep_mask", lambda *args: masks.append(args) or original(*args))
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    torch.manual_seed(1)
    output = compiled(**batch)
    output.loss.backward()
    assert len(masks) > 10  # every dropout of the step drew its mask through the op
    torch.testing.assert_close(output.loss, eager.loss)
    found = gradients(model)
    assert found.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], rtol=1e-4, atol=1e-6, msg=key)
