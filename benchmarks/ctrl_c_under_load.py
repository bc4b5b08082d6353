"""Ctrl-C robustness of train.py under load: TRIES tiny training runs, each sent SIGINT a random 0-1.5 s after the
model is built, with three CPU-burning processes beside them. Prints each try's exit status and how many did not end
with status 130 and the one-line message (without a traceback).

    python benchmarks/ctrl_c_under_load.py [TRIES]   # default 25
"""

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_model_card_and_cli import TINY  # noqa: E402


def burn(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        sum(range(10000))


def one_try(delay: float) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, str(ROOT / "train.py"), *TINY, "--num_train_epochs", "1000", "--output_dir",
                   f"{folder}/run", "--dataset_cache_dir", f"{folder}/cache"]
        process = subprocess.Popen(command, cwd=folder, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        for line in process.stderr:
            if "Model semi_iin with" in line:
                break
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        rest = process.stderr.read()
        return process.wait(timeout=300), rest


def main() -> None:
    tries = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    burners = [multiprocessing.Process(target=burn, args=(3600,), daemon=True) for _ in range(3)]
    for burner in burners:
        burner.start()
    failures = 0
    try:
        for index in range(tries):
            delay = round(random.uniform(0.0, 1.5), 2)
            status, rest = one_try(delay)
            ok = status == 130 and "train.py: interrupted" in rest and "Traceback" not in rest
            failures += not ok
            print(f"try {index + 1}: SIGINT after {delay} s -> status {status}{'' if ok else ' FAILED'}", flush=True)
            if not ok:
                print(rest[-3000:])
    finally:
        for burner in burners:
            burner.terminate()
    print(f"{failures} of {tries} tries did not end with status 130 and the one line")


if __name__ == "__main__":
    main()
