"""Export a Hugging Face Llama folder (e.g. a fine-tuned SmolLM2) to a GGUF file for llama.cpp.

The ``gguf`` pip package has no HF->GGUF converter, so this is a small one for the Llama
architecture. Everything that is not a weight (architecture, hyper-parameters, tokenizer
vocabulary/merges/token types/special ids, chat template) is copied from a *template* GGUF of
the same base model (default: the packaged SmolLM2-135M-Instruct GGUF), after checking that the
HF config agrees with the template's hyper-parameters. Weights get llama.cpp's tensor names and
its Q/K row permutation (``convert_hf_to_gguf.py`` ``LlamaModel.permute``; transformers undoes it
when it loads a GGUF). Norms are written in F32, matrices in F16 (default), F32 or Q8_0
(llama.cpp's ``--outtype q8_0``: ~1.3x faster than F16 on this CPU, but greedy outputs can
differ from transformers from the first token; use F16 when the outputs must match).

    >>> export_gguf("runs/sft/model", "runs/sft/model.gguf")     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from searchprime._lazy import require
from searchprime.errors import ConfigError

__all__ = ["export_gguf", "hf_to_gguf_name", "permute_qk"]

#: Template keys that describe the template's quantization, not the exported model.
_DROP_KEYS = {"general.file_type", "general.quantization_version"}

#: ``dtype`` argument -> GGUF file type (``gguf.LlamaFileType`` member).
_FILE_TYPES = {"f16": "MOSTLY_F16", "f32": "ALL_F32", "q8_0": "MOSTLY_Q8_0"}

#: HF Llama tensor suffix (inside ``model.layers.N.``) -> llama.cpp name (inside ``blk.N.``).
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def hf_to_gguf_name(name: str) -> str | None:
    """llama.cpp's name for an HF Llama tensor, or ``None`` for tensors llama.cpp does not use."""
    if name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[name]
    if name.startswith("model.layers."):
        layer, _, rest = name[len("model.layers.") :].partition(".")
        if layer.isdigit() and rest in _LAYER_NAMES:
            return f"blk.{layer}.{_LAYER_NAMES[rest]}"
    if name.endswith("rotary_emb.inv_freq"):
        return None
    raise ConfigError(f"{name}: tensor has no llama.cpp Llama name (not a Llama model?)")


def permute_qk(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """llama.cpp's Q/K row permutation (HF rotary layout -> GGML interleaved layout).

    Exactly ``convert_hf_to_gguf.py``'s ``LlamaModel.permute``; transformers'
    ``_reverse_permute_weights`` is its inverse.
    """
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return (
        weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
        .swapaxes(1, 2)
        .reshape(shape)
    )


def _field_value(field: Any) -> Any:
    """A reader field's value as plain Python (arrays as lists)."""
    return field.contents()


def _template_hparams(fields: dict[str, Any], arch: str) -> dict[str, Any]:
    def get(key: str) -> Any:
        field = fields.get(key)
        return None if field is None else _field_value(field)

    tokens = get("tokenizer.ggml.tokens")
    return {
        "num_hidden_layers": get(f"{arch}.block_count"),
        "hidden_size": get(f"{arch}.embedding_length"),
        "intermediate_size": get(f"{arch}.feed_forward_length"),
        "num_attention_heads": get(f"{arch}.attention.head_count"),
        "num_key_value_heads": get(f"{arch}.attention.head_count_kv"),
        "vocab_size": get(f"{arch}.vocab_size") or (len(tokens) if tokens else None),
        "rope_theta": get(f"{arch}.rope.freq_base"),
        "rms_norm_eps": get(f"{arch}.attention.layer_norm_rms_epsilon"),
    }


def _hf_rope_theta(config: dict[str, Any]) -> float | None:
    if "rope_theta" in config:
        return config["rope_theta"]
    params = config.get("rope_parameters") or {}
    return params.get("rope_theta")


def _check_config(config: dict[str, Any], template: dict[str, Any], where: str) -> None:
    """Raise naming the first HF config field that disagrees with the template GGUF."""
    hf = dict(config)
    hf["rope_theta"] = _hf_rope_theta(config)
    if hf.get("num_key_value_heads") is None:
        hf["num_key_value_heads"] = hf.get("num_attention_heads")
    for key, expected in template.items():
        if expected is None:
            continue
        got = hf.get(key)
        if isinstance(expected, float) or isinstance(got, float):
            same = got is not None and math.isclose(float(got), float(expected), rel_tol=1e-5)
        else:
            same = got == expected
        if not same:
            raise ConfigError(
                f"{where}: {key}: HF config has {got!r} but the template GGUF has {expected!r}; "
                "pass the GGUF of the same base model with --template"
            )


def _load_state(hf_dir: Path) -> dict[str, Any]:
    """All tensors of the folder's safetensors file(s), as float32 numpy arrays."""
    safetensors_torch = require("safetensors.torch", "train")
    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{hf_dir}: no *.safetensors weights (save with safe_serialization)")
    state: dict[str, Any] = {}
    for file in files:
        for name, tensor in safetensors_torch.load_file(str(file)).items():
            state[name] = tensor.float().numpy()
    return state


def read_hf_config(hf_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of an HF model folder; ConfigError naming the file if unreadable."""
    config_path = Path(hf_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read HF config ({exc.strerror})") from exc
    except ValueError as exc:
        raise ConfigError(f"{config_path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path}: expected a JSON object")
    return config


def export_gguf(
    hf_dir: str | Path,
    out_path: str | Path,
    *,
    template_gguf: str | Path | None = None,
    dtype: Literal["f16", "f32", "q8_0"] = "f16",
) -> Path:
    """Write ``hf_dir`` (a Llama HF folder) as a GGUF file at ``out_path``; returns the path.

    Metadata and tokenizer come from ``template_gguf`` (default: the packaged SmolLM2 GGUF);
    raises :class:`ConfigError` naming the field when the HF config disagrees with it.
    """
    gguf = require("gguf", "train")
    np = require("numpy", "train")
    if dtype not in _FILE_TYPES:
        raise ConfigError(f"dtype: must be one of {', '.join(_FILE_TYPES)}, got {dtype!r}")
    hf = Path(hf_dir)
    config_path = hf / "config.json"
    config = read_hf_config(hf)
    archs = config.get("architectures") or []
    if "LlamaForCausalLM" not in archs:
        raise ConfigError(f"{config_path}: architectures: {archs!r} is not LlamaForCausalLM")
    if template_gguf is None:
        from searchprime.llm.models import smollm2_gguf_path

        template_gguf = smollm2_gguf_path()
    template = Path(template_gguf)
    if not template.is_file():
        raise ConfigError(f"{template}: template GGUF not found")
    try:
        reader = gguf.GGUFReader(template)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{template}: not a readable GGUF file ({exc})") from exc
    fields = dict(reader.fields)
    arch = _field_value(fields["general.architecture"]) if "general.architecture" in fields else ""
    if arch != "llama":
        raise ConfigError(f"{template}: general.architecture: {arch!r}, expected 'llama'")
    _check_config(config, _template_hparams(fields, arch), str(config_path))

    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    tied = bool(config.get("tie_word_embeddings", False))
    state = _load_state(hf)
    if tied:
        state.pop("lm_head.weight", None)
    elif "lm_head.weight" not in state:
        raise ConfigError(f"{hf}: lm_head.weight missing but tie_word_embeddings is false")

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, arch)
    for key, field in fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in _DROP_KEYS:
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY and len(field.types) > 1 else None
        writer.add_key_value(key, _field_value(field), vtype, sub_type=sub)
    writer.add_file_type(getattr(gguf.LlamaFileType, _FILE_TYPES[dtype]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    names = {hf_to_gguf_name(name): name for name in sorted(state)}
    names.pop(None, None)
    expected = (
        len(_GLOBAL_NAMES)
        - (1 if tied else 0)
        + len(_LAYER_NAMES) * int(config["num_hidden_layers"])
    )
    if len(names) != expected:
        raise ConfigError(f"{hf}: found {len(names)} Llama weight tensors, expected {expected}")
    for gname, hname in names.items():
        data = state[hname]
        if gname.endswith("attn_q.weight"):
            data = permute_qk(data, n_head, n_head)
        elif gname.endswith("attn_k.weight"):
            data = permute_qk(data, n_head, n_head_kv)
        if data.ndim == 1:
            writer.add_tensor(gname, np.ascontiguousarray(data, dtype=np.float32))
        elif dtype == "q8_0":
            q8 = gguf.GGMLQuantizationType.Q8_0
            quant = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), q8)
            writer.add_tensor(gname, quant, raw_dtype=q8)
        else:
            kind = np.float16 if dtype == "f16" else np.float32
            writer.add_tensor(gname, np.ascontiguousarray(data, dtype=kind))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, out)
    return out
