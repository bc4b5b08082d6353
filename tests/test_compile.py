"""torch.compile captures both models (dynamo + AOT autograd, checked with the `aot_eager` backend, which needs no
C++ compilation): same loss and gradients as eager. Semi-IIN is one graph (`fullgraph=True`); the shared/private
model's nn.LSTMs are run eagerly between graphs (dynamo does not trace RNN modules). Speed-ups with the inductor
backend: benchmarks/compile_speedup.py."""

import pytest
import torch

from conftest import TINY_DIMS, random_batch, tiny_semi_iin_config
from modeling_msa import SemiIINForSentimentAnalysis, SharedPrivateConfig, SharedPrivateForSentimentAnalysis
from modeling_msa.dropout_kernels import KERNELS

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


@pytest.mark.parametrize("kernels", [True, False], ids=["numba", "numpy"])
def test_compiled_training_mode_semi_iin_keeps_the_word_dropout_in_one_graph(monkeypatch, kernels):
    """In train mode the CPU word-dropout masks come from the custom op `msa_hub::dropout_keep_mask` inside the
    graph (eager, with the numba kernels, multiplies some without writing them, from the same words): one graph,
    the same draws in the same order as eager (same seed), so the same loss and gradients."""
    from modeling_msa import msa_utils

    draws = []
    for name in ("_cpu_keep_mask", "_cpu_keep_times"):
        original = getattr(msa_utils, name)
        def recorded(*args, _name=name, _original=original, **kwargs):
            result = _original(*args, **kwargs)
            if result is not None:  # a draw (`_cpu_keep_times` returns None where it does not apply)
                draws.append(_name)
            return result
        monkeypatch.setattr(msa_utils, name, recorded)
    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config()).train()
    assert model.config.fast_cpu_dropout and model.config.attention_dropout > 0
    model.validate_inputs = False
    batch = {**random_batch(), "labels": LABELS}
    with msa_utils.use_dropout_kernels(kernels):
        torch.manual_seed(1)
        eager = model(**batch)
        eager.loss.backward()
        expected = gradients(model)
        model.zero_grad(set_to_none=True)
        eager_draws, draws[:] = list(draws), []
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        torch.manual_seed(1)
        output = compiled(**batch)
        output.loss.backward()
    # every dropout of the step drew its mask through the op, once per eager draw (a mask or a masked product)
    assert len(draws) > 10 and draws == ["_cpu_keep_mask"] * len(eager_draws)
    assert ("_cpu_keep_times" in eager_draws) == (kernels and KERNELS is not None)
    torch.testing.assert_close(output.loss, eager.loss)
    found = gradients(model)
    assert found.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], rtol=1e-4, atol=1e-6, msg=key)


def test_compiled_bf16_autocast_training_step_is_one_graph():
    """Under bf16 autocast (train.py's `--bf16` / `--cpu_amx_bf16`) the word dropout asks whether its scale is exact
    in bf16: plain Python arithmetic, so the step is one graph (a tensor round trip broke it 13 times on `.item()`
    where fullgraph is off, torch.compile's default)."""
    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config()).train()
    model.validate_inputs = False
    batch = {**random_batch(), "labels": LABELS}
    torch._dynamo.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        explained = torch._dynamo.explain(model)(**batch)
        output = torch.compile(model, backend="aot_eager")(**batch)
    assert explained.graph_break_count == 0, [str(reason.reason)[:200] for reason in explained.break_reasons]
    output.loss.backward()
    assert torch.isfinite(output.loss) and all(torch.isfinite(g).all() for g in gradients(model).values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_dropout_scale_exactness_matches_a_round_trip_through_the_dtype(dtype):
    from modeling_msa.msa_utils import _scale_is_exact

    scales = [1 / (1 - p) for p in (0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9, 0.999)]
    scales += [1 + 2.0 ** -bits for bits in (6, 7, 8, 10, 11, 23, 24, 52)] + [70000.0, 2.0 ** 130]
    for scale in scales:
        expected = torch.tensor(scale, dtype=torch.float64).to(dtype).double().item() == scale
        assert _scale_is_exact(dtype, scale) == expected, (dtype, scale)


NO_DROPOUT = dict(attention_dropout=0.0, input_dropout=0.0, embedding_dropout=0.0, residual_dropout=0.0,
                  relu_dropout=0.0)


@pytest.mark.parametrize("overrides", [dict(relu_dropout=0.2), NO_DROPOUT], ids=["paper_dropouts", "no_dropout"])
def test_compiled_training_graph_saves_no_bool_masks_for_backward(overrides):
    """The backward of the feed-forward ReLU (with or without its word dropout) and of the attention-weight dropout
    is the custom op `msa_hub::positive_part_grad` in compiled CPU graphs: inductor's partitioner then saves the
    outputs, which the next matmul saves anyway, instead of also storing a bool `output <= 0` per element in forward
    (a slow loop in inductor's CPU code: compiled steps were 0.8x as fast as eager before). Inductor's own graph
    passes and partitioner run; its code generation does not (`inner_compile` returns the partitioned graphs as they
    are)."""
    import functools

    from functorch.compile import make_boxed_func
    from torch._inductor.compile_fx import compile_fx

    saved = []

    def inner_compile(graph, example_inputs, **kwargs):
        if not kwargs.get("is_backward"):
            (output_node,) = [node for node in graph.graph.nodes if node.op == "output"]
            saved.extend(node.meta["val"] for node in output_node.args[0]
                         if isinstance(node, torch.fx.Node) and isinstance(node.meta.get("val"), torch.Tensor))
        return make_boxed_func(graph.forward)

    torch.manual_seed(0)
    model = SemiIINForSentimentAnalysis(tiny_semi_iin_config(**overrides)).train()
    model.validate_inputs = False
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=functools.partial(compile_fx, inner_compile=inner_compile),
                             fullgraph=True)
    batch = random_batch()
    compiled(**batch, labels=LABELS).loss.backward()
    bools = [tuple(tensor.shape) for tensor in saved if tensor.dtype == torch.bool]
    assert any(tensor.dtype == torch.float32 for tensor in saved)
    # frame masks of the inputs may be saved ([batch, frames], the audio's zero-extended by the compiled convolution
    # by a few frames); no bool of a hidden or attention activation ([batch, tokens, hidden], [batch, heads, T, T])
    frames = max(batch[f"{modality}_features"].shape[1] for modality in ("text", "audio", "vision"))
    assert all(len(shape) == 2 and shape[0] == len(LABELS) and shape[1] <= frames + 8 for shape in bools), bools


def test_custom_ops_of_compiled_graphs():
    """The ops compiled CPU graphs call: `msa_hub::positive_part_grad` is `threshold_backward(grad, output, 0) *
    scale`; `msa_hub::dropout_keep_mask`'s 0/1 byte masks (what compiled graphs draw) are the float masks' 0/1
    values, with and without the kernels; schemas and fake implementations pass `torch.library.opcheck`."""
    from modeling_msa.msa_utils import _cpu_keep_mask, _positive_part_grad, use_dropout_kernels

    generator = torch.Generator().manual_seed(0)
    grad = torch.randn(4, 33, generator=generator)
    output = torch.relu(torch.randn(4, 33, generator=generator))
    output[0, :3] = torch.tensor([0.0, -0.0, 1e-30])
    for scale in (1.0, 1 / 0.9):
        expected = torch.ops.aten.threshold_backward(grad, output, 0) * scale
        torch.testing.assert_close(torch.ops.msa_hub.positive_part_grad(grad, output, scale), expected, rtol=0, atol=0)
        torch.testing.assert_close(_positive_part_grad(grad, output, scale), expected, rtol=0, atol=0)
        torch.library.opcheck(torch.ops.msa_hub.positive_part_grad, (grad, output, scale))
    for dtype in (torch.float32, torch.uint8):
        arguments = (torch.tensor(7), [4, 33], dtype, 0.1, dtype.is_floating_point)
        torch.library.opcheck(torch.ops.msa_hub.dropout_keep_mask, arguments,
                              test_utils=("test_schema", "test_faketensor"))
    for kernels in (True, False):
        with use_dropout_kernels(kernels):
            for p in (0.1, 0.5):
                keep = torch.ops.msa_hub.dropout_keep_mask(torch.tensor(7), [3, 70, 41], torch.uint8, p, False)
                assert keep.dtype == torch.uint8
                assert torch.equal(keep.float(), _cpu_keep_mask((3, 70, 41), torch.float32, p, False, 7)), (p, kernels)


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
