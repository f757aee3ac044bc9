"""A small MLC model directory in the real on-disk format (random weights, no compiled library)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

_VOCAB = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "ab", "abc", "\u0120", "\u0120a"]

# A llama-architecture toy model, q4f16_1 like the mlc-ai prebuilt models.
_HIDDEN, _LAYERS, _HEADS, _INTERMEDIATE = 64, 2, 4, 128


def _build_chat_config(context_window_size: int, hidden: int = _HIDDEN, intermediate: int = _INTERMEDIATE) -> dict:
    return {
        "version": "0.1.0",
        "model_type": "llama",
        "quantization": "q4f16_1",
        "model_config": {
            "hidden_size": hidden,
            "intermediate_size": intermediate,
            "num_attention_heads": _HEADS,
            "num_hidden_layers": _LAYERS,
            "rms_norm_eps": 1e-05,
            "vocab_size": len(_VOCAB),
            "tie_word_embeddings": True,
            "position_embedding_base": 10000.0,
            "context_window_size": context_window_size,
            "prefill_chunk_size": context_window_size,
            "num_key_value_heads": _HEADS,
            "head_dim": _HIDDEN // _HEADS,
            "tensor_parallel_shards": 1,
            "pipeline_parallel_stages": 1,
            "max_batch_size": 128,
        },
        "vocab_size": len(_VOCAB),
        "context_window_size": context_window_size,
        "sliding_window_size": -1,
        "prefill_chunk_size": context_window_size,
        "attention_sink_size": -1,
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "temperature": 0.7,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "top_p": 0.9,
        "tokenizer_files": ["tokenizer.json", "tokenizer_config.json"],
        "tokenizer_info": {
            "token_postproc_method": "byte_level",
            "prepend_space_in_encode": False,
            "strip_space_in_decode": False,
        },
        "conv_template": {
            "name": "chatml",
            "system_template": "<|im_start|>system\n{system_message}<|im_end|>\n",
            "system_message": "You are a helpful assistant.",
            "system_prefix_token_ids": None,
            "add_role_after_system_message": True,
            "roles": {"user": "<|im_start|>user", "assistant": "<|im_start|>assistant"},
            "role_templates": {"user": "{user_message}", "assistant": "{assistant_message}", "tool": "{tool_message}"},
            "messages": [],
            "seps": ["<|im_end|>\n"],
            "role_content_sep": "\n",
            "role_empty_sep": "\n",
            "stop_str": ["<|im_end|>"],
            "stop_token_ids": [0, 2],
            "function_string": "",
            "use_function_calling": False,
        },
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def _build_params(hidden: int = _HIDDEN, intermediate: int = _INTERMEDIATE) -> list[tuple[str, list[int], str]]:
    # q4f16_1 packs 8 four-bit weights per uint32 and keeps one float16 scale per group of 32.
    vocab = len(_VOCAB)
    params = [
        ("model.embed_tokens.q_weight", [vocab, hidden // 8], "uint32"),
        ("model.embed_tokens.q_scale", [vocab, hidden // 32], "float16"),
    ]
    for layer in range(_LAYERS):
        prefix = f"model.layers.{layer}"
        params += [
            (f"{prefix}.input_layernorm.weight", [hidden], "float16"),
            (f"{prefix}.self_attn.qkv_proj.q_weight", [3 * hidden, hidden // 8], "uint32"),
            (f"{prefix}.self_attn.qkv_proj.q_scale", [3 * hidden, hidden // 32], "float16"),
            (f"{prefix}.self_attn.o_proj.q_weight", [hidden, hidden // 8], "uint32"),
            (f"{prefix}.self_attn.o_proj.q_scale", [hidden, hidden // 32], "float16"),
            (f"{prefix}.post_attention_layernorm.weight", [hidden], "float16"),
            (f"{prefix}.mlp.gate_up_proj.q_weight", [2 * intermediate, hidden // 8], "uint32"),
            (f"{prefix}.mlp.gate_up_proj.q_scale", [2 * intermediate, hidden // 32], "float16"),
            (f"{prefix}.mlp.down_proj.q_weight", [hidden, intermediate // 8], "uint32"),
            (f"{prefix}.mlp.down_proj.q_scale", [hidden, intermediate // 32], "float16"),
        ]
    params.append(("model.norm.weight", [hidden], "float16"))
    return params


def _count_bytes(shape: list[int], dtype: str) -> int:
    size = {"uint32": 4, "float16": 2}[dtype]
    for dim in shape:
        size *= dim
    return size


def _write_shards(path: Path, rng: random.Random, hidden: int, intermediate: int) -> dict:
    params = _build_params(hidden, intermediate)
    # Two shards, split at the first layer boundary, like tvmjs' shard_cap on a bigger model.
    split = 2 + 10
    shards: list[dict] = []
    for index, group in enumerate((params[:split], params[split:])):
        data, records = bytearray(), []
        for name, shape, dtype in group:
            nbytes = _count_bytes(shape, dtype)
            # mlc_llm convert_weight dumps with encode_format="f32-to-bf16": every record carries it.
            records.append(
                {
                    "name": name,
                    "shape": shape,
                    "dtype": dtype,
                    "format": "f32-to-bf16",
                    "nbytes": nbytes,
                    "byteOffset": len(data),
                }
            )
            data += rng.randbytes(nbytes)
        data_path = f"params_shard_{index}.bin"
        (path / data_path).write_bytes(bytes(data))
        shards.append(
            {
                "dataPath": data_path,
                "format": "raw-shard",
                "nbytes": len(data),
                "records": records,
                "md5sum": hashlib.md5(bytes(data)).hexdigest(),
            }
        )
    total = sum(shard["nbytes"] for shard in shards)
    return {
        # convert_weight sums ParamBytes as a float.
        "metadata": {"ParamSize": len(params), "ParamBytes": float(total), "BitsPerParam": 4.25},
        "records": shards,
    }


def _build_tokenizer() -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i, token in enumerate(_VOCAB[:3])
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": {token: i for i, token in enumerate(_VOCAB)},
            "merges": ["a b", "ab c", "\u0120 a"],
        },
    }


def make_mlc_model_dir(path, *, hidden_size: int = _HIDDEN, intermediate_size: int = _INTERMEDIATE) -> Path:
    """Write a tiny, deterministic MLC model directory (config, tensor cache, 2 shards, tokenizer) at `path`.

    Bigger sizes (e.g. hidden_size=512, intermediate_size=1408: about 3.5 MB) give files of many pieces.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20240501)
    (path / "mlc-chat-config.json").write_text(
        json.dumps(_build_chat_config(2048, hidden_size, intermediate_size), indent=2), encoding="utf-8"
    )
    # tvmjs.dump_tensor_cache writes {"metadata", "records"} with indent=4.
    (path / "tensor-cache.json").write_text(
        json.dumps(_write_shards(path, rng, hidden_size, intermediate_size), indent=4), encoding="utf-8"
    )
    (path / "tokenizer.json").write_text(json.dumps(_build_tokenizer()), encoding="utf-8")
    tokenizer_config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "model_max_length": 2048}
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return path
