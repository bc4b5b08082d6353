"""A restricted unpickler for dataset pickles: numpy arrays, containers, strings and numbers only."""

import io
import pickle
from pathlib import Path
from typing import Any

ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
    *(("builtins", name) for name in ("list", "dict", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                                        "int", "float", "complex", "bool")),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something other than numpy arrays, containers, strings and numbers."""


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"Refusing to unpickle {module}.{name} from {self.source}: only numpy arrays, lists, dicts, strings and "
            "numbers are allowed in dataset pickles. Nothing from this file was executed."
        )


def safe_load_pickle(path: str | Path) -> Any:
    """Load a dataset pickle through `RestrictedUnpickler`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected an MMSA feature pickle such as unaligned_50.pkl).")
    try:
        with path.open("rb") as handle:
            return RestrictedUnpickler(io.BufferedReader(handle), str(path)).load()
    except UnsafePickleError:
        raise
    except MemoryError as error:
        raise MemoryError(
            f"{path}: ran out of memory while unpickling ({path.stat().st_size} bytes on disk); the file asks for "
            "more memory than this machine has (a corrupt or hostile size field, or a dataset too large for RAM)."
        ) from error
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not a readable pickle ({type(error).__name__}: {error}).") from error
