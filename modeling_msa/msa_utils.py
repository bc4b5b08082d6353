"""Input checks, length/mask helpers and label binning shared by the msa-hub models."""

import contextlib
import math
import os

import torch
import torch.nn.functional as F

MODALITIES = ("text", "audio", "vision")  # the one modality tuple of msa-hub


def prefix_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size] boolean mask, True for the first `lengths[b]` positions of each row."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def conv_output_lengths(lengths: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Number of outputs of a Conv1d whose receptive field starts inside the real frames (clamped at 0)."""
    return torch.clamp(torch.div(lengths + 2 * padding - kernel_size, stride, rounding_mode="floor") + 1, min=0)


def intensity_to_class(labels: torch.Tensor, num_classes: int = 7) -> torch.Tensor:
    """Bin intensities into `num_classes` unit-wide classes centred on integers.

    For 7 classes: [-3,-2.5) -> 0, [-2.5,-1.5) -> 1, ..., [-0.5,0.5) -> 3, ..., [2.5,3] -> 6
    (left-closed bins; values beyond the range go to the end classes).
    """
    half = (num_classes - 1) / 2
    boundaries = torch.arange(-half + 0.5, half, 1.0, device=labels.device, dtype=torch.float64)
    return torch.bucketize(labels.detach().to(torch.float64), boundaries, right=True)


def check_feature_shapes(
    features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None], expected_sizes: dict[str, int]
) -> int:
    """Validate per-modality tensors by their metadata (rank, dtype, feature size, batch, mask shape); returns
    the batch size. Reads no tensor data, so it never synchronises with the device. Errors name the field."""
    batch = None
    for name, tensor in features.items():
        field = f"{name}_features"
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"{field} must be a float tensor [batch, frames, {expected_sizes[name]}], got {shape}.")
        if not tensor.is_floating_point():
            raise ValueError(f"{field} must be a floating-point tensor, got dtype {tensor.dtype}.")
        if tensor.shape[-1] != expected_sizes[name]:
            raise ValueError(
                f"{field} has feature size {tensor.shape[-1]} but the config expects {name}_feature_size="
                f"{expected_sizes[name]}: use features of that size or a config built for them."
            )
        if batch is None:
            batch = tensor.shape[0]
        elif tensor.shape[0] != batch:
            sizes = {f"{key}_features": value.shape[0] for key, value in features.items()}
            raise ValueError(f"Batch sizes differ between modalities: {sizes}.")
        mask = masks.get(name)
        if mask is not None and tuple(mask.shape) != tuple(tensor.shape[:2]):
            raise ValueError(
                f"{name}_attention_mask has shape {tuple(mask.shape)} but {field} is {tuple(tensor.shape)}: "
                "the mask must be [batch, frames]."
            )
    return batch


def lengths_from_mask(mask: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor:
    """Real lengths [B] from a right-padded 0/1 mask (all frames real when the mask is None); no host sync.
    The mask's form is checked by [`InputValueChecks`], not here."""
    batch, frames = features.shape[:2]
    if mask is None:
        return torch.full((batch,), frames, dtype=torch.long, device=features.device)
    return mask.to(device=features.device).ne(0).sum(-1)


class InputValueChecks:
    """The data-dependent input checks of a forward pass (finite features, 0/1 right-padded masks, a real
    frame per sample), collected as device tensors and read with ONE host sync by [`raise_if_failed`].

    The models run them when `model.validate_inputs` is True (the default) and not under `torch.compile`;
    `MSATrainer` switches them off around its steps because `MSADataCollator` has already checked the same
    on the CPU. Off, a forward pass has no data-dependent host sync."""

    def __init__(self):
        self._checks: list[tuple[str, torch.Tensor]] = []

    def fail_if(self, condition: torch.Tensor, message: str) -> None:
        """Record `condition` (a boolean scalar tensor, True = invalid) and the error it raises."""
        self._checks.append((message, condition))

    def features(self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor | None]) -> "InputValueChecks":
        for name, tensor in features.items():
            self.fail_if(
                ~torch.isfinite(tensor).all(),
                f"{name}_features contains NaN or inf values: clean the features (MMSA sets audio -inf to 0) "
                "before the model.",
            )
            mask = masks.get(name)
            if mask is None:
                continue
            field = f"{name}_attention_mask"
            binary = (mask == 0) | (mask == 1)
            self.fail_if(~binary.all(), f"{field} must hold only 0 (padding) and 1 (real frame).")
            real = mask.ne(0)
            self.fail_if(
                (real != prefix_mask(real.sum(-1), real.shape[-1])).any(),
                f"{field} must be right-padded: 1 for real frames first, then 0 for padding.",
            )
        return self

    def raise_if_failed(self) -> None:
        if not self._checks:
            return
        device = self._checks[0][1].device
        failed = torch.stack([condition.to(device) for _, condition in self._checks]).tolist()  # the one sync
        for (message, _), bad in zip(self._checks, failed):
            if bad:
                raise ValueError(message)


def should_check_input_values(model) -> bool:
    """Whether `model`'s forward runs its [`InputValueChecks`] (eager mode with `validate_inputs` on)."""
    return getattr(model, "validate_inputs", True) and not torch.compiler.is_compiling()


def encoder_output_size(config) -> int:
    """Width of the per-token (text/audio) or per-frame (vision) features an encoder config produces."""
    if config.model_type == "msa_face_cnn":
        return config.embedding_size
    if getattr(config, "hidden_sizes", None):
        return config.hidden_sizes[-1]
    return config.hidden_size


def bundled_encoder_modalities(config, candidates: tuple[str, ...]) -> tuple[str, ...]:
    """The `candidates` modalities whose `<modality>_config` (a bundled encoder) is set."""
    return tuple(name for name in candidates if getattr(config, f"{name}_config") is not None)


def sync_encoder_feature_sizes(config, candidates: tuple[str, ...]) -> None:
    """Set `<modality>_feature_size` to the output width of each bundled encoder among `candidates`."""
    for name in bundled_encoder_modalities(config, candidates):
        setattr(config, f"{name}_feature_size", encoder_output_size(getattr(config, f"{name}_config")))


def resolve_encoder_configs(config, default_model_types: dict[str, str]) -> None:
    """Turn each bundled-encoder sub-config given as a dict (as config.json holds it) into its config class: that of
    its `model_type`, else of the default one. None stays None (precomputed features). Done here rather than by
    transformers' `SubConfigSpec`, which is 5.20+, so that the configs (declaring `sub_configs`, the form older
    versions read too) load under transformers 5.17-5.19 as well: the GPU machine's 5.17, pyproject's floor."""
    from transformers import AutoConfig

    for key, default_model_type in default_model_types.items():
        value = getattr(config, key)
        if isinstance(value, dict):
            value = dict(value)
            model_type = value.pop("model_type", default_model_type)
            try:
                setattr(config, key, AutoConfig.for_model(model_type, **value))
            except ValueError as error:
                if "Unrecognized model identifier" not in str(error):
                    raise
                raise ValueError(f"{type(config).__name__}.{key}: model_type {model_type!r} is not a transformers "
                                 "config type (a newer transformers, or a typo?); give one AutoConfig knows, e.g. "
                                 f"{default_model_type!r}.") from None


# Written into config.json by transformers' registries rather than by a config field: `register_for_auto_class`
# (auto_map) and `PIPELINE_REGISTRY` (custom_pipelines). Everything else transformers knows is consumed by
# `PreTrainedConfig.__post_init__` (generation defaults such as use_cache, torch_dtype, name_or_path, ...).
REGISTRY_KEYS = frozenset({"auto_map", "custom_pipelines"})


def check_unknown_config_keys(config, given_keys) -> None:
    """Call after `PreTrainedConfig.__post_init__`: the given keys it left behind as plain attributes are neither
    fields nor keys transformers consumed. One that looks like a typo of a field ("hiden_size") is an error; any
    other is kept, with a warning."""
    import dataclasses
    import difflib
    import logging

    fields = {f.name for f in dataclasses.fields(type(config))}
    for key in given_keys:
        known = key in fields or key in REGISTRY_KEYS or hasattr(type(config), key)  # e.g. the class's model_type
        if key.startswith("_") or known or key not in vars(config):
            continue
        close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.85)
        if close:
            raise ValueError(f"{type(config).__name__} got unknown key {key!r}: did you mean {close[0]!r}?")
        logging.getLogger(__name__).warning("%s: unknown key %r is kept as an attribute but no model part reads it.",
                                            type(config).__name__, key)


class AutoMapMixin:
    """Saved with remote code, a model writes every Auto class of its family into `auto_map`, not only its own:
    `_auto_map_classes` maps an Auto class name to a class name of the same module."""

    _auto_map_classes: dict[str, str] = {}

    def save_pretrained(self, save_directory, *args, **kwargs):
        if getattr(self, "_auto_class", None) is not None:
            module = type(self).__module__.split(".")[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.update({auto: f"{module}.{name}" for auto, name in self._auto_map_classes.items()})
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


_DRAWS_PER_CHUNK = 1 << 17  # 64-bit draws per separately seeded chunk (1 MiB: an attention mask spans several threads)
_BLOCK = 1 << 16  # words turned into mask values at a time (cache-resident)
_draw_pool = None  # threads filling chunks: numpy releases the GIL while it draws, compares and casts
_INTEGER_VIEWS = {torch.bfloat16: torch.int16, torch.float16: torch.int16}  # numpy has no bfloat16
_BIT_VIEWS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.uint8: torch.uint8,  # masks the kernels
              **_INTEGER_VIEWS}  # write (uint8: the 0/1 masks of compiled graphs)
_use_dropout_kernels = os.environ.get("MSA_HUB_NUMBA_DROPOUT", "1") != "0"


def _dropout_kernels() -> dict | None:
    """The compiled word-dropout kernels of `dropout_kernels` (numba, imported on first use), or None: without
    numba, with `MSA_HUB_NUMBA_DROPOUT=0`, inside `use_dropout_kernels(False)`."""
    if not _use_dropout_kernels:
        return None
    from .dropout_kernels import KERNELS

    return KERNELS


@contextlib.contextmanager
def use_dropout_kernels(enabled: bool):
    """Within the block, CPU word dropout uses the numba kernels (when numba is installed) or, with `enabled=False`,
    its numpy path: the same masks and outputs either way (benchmarks and tests compare the two)."""
    global _use_dropout_kernels
    previous, _use_dropout_kernels = _use_dropout_kernels, enabled
    try:
        yield
    finally:
        _use_dropout_kernels = previous


def _run_kernel(kernel, count: int, bits: int, seed: int, *arrays_and_arguments) -> None:
    """`kernel(state, words, *slices, *arguments)` on each chunk of [`_for_each_chunk`]: the chunk's SFC64 state
    (numpy's, seeded with [seed, index]), a scratch block for its words, the chunk's slice of each numpy array
    among `arrays_and_arguments`, then the other arguments."""
    import numpy as np

    from .dropout_kernels import BLOCK_DRAWS

    word = np.int8 if bits == 8 else np.int16

    def fill(index: int, start: int, size: int) -> None:
        state = np.random.SFC64([seed, index]).state["state"]["state"]  # the kernel advances a copy
        values = [value[start:start + size] if isinstance(value, np.ndarray) else value
                  for value in arrays_and_arguments]
        kernel(state, np.empty(BLOCK_DRAWS * 64 // bits, word), *values)

    # Never in the calling thread: numba compiles a kernel on its first call, and a Ctrl-C (KeyboardInterrupt) raised
    # inside its compiler broke numba's state (a RuntimeError instead of the interrupt); the calling thread only waits.
    _for_each_chunk(count, bits, seed, fill, in_pool=True)


def _for_each_chunk(count: int, bits: int, seed: int, fill, in_pool: bool = False) -> None:
    """Calls `fill(index, start, size)` for each chunk of the `count` `bits`-bit words of seed's stream (chunk i:
    `_DRAWS_PER_CHUNK` draws of SFC64 seeded with [seed, i], so the same words for any thread count), in up to
    `torch.get_num_threads()` threads (numpy and the numba kernels release the GIL); a single thread is the calling
    one unless `in_pool`."""
    per_chunk = _DRAWS_PER_CHUNK * (64 // bits)
    chunks = -(-count // per_chunk)

    def fill_chunk(index: int) -> None:
        start = index * per_chunk
        fill(index, start, min(per_chunk, count - start))

    threads = min(chunks, torch.get_num_threads())
    if threads < 2 and not in_pool:
        for index in range(chunks):
            fill_chunk(index)
        return
    global _draw_pool
    if _draw_pool is None or _draw_pool._max_workers < threads:
        from concurrent.futures import ThreadPoolExecutor

        _draw_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="msa-dropout-words")
    list(_draw_pool.map(fill_chunk, range(chunks)))


def _fill_from_words(out: torch.Tensor, bits: int, write, seed: int | None = None) -> torch.Tensor:
    """Fills the flat CPU tensor `out` from uniform random signed `bits`-bit integers cut from 64-bit words of
    numpy's SFC64, seeded with `seed`, by default one draw of [`_draw_seed`] (so `torch.manual_seed` fixes them):
    the chunks of [`_for_each_chunk`], and `write(words, target)` turns each chunk's words into its slice of `out`
    (as a numpy array)."""
    import numpy as np

    seed = int(_draw_seed()) if seed is None else seed  # CPU generator: no device synchronisation
    per_draw = 64 // bits
    integer = np.int8 if bits == 8 else np.int16
    target = out.view(_INTEGER_VIEWS.get(out.dtype, out.dtype)).numpy()

    def fill(index: int, start: int, size: int) -> None:
        words = np.random.SFC64([seed, index]).random_raw(-(-size // per_draw)).view(integer)[:size]
        write(words, target[start:start + size])

    _for_each_chunk(out.numel(), bits, seed, fill)
    return out


def _draw_seed() -> torch.Tensor:
    """One draw of torch's default CPU generator seeding a word stream (in compiled graphs a traced random op:
    never merged with another draw, unlike a call without tensor inputs)."""
    return torch.randint(0, 1 << 62, (), dtype=torch.int64)


def random_words(count: int, bits: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """`count` uniform random signed integers of `bits` (8 or 16) bits (the stream of [`_fill_from_words`]). SFC64
    gives 64 bits 3x faster than torch's CPU `random_`, and a 16-bit word per element costs a quarter of a draw.
    `dtype`: the words converted to it as they are written (exactly, for float32/float64); default the signed
    integer type of `bits`."""
    integer = torch.int8 if bits == 8 else torch.int16
    words = torch.empty(count, dtype=dtype or integer)
    if words.dtype in _INTEGER_VIEWS:  # no numpy type to cast into: copy through torch
        words.copy_(random_words(count, bits))
    else:
        _fill_from_words(words, bits, lambda chunk, target: target.__setitem__(slice(None), chunk))
    return words.to(device)


def _word_rate(p: float) -> tuple[int, int, int]:
    """(bits, levels = 2**bits, dropped words out of levels) for dropout rate `p`: 8-bit words when p is a multiple
    of 2**-8 (e.g. 0.5), otherwise 16-bit ones, the rate rounded to q = dropped / levels (|q - p| <= 2**-17)."""
    bits = 8 if float(p * 256).is_integer() else 16
    levels = 1 << bits
    return bits, levels, min(round(p * levels), levels)


def word_dropout_scale(p: float) -> float:
    """1 / (1 - q) for the rate q that [`_word_rate`] rounds p to (0.0 when every element is dropped)."""
    _, levels, dropped = _word_rate(p)
    return 0.0 if dropped == levels else levels / (levels - dropped)


def _keep_writer(threshold: int, kept: torch.Tensor):
    """`write` for [`_fill_from_words`]: `kept` (a 0-dim tensor of the mask's dtype) where word >= `threshold`,
    else 0, one cache-resident block at a time. Floats numpy has are compared straight into the mask (0.0/1.0)
    and multiplied by `kept` unless it is 1; bf16/fp16 masks are written as the bit pattern of `kept` (or 0) into
    their int16 view."""
    import numpy as np

    if kept.dtype in _INTEGER_VIEWS:
        pattern = np.asarray(kept.view(_INTEGER_VIEWS[kept.dtype]).item(), dtype=np.int16)

        def write(words, target):
            for start in range(0, words.size, _BLOCK):
                block = slice(start, start + _BLOCK)
                np.multiply(np.greater_equal(words[block], threshold), pattern, out=target[block])
        return write
    value = kept.numpy()

    def write(words, target):
        for start in range(0, words.size, _BLOCK):
            block = slice(start, start + _BLOCK)
            np.greater_equal(words[block], threshold, out=target[block])  # the bool cast: exactly 0.0 or 1.0
            if value != 1:
                np.multiply(target[block], value, out=target[block])
    return write


def dropout_keep_mask(hidden: torch.Tensor, p: float, scaled: bool = True) -> torch.Tensor | None:
    """The dropout mask for `hidden` drawn from the words of [`_fill_from_words`], in its dtype: 0 for a dropped
    element (word < t, for the t that drops q of the words), [`word_dropout_scale`] rounded to that dtype for a kept
    one (1 with `scaled=False`; bf16 turns 1 / 0.9 into 1.109375); rate q = p rounded as [`_word_rate`] says. None
    when q = 0.

    Each chunk of words becomes mask values in the thread that drew it, in cache-resident blocks: torch passes over
    the whole mask (a bool comparison and `torch.where` ran 3-5x slower than a float pass on CPU, and a clamp and a
    subtraction of float words cost two more passes) are gone."""
    bits, levels, dropped = _word_rate(p)
    if dropped == 0:
        return None
    if dropped == levels:
        return hidden.new_zeros(hidden.shape)
    if torch.compiler.is_compiling():
        # The op (opaque to inductor) writes a 0/1 byte mask; its cast and scale fuse into the mask's consumers, and
        # a mask kept for backward is kept as bytes: a quarter of a float mask's memory traffic. The same values:
        # 0 or 1 times the kept value in hidden's dtype is exactly 0 or that value.
        keep = torch.ops.msa_hub.dropout_keep_mask(_draw_seed(), list(hidden.shape), torch.uint8, p, False)
        return keep.to(hidden.device, hidden.dtype) * _kept_value(p, scaled, hidden.dtype)
    return _cpu_keep_mask(hidden.shape, hidden.dtype, p, scaled).to(hidden.device)


def _cpu_keep_mask(shape, dtype: torch.dtype, p: float, scaled: bool, seed: int | None = None) -> torch.Tensor:
    """[`dropout_keep_mask`] as a new CPU tensor of `shape` and `dtype` (0 < q < 1), from the stream of `seed`;
    written by the numba kernel when there is one (the same values, one pass: `dropout_kernels`)."""
    bits, levels, dropped = _word_rate(p)
    threshold = dropped - levels // 2  # words are uniform on [-levels/2, levels/2): P(word < threshold) = q
    kept = _kept_value(p, scaled, dtype)
    kernels = _dropout_kernels()
    if kernels is not None and dtype in _BIT_VIEWS:
        mask = torch.empty(math.prod(shape), dtype=dtype)
        seed = int(_draw_seed()) if seed is None else seed
        _run_kernel(kernels["keep_mask"], mask.numel(), bits, seed, mask.view(_BIT_VIEWS[dtype]).numpy(), threshold,
                    kept.view(_BIT_VIEWS[dtype]).numpy()[()])
        return mask.view(shape)
    native = dtype if dtype in (torch.float32, torch.float64, torch.uint8, *_INTEGER_VIEWS) else torch.float32
    mask = _fill_from_words(torch.empty(math.prod(shape), dtype=native), bits, _keep_writer(threshold, kept.to(native)),
                            seed)
    return mask.view(shape).to(dtype)


def _kept_value(p: float, scaled: bool, dtype: torch.dtype) -> torch.Tensor:
    """A kept element's mask value as a 0-dim tensor of `dtype`: [`word_dropout_scale`] rounded to it, or 1."""
    return torch.tensor(word_dropout_scale(p) if scaled else 1.0, dtype=dtype)


def _cpu_keep_times(hidden: torch.Tensor, p: float, relu: bool = False, scaled: bool = True) -> torch.Tensor | None:
    """`hidden * mask` (`relu(hidden) * mask` with `relu`) for the mask [`dropout_keep_mask`] would draw, computed by
    the numba kernel without writing the mask (bitwise the product of that mask); None where the kernel does not
    apply (no numba, a compiled graph, not a float32/float64 CPU tensor, q = 0 or 1): then compute it with the mask."""
    bits, levels, dropped = _word_rate(p)
    kernels = _dropout_kernels()
    if (kernels is None or not 0 < dropped < levels or hidden.device.type != "cpu"
            or hidden.dtype not in (torch.float32, torch.float64) or torch.compiler.is_compiling()):
        return None
    output = torch.empty(hidden.shape, dtype=hidden.dtype)
    _run_kernel(kernels["keep_times"], output.numel(), bits, int(_draw_seed()),
                hidden.detach().contiguous().view(-1).numpy(), output.view(-1).numpy(), dropped - levels // 2,
                _kept_value(p, scaled, hidden.dtype).numpy()[()], relu)
    return output


def _register_ops() -> None:
    """The custom ops compiled graphs call, registered at import, each once per process (this module may be loaded
    twice: the package and a Hub checkout of it):
    - `torch.ops.msa_hub.dropout_keep_mask(seed, shape, dtype, p, scaled)`: [`_cpu_keep_mask`], opaque to inductor,
      which fuses the elementwise work around it;
    - `torch.ops.msa_hub.positive_part_grad(grad, output, scale)`: [`_positive_part_grad`]. Opaque, so AOT autograd
      saves the (nonnegative) output for it, which the next matmul saves anyway; with `threshold_backward` traced
      into the graph its partitioner saves a bool `output <= 0` as well, computed and stored in forward by a loop
      11-16 ns per element on CPU (torch 2.13; 1-2 ns for a float pass): compiled steps ran 0.8x as fast as eager."""
    if not hasattr(torch.ops.msa_hub, "dropout_keep_mask"):
        @torch.library.custom_op("msa_hub::dropout_keep_mask", mutates_args=(),
                                 tags=(torch.Tag.nondeterministic_seeded,))
        def keep_mask(seed: torch.Tensor, shape: list[int], dtype: torch.dtype, p: float, scaled: bool) -> torch.Tensor:
            return _cpu_keep_mask(shape, dtype, p, scaled, int(seed))

        @keep_mask.register_fake
        def _(seed, shape, dtype, p, scaled):
            return torch.empty(shape, dtype=dtype)

    if not hasattr(torch.ops.msa_hub, "positive_part_grad"):
        @torch.library.custom_op("msa_hub::positive_part_grad", mutates_args=())
        def positive_part_grad(grad: torch.Tensor, output: torch.Tensor, scale: float) -> torch.Tensor:
            return _positive_part_grad(grad, output, scale)

        @positive_part_grad.register_fake
        def _(grad, output, scale):
            return torch.empty_like(grad)


def _positive_part_grad(grad: torch.Tensor, output: torch.Tensor, scale: float) -> torch.Tensor:
    """`grad * scale` where `output` > 0, else 0 (ReLU's `threshold_backward`; `scale` a python float, multiplied in
    float): the backward of an op whose output is its input's positive part times a mask. Through the custom op
    `msa_hub::positive_part_grad` in compiled graphs (see [`_register_ops`])."""
    if torch.compiler.is_compiling():
        return torch.ops.msa_hub.positive_part_grad(grad, output, scale)
    grad_input = torch.ops.aten.threshold_backward(grad, output, 0)
    return grad_input if scale == 1.0 else grad_input.mul_(scale)


_register_ops()


def samples_words(enabled: bool, hidden: torch.Tensor) -> bool:
    """Whether dropout on `hidden` draws its mask from random words: `enabled` (`fast_cpu_dropout`) and a CPU
    tensor, eager or compiled (accelerators keep PyTorch's dropout, fast there)."""
    return enabled and hidden.device.type == "cpu"


def _scale_is_exact(dtype: torch.dtype, scale: float) -> bool:
    """Whether `scale` (> 0, finite) is exactly representable in the floating `dtype` (1.25 is in bf16, 1 / 0.9 is
    not): its significand fits the dtype's bits and it lies in the normal range. Plain Python arithmetic, so that a
    compiled graph does not break on it (a tensor round trip needs `.item()`)."""
    info = torch.finfo(dtype)
    significand, _ = math.frexp(scale)  # scale = significand * 2**exponent, 0.5 <= significand < 1
    bits = round(-math.log2(info.eps)) + 1  # the stored bits plus the implicit leading one
    return (significand * 2 ** bits).is_integer() and info.tiny <= scale <= info.max


def _keep_mask_and_scale(hidden: torch.Tensor, p: float) -> tuple[torch.Tensor | None, float]:
    """(mask, scale still to apply): the scaled mask when its dtype holds the scale exactly, else the 0/1 mask and
    the python-float scale, applied by a multiply whose arithmetic is in float (bf16 would round 1 / 0.9 down by
    0.16%, biasing every kept element)."""
    scale = word_dropout_scale(p)
    exact = hidden.dtype in (torch.float32, torch.float64) or _scale_is_exact(hidden.dtype, scale)
    return dropout_keep_mask(hidden, p, scaled=exact), 1.0 if exact else scale


def word_dropout(hidden: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout with the mask of [`dropout_keep_mask`] instead of `bernoulli_` (about 13 ns per element
    on CPU, up to a third of a Semi-IIN step): the distribution of `torch.nn.functional.dropout` up to the rounding
    of p, reproducible under `torch.manual_seed`, another random stream. A tensor that needs a gradient saves the
    mask (one multiply in backward: cheaper than drawing it again); one that does not (raw input features) is
    multiplied by the mask as it is drawn ([`_cpu_keep_times`], or into the fresh mask)."""
    if not hidden.requires_grad and (output := _cpu_keep_times(hidden, p)) is not None:
        return output
    mask, scale = _keep_mask_and_scale(hidden, p)
    if mask is None:
        return hidden
    output = hidden * mask if hidden.requires_grad else mask.mul_(hidden)
    return output if scale == 1.0 else output * scale


class _ReLUWordDropout(torch.autograd.Function):
    """dropout(relu(x)) in one masked multiply; backward needs only the output (which the next layer saves anyway):
    the gradient is the scale where the output is positive, else 0 (ReLU's own `threshold_backward`, times the
    scale), so no mask is kept for backward."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, p: float) -> torch.Tensor:
        output = _cpu_keep_times(hidden, p, relu=True)  # one pass when the kernel applies
        if output is None:
            mask, scale = _keep_mask_and_scale(hidden, p)
            output = F.relu(hidden)
            if torch.compiler.is_compiling():  # out of place: torch 2.11's AOT autograd saved the tensor as it was
                output = output if mask is None else output * mask  # before an in-place multiply (the gradient
                output = output if scale == 1.0 else output * scale  # then passed dropped elements; 2.13 does not)
            else:
                output = output if mask is None else output.mul_(mask)
                output = output if scale == 1.0 else output.mul_(scale)
        ctx.scale = 1.0 if _word_rate(p)[2] == 0 else word_dropout_scale(p)  # a python float: multiplied in float
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (output,) = ctx.saved_tensors
        return _positive_part_grad(grad, output, ctx.scale), None


class _WeightsWordDropout(torch.autograd.Function):
    """Unscaled word dropout of nonnegative attention weights (`weights * mask`, mask 0/1). Backward recovers the
    mask from the output, which the next matmul saves anyway: a kept weight is the weight itself, positive unless it
    is 0, where softmax's backward multiplies the gradient by that 0. So no mask is kept (`threshold_backward`)."""

    @staticmethod
    def forward(ctx, weights: torch.Tensor, p: float) -> torch.Tensor:
        output = _cpu_keep_times(weights, p, scaled=False)
        if output is None:
            output = weights * dropout_keep_mask(weights, p, scaled=False)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (output,) = ctx.saved_tensors
        return _positive_part_grad(grad, output, 1.0), None


def drop_attention_weights(weights: torch.Tensor, p: float) -> torch.Tensor:
    """Attention weights (softmax outputs, >= 0) with word dropout at rate p, not yet scaled (multiply the attended
    values by [`word_dropout_scale`]): `weights` itself when p rounds to 0."""
    _, levels, dropped = _word_rate(p)
    if dropped == 0:
        return weights
    if dropped == levels:
        return weights * 0
    return _WeightsWordDropout.apply(weights, p)


class Dropout(torch.nn.Dropout):
    """`nn.Dropout` that samples its training mask with [`word_dropout`] on CPU when `fast_sampling` (the
    models' `fast_cpu_dropout` config field), eager or compiled; on accelerators PyTorch's own dropout."""

    def __init__(self, p: float = 0.5, fast_sampling: bool = True):
        super().__init__(p)
        self.fast_sampling = fast_sampling

    def _samples_words(self, hidden: torch.Tensor) -> bool:
        return self.training and self.p > 0 and samples_words(self.fast_sampling, hidden)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return word_dropout(hidden, self.p) if self._samples_words(hidden) else super().forward(hidden)

    def after_relu(self, hidden: torch.Tensor) -> torch.Tensor:
        """`self(relu(hidden))`; fused into one masked multiply when this dropout samples words."""
        if self._samples_words(hidden) and hidden.requires_grad:
            return _ReLUWordDropout.apply(hidden, self.p)
        if hidden.requires_grad and hidden.device.type == "cpu" and torch.compiler.is_compiling():
            # ReLU alone (rate 0) with the positive-part backward op: plain F.relu's traced backward has inductor's
            # partitioner store a bool `x <= 0` in forward, a slow loop on CPU (a compiled step at dropout 0 ran
            # slower than eager)
            return self(_ReLUWordDropout.apply(hidden, 0.0))
        return self(F.relu(hidden))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fast_sampling={self.fast_sampling}"
