"""HF Llama folder -> GGUF: llama.cpp on the export decodes like transformers on the folder."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from searchprime.errors import ConfigError
from searchprime.llm.base import SamplingParams
from searchprime.records import Message
from searchprime.train.gguf_export import export_gguf, hf_to_gguf_name, permute_qk

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the ocean.",
    "Question: Who wrote the novel Pride and Prejudice?\nAnswer briefly.",
]
NEW_TOKENS = 24
#: Tokens that must match exactly; later ones may drift from f16 rounding of the weights.
EXACT_PREFIX = 16


@pytest.fixture(scope="module")
def smollm2_gguf(smollm2_dir, tmp_path_factory) -> Path:
    return export_gguf(smollm2_dir, tmp_path_factory.mktemp("gguf") / "model.gguf")


def test_permute_qk_is_inverse_of_transformers_reverse_permute() -> None:
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    w = np.arange(12 * 4, dtype=np.float32).reshape(12, 4)  # 3 heads of dim 4
    back = LlamaTensorProcessor()._reverse_permute_weights(permute_qk(w, 3, 3), 3, 3)
    assert np.array_equal(back, w)
    assert not np.array_equal(permute_qk(w, 3, 3), w)


def test_names() -> None:
    assert hf_to_gguf_name("model.layers.7.self_attn.k_proj.weight") == "blk.7.attn_k.weight"
    assert hf_to_gguf_name("model.embed_tokens.weight") == "token_embd.weight"
    with pytest.raises(ConfigError, match="vision_tower"):
        hf_to_gguf_name("vision_tower.w")


def test_mismatching_template_raises_naming_the_field(tiny_model, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"num_hidden_layers: HF config has 2 .* has 30"):
        export_gguf(tiny_model, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_bad_config_field_is_named(tiny_model, tmp_path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="architectures"):
        export_gguf(folder, tmp_path / "x.gguf")


@pytest.mark.slow
def test_q8_0_export_writes_quantized_matrices_and_f32_norms(smollm2_dir, tmp_path) -> None:
    import gguf

    path = export_gguf(smollm2_dir, tmp_path / "q8.gguf", dtype="q8_0")
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["token_embd.weight"] == "Q8_0" and types["blk.3.ffn_down.weight"] == "Q8_0"
    assert types["output_norm.weight"] == "F32"
    assert reader.fields["general.file_type"].contents() == 7  # MOSTLY_Q8_0
    assert reader.fields["tokenizer.chat_template"].contents().startswith("{% for message")
    with pytest.raises(ConfigError, match="dtype"):
        export_gguf(smollm2_dir, tmp_path / "x.gguf", dtype="q4_0")  # type: ignore[arg-type]


def _hf_greedy(hf_dir: Path, prompts: list[str]) -> list[list[int]]:
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    out = []
    for prompt in prompts:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        out.append(gen[0, ids.shape[1] :].tolist())
    return out


@pytest.mark.slow
def test_llamacpp_on_export_matches_transformers_greedy(smollm2_dir, smollm2_gguf) -> None:
    """Greedy decoding: llama.cpp text on the GGUF == transformers text on the HF folder.

    Asserted: the first ``EXACT_PREFIX`` (16) generated tokens are identical for every prompt;
    the whole 24-token continuation must match for at least 2 of the 3 prompts.
    """
    import gguf
    import transformers

    from searchprime.llm.openai_http import OpenAIChat
    from searchprime.llm.serve import GGUFServer

    reader = gguf.GGUFReader(smollm2_gguf)
    assert reader.fields["general.file_type"].contents() == 1  # MOSTLY_F16
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied embeddings
    assert len(reader.fields["tokenizer.ggml.tokens"].contents()) == 49152

    tok = transformers.AutoTokenizer.from_pretrained(smollm2_dir)
    hf_ids = _hf_greedy(smollm2_dir, PROMPTS)
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0.0, stop=[])

    async def ask(base_url: str) -> list[str]:
        llm = OpenAIChat(base_url)
        try:
            msgs = [[Message(role="user", content=p)] for p in PROMPTS]
            return [c.text for c in await asyncio.gather(*(llm.complete(m, params) for m in msgs))]
        finally:
            await llm.aclose()

    with GGUFServer(smollm2_gguf, parallel=1, ctx_size=1024, threads=1) as server:
        cpp_texts = asyncio.run(ask(server.base_url))

    full = 0
    for prompt, ids, text in zip(PROMPTS, hf_ids, cpp_texts, strict=True):
        hf_text = tok.decode(ids, skip_special_tokens=True)
        prefix = tok.decode(ids[:EXACT_PREFIX], skip_special_tokens=True)
        assert text.startswith(prefix), (prompt, hf_text, text)
        full += text == hf_text
    assert full >= 2, list(zip(hf_ids, cpp_texts, strict=True))
