"""Compiled (numba) CPU kernels for word dropout: the masks of `msa_utils.dropout_keep_mask`, drawn, compared and
written in one pass, and those masks applied to a tensor without writing them (`x * mask`, `relu(x) * mask`).

Each kernel runs numpy's SFC64 recurrence itself from the state `np.random.SFC64([seed, chunk])` starts with, so it
gives exactly the words, masks and products of the numpy path (tested): numpy draws 64-bit words through a function
pointer per draw and compares them in a second pass over memory; a kernel draws a cache-resident block of words in a
scalar loop, then compares and writes them in a vectorised one. Optional: without numba `KERNELS` is None and
`msa_utils` keeps its numpy path (imported lazily: numba is loaded on the first CPU training dropout)."""

try:
    import numba
except ImportError:  # without numba msa_utils draws the same masks with numpy
    numba = None

BLOCK_DRAWS = 1024  # SFC64 draws per block: 8 KiB of words, in L1
KERNELS = None

if numba is not None:
    _uint64 = numba.uint64

    def _jit(function):
        """Compiled without the GIL, cached on disk (numba's cache beside this file, or its user-wide one)."""
        try:
            return numba.njit(nogil=True, cache=True, boundscheck=False)(function)
        except RuntimeError:  # no writable cache location: compile in each process
            return numba.njit(nogil=True, boundscheck=False)(function)

    @numba.njit(inline="always")
    def _draw_block(state, words, draws):
        """The words of `draws` SFC64 outputs into `words` (int8 or int16: 8 or 4 per output, lowest bits first, as
        a numpy view of `random_raw`'s output), advancing `state` (a, b, c, counter) in place."""
        per = 8 // words.itemsize
        a, b, c, counter = state[0], state[1], state[2], state[3]
        for index in range(draws):
            output = a + b + counter
            a, b, c = b ^ (b >> _uint64(11)), c + (c << _uint64(3)), ((c << _uint64(24)) | (c >> _uint64(40))) + output
            counter += _uint64(1)
            for k in range(per):
                words[index * per + k] = output >> _uint64(64 // per * k)  # an integer store keeps the low bits
        state[0], state[1], state[2], state[3] = a, b, c, counter

    # Each block's words are used by a separate function: in one loop nest with the draws, LLVM vectorised the
    # comparison loop worse (1.6x slower, development timing).
    @_jit
    def _mask_block(words, out, threshold, pattern):
        for index in range(out.size):
            out[index] = pattern & -out.dtype.type(words[index] >= threshold)

    @_jit
    def _times_block(words, x, out, threshold, kept, relu):
        zero = x.dtype.type(0)
        for index in range(out.size):
            value = x[index]
            if relu:
                value = zero if value < zero else value  # NaN and -0.0 stay, as in torch.relu
            out[index] = value * (kept * x.dtype.type(words[index] >= threshold))

    @_jit
    def keep_mask(state, words, out, threshold, pattern):
        """out[i] = pattern where word i >= threshold, else 0 (`out`: an integer view of the mask; `words`: a scratch
        block of BLOCK_DRAWS draws' words, int16 or int8, which sets the word size)."""
        state, per = state.copy(), 8 // words.itemsize
        threshold = words.dtype.type(threshold)
        for start in range(0, out.size, words.size):
            size = min(words.size, out.size - start)
            _draw_block(state, words, -(-size // per))
            _mask_block(words, out[start:start + size], threshold, pattern)

    @_jit
    def keep_times(state, words, x, out, threshold, kept, relu):
        """out[i] = x[i] (relu(x[i]) with `relu`) times the mask value (`kept` where word i >= threshold, else 0),
        in x's float dtype."""
        state, per = state.copy(), 8 // words.itemsize
        threshold = words.dtype.type(threshold)
        for start in range(0, out.size, words.size):
            size = min(words.size, out.size - start)
            _draw_block(state, words, -(-size // per))
            _times_block(words, x[start:start + size], out[start:start + size], threshold, kept, relu)

    KERNELS = {"keep_mask": keep_mask, "keep_times": keep_times}
