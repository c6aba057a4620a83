"""LLMConfig validation and load_llm dispatch; the package's public names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from searchprime.config import load_config
from searchprime.errors import ConfigError
from searchprime.llm import LLM, LLMConfig, OpenAIChat, load_llm


def test_openai_config_builds_client(tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text("kind: openai\nbase_url: http://127.0.0.1:9/v1\nmodel: m\nmax_retries: 2\n")
    cfg = load_config(LLMConfig, path, {"concurrency": 3})
    llm = load_llm(cfg)
    assert isinstance(llm, OpenAIChat) and isinstance(llm, LLM)
    assert (llm.model, llm.max_retries, llm.concurrency) == ("m", 2, 3)
    assert llm.describe()["kind"] == "openai"


def test_config_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: openai\nbase_url: http://x/v1\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_config(LLMConfig, path)
    with pytest.raises(ConfigError, match="base_url"):
        load_config(LLMConfig, None, {"kind": "openai"})
    with pytest.raises(ConfigError, match="path"):
        load_llm({"kind": "local"})
    with pytest.raises(ConfigError):
        load_config(LLMConfig, None, {"kind": "vllm"})


def test_importing_llm_does_not_import_torch():
    code = (
        "import sys, searchprime.llm as m; from searchprime.llm import load_llm, GGUFServer; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
        "assert 'LocalHF' in m.__all__"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
