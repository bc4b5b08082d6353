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


@pytest.mark.parametrize("mode", ["eval", "train_bf16"])
@pytest.mark.parametrize("name", ["semi_iin", "shared_private"])
def test_compiled_model_serves_every_length_after_one_dynamic_recompile(name, mode):
    """Variable-length batches (Trainer's default: padded to the batch's longest): the second shape recompiles once
    with dynamic lengths, and that graph serves every later length, whatever its residue modulo the audio strides
    (Semi-IIN's frames-last convolution branched on it: a recompile every few steps, minutes each on a CPU)."""
    from torch._dynamo.testing import CompileCounter

    torch.manual_seed(0)
    if name == "semi_iin":
        model = SemiIINForSentimentAnalysis(tiny_semi_iin_config())
    else:
        model = SharedPrivateForSentimentAnalysis(SharedPrivateConfig(text_input="features", **TINY_DIMS))
    model.train(mode == "train_bf16")  # training: the word dropouts' paths, under train.py's bf16 autocast on AMX
    model.validate_inputs = False
    counter = CompileCounter()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=counter)
    graphs = []
    for step in range(6):  # audio 40, 37, ..., 25 frames: every residue modulo 2 and 4
        lengths = dict(text=(10 - step, 7, 4), audio=(40 - 3 * step, 23, 9), vision=(9 - step, 5, 2))
        batch = {**random_batch(seed=step, **lengths), "labels": LABELS}
        if mode == "eval":
            torch.testing.assert_close(compiled(**batch).logits, model(**batch).logits)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = compiled(**batch).loss
            loss.backward()
            assert torch.isfinite(loss)
        graphs.append(counter.frame_count)
    assert graphs[1] == 2 * graphs[0] and graphs[-1] == graphs[1], graphs  # static, dynamic, then no recompile


@pytest.mark.parametrize("dynamic", [True, False, None])
def test_train_py_compiles_for_dynamic_shapes_by_default(monkeypatch, tmp_path, dynamic):
    """`--torch_compile` (Trainer -> accelerate) with `--torch_compile_dynamic` (default true): the model is compiled
    for dynamic shapes from the first step; None leaves accelerate's (and torch's automatic) choice."""
    from training_msa import MSATrainer, MSATrainingArguments

    for name in ("ACCELERATE_DYNAMO_USE_DYNAMIC", "ACCELERATE_DYNAMO_BACKEND", "ACCELERATE_DYNAMO_MODE"):
        monkeypatch.delenv(name, raising=False)
    options = {} if dynamic is True else {"torch_compile_dynamic": dynamic}  # True: the default
    args = MSATrainingArguments(output_dir=str(tmp_path), torch_compile=True, report_to=[], **options)
    trainer = MSATrainer(model=SemiIINForSentimentAnalysis(tiny_semi_iin_config()), args=args)
    assert trainer.accelerator.state.dynamo_plugin.dynamic is dynamic
