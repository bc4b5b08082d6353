"""What a dropout mask can cost on this CPU: the pieces of `msa_utils._cpu_keep_mask` and their alternatives.

Prints one table (ns per mask element, lower is better; best of --repeats):
- 16-bit words from numpy's SFC64 (the masks' source), in 1 and in 2 threads (the masks' thread pool);
- the same bytes from AES-128-CTR (`cryptography`, when installed: a faster seedable source, not used);
- turning words into an fp32 mask (compare into the float block, times the scale), one thread;
- a whole `_cpu_keep_mask` (its pool: `torch.get_num_threads()` threads) with numba's kernels (when installed) and
  with the numpy path, and torch's `bernoulli_` for the same tensor;
- relu(x) times the mask: torch's relu and multiply by a numpy-path mask, and numba's kernel (no mask written);
every mask at p = 0.2 (the residual and FFN dropouts: 16-bit words).
- torch's multiply of two tensors of the mask's size (what applying the mask costs), 2 threads.

    python benchmarks/mask_floor.py [--elements 4194304] [--repeats 10]
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modeling_msa import msa_utils  # noqa: E402
from modeling_msa.dropout_kernels import KERNELS  # noqa: E402

CHUNK = 1 << 17  # 64-bit draws per chunk, as msa_utils._DRAWS_PER_CHUNK


def best_seconds(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def sfc64_words(chunks: int, threads: int):
    def draw(index: int) -> None:
        np.random.SFC64([1, index]).random_raw(CHUNK)

    pool = ThreadPoolExecutor(threads)
    return lambda: list(pool.map(draw, range(chunks)))


def aes_words(chunks: int):
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        return None
    zeros, out = np.zeros(8 * CHUNK, np.uint8), np.empty(8 * CHUNK + 15, np.uint8)

    def draw() -> None:
        for index in range(chunks):
            encryptor = Cipher(algorithms.AES(bytes(16)), modes.CTR(index.to_bytes(16, "little"))).encryptor()
            encryptor.update_into(zeros, out)
    return draw


def words_to_mask(elements: int, p: float):
    bits, levels, dropped = msa_utils._word_rate(p)
    words = np.random.SFC64(1).random_raw(elements * bits // 64).view(np.int16 if bits == 16 else np.int8)
    target = torch.empty(words.size)
    write = msa_utils._keep_writer(dropped - levels // 2, torch.tensor(msa_utils.word_dropout_scale(p)))
    return lambda: write(words, target.numpy())


def main(argv: list[str] | None = None) -> list[tuple[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=int, default=1 << 22, help="mask elements (default 4 Mi: a FFN mask)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    from training_msa.runtime import keep_freed_cpu_memory_for_reuse

    keep_freed_cpu_memory_for_reuse()  # as training does: new masks reuse freed memory instead of faulting it in
    elements, chunks = args.elements, max(args.elements // (4 * CHUNK), 1)
    words = chunks * CHUNK * 4  # 16-bit words the draw timings produce
    x, y = torch.randn(elements), torch.randn(elements)
    mask = torch.empty(elements)
    rows = [
        ("SFC64 16-bit words, 1 thread", best_seconds(sfc64_words(chunks, 1), args.repeats) / words),
        ("SFC64 16-bit words, 2 threads", best_seconds(sfc64_words(chunks, 2), args.repeats) / words),
    ]
    aes = aes_words(chunks)
    if aes is not None:
        rows.append(("AES-128-CTR 16-bit words, 1 thread (not used)", best_seconds(aes, args.repeats) / words))
    threads = torch.get_num_threads()

    def keep_mask():
        return msa_utils._cpu_keep_mask((elements,), torch.float32, 0.2, True)

    def numpy_path(function):
        def run():
            with msa_utils.use_dropout_kernels(False):
                return function()
        return run

    rows.append(("words -> fp32 mask (compare, scale), 1 thread",
                 best_seconds(words_to_mask(elements, 0.2), args.repeats) / elements))
    if KERNELS is not None:
        rows.append((f"whole _cpu_keep_mask, fp32, {threads} threads, numba kernel",
                     best_seconds(keep_mask, args.repeats) / elements))
    rows.append((f"whole _cpu_keep_mask, fp32, {threads} threads, numpy path",
                 best_seconds(numpy_path(keep_mask), args.repeats) / elements))
    rows.append(("relu(x) * mask, torch relu and multiply, numpy-path mask",
                 best_seconds(numpy_path(lambda: torch.relu(x).mul_(keep_mask())), args.repeats) / elements))
    if KERNELS is not None:
        rows.append(("relu(x) * mask, numba kernel (no mask written)",
                     best_seconds(lambda: msa_utils._cpu_keep_times(x, 0.2, relu=True), args.repeats) / elements))
    rows += [
        ("torch bernoulli_ (fp32)", best_seconds(lambda: mask.bernoulli_(0.8), args.repeats) / elements),
        ("torch x * mask (fp32, applying a mask)", best_seconds(lambda: torch.mul(x, y, out=mask), args.repeats) / elements),
    ]
    print(f"{torch.get_num_threads()} torch threads, {elements} elements\n")
    print("| piece | ns per element |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e9:.2f} |")
    return rows


if __name__ == "__main__":
    main()
