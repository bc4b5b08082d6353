"""Helpers to load a saved folder in a fresh interpreter where msa-hub cannot be imported."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT_PACKAGES = ("modeling_msa", "processing_msa", "training_msa", "dataset_scripts")

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, os, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {PROJECT_PACKAGES!r}:
                raise ImportError("msa-hub is not importable in this test: " + name)
    sys.meta_path.insert(0, _Block())
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd(), {str(Path(__file__).resolve().parents[1])!r})]
    """
)


def run_isolated(script: str, workdir: Path) -> dict:
    """Run `script` (which must print one JSON line last) with the project blocked and a private HF cache."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(workdir / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(script)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"isolated run failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def card_snippets(folder: Path) -> list[str]:
    """The ```python blocks of a folder's model card, in order."""
    import re

    return re.findall(r"```python\n(.*?)```", (Path(folder) / "README.md").read_text(), flags=re.DOTALL)


def run_card_snippets(folder: Path, workdir: Path) -> dict:
    """Every python block of the card, as written, in a fresh interpreter in the folder (msa-hub not importable):
    their last expressions' types and the model's logits."""
    snippets = card_snippets(folder)
    assert snippets, f"{folder}/README.md has no python snippet"
    script = "import json, os\nos.chdir(" + repr(str(folder)) + ")\n" + "\n".join(snippets) + textwrap.dedent("""
        result = {"names": sorted(k for k in globals() if not k.startswith("_"))}
        if "intensity" in globals():
            result["intensity"] = intensity.tolist()
        print(json.dumps(result))
        """)
    return run_isolated(script, workdir)
