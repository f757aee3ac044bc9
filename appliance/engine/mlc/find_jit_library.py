"""Find the model library MLC LLM just JIT-compiled, in MLC's own cache, so that the unit can keep it.

What MLC does (mlc-ai/mlc-llm: python/mlc_llm/serve/engine_base.py, interface/jit.py, support/constants.py):
MLCEngine(model_lib=None) runs jit(), which compiles in a temporary directory and moves the result to
`<MLC_LLM_HOME>/model_lib/<md5>.<MLC_DSO_SUFFIX>` ("so" on Linux); the md5 is over the model config, the
compile overrides (context window, prefill chunk, batch size...), opt flags, device, model type and
quantization. MLC_LLM_HOME defaults to $XDG_CACHE_HOME/mlc_llm, else ~/.cache/mlc_llm (mlc_chat, before
v0.1: MLC_CACHE_DIR, .../mlc_chat). MLC_JIT_POLICY: ON (default) and READONLY reuse a cached file as it is,
so its mtime stays old; REDO compiles again; OFF refuses to compile. MLC reads these variables when
mlc_llm is first imported, so this must run in the same environment as the engine.

The file name says nothing of the model. `reported` is exact: MLCEngineBase sets `model_lib` on the
EngineConfig it was given to the path it loaded (seen in every version checked; not a documented API).
Without it, the newest file is a guess: a library compiled from this model's config cannot predate that
config, and one compiled by this open cannot predate `since`, but only a cache root that no other model's
engine shares makes the guess certain.
"""

from __future__ import annotations

import os
from pathlib import Path

# mtimes on some file systems (FAT on USB sticks) are only 2 s precise.
_SLACK_S = 2.0


def _list_cache_roots() -> list[Path]:
    # MLC LLM's own resolution (support/constants.py), then the older mlc_chat one.
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    roots = [
        Path(os.environ["MLC_LLM_HOME"]) if "MLC_LLM_HOME" in os.environ else base / "mlc_llm",
        Path(os.environ["MLC_CACHE_DIR"]) if "MLC_CACHE_DIR" in os.environ else base / "mlc_chat",
    ]
    return list(dict.fromkeys(roots))


def _list_candidates(root: Path, suffix: str, floor: float) -> list[tuple[float, str, Path]]:
    try:
        entries = list(os.scandir(root / "model_lib"))
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.name.endswith(f".{suffix}") or not entry.is_file(follow_symlinks=False):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_size > 0 and info.st_mtime >= floor:
            found.append((info.st_mtime, entry.name, Path(entry.path)))
    return found


def find_jit_library(
    model_dir, cache_root=None, *, since: float | None = None, reported: str | None = None
) -> Path | None:
    """The library MLC compiled for the model in `model_dir`: `reported` when it is a file, else the newest
    one in `<cache_root>/model_lib` (default: MLC's cache) no older than the model's config and `since`.
    """
    if reported and Path(reported).is_file():
        return Path(reported)
    try:
        config_mtime = (Path(model_dir) / "mlc-chat-config.json").stat().st_mtime
    except OSError:
        return None  # not an MLC model directory: MLC compiled nothing for it
    floor = max(config_mtime, since if since is not None else config_mtime) - _SLACK_S
    suffix = os.environ.get("MLC_DSO_SUFFIX", "so")
    roots = [Path(cache_root)] if cache_root is not None else _list_cache_roots()
    candidates = [found for root in roots for found in _list_candidates(root, suffix, floor)]
    return max(candidates)[2] if candidates else None
