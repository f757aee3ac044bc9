"""Load an engine in its worker process so that a request that asks for too much memory costs that request (or
that worker), never the portal or the mesh broker.

Two means, both set in the worker itself:
- oom_score_adj 1000, before loading (raising it needs no privilege): when the machine runs out of memory, the
  kernel kills a worker first; the pool reports that worker's request and starts a fresh one.
- RLIMIT_DATA, so that an allocation past a bound fails inside the worker (MemoryError in Python, an abort in
  native code) before the machine runs out at all.

RLIMIT_DATA rather than RLIMIT_AS: since Linux 4.7 RLIMIT_DATA counts private writable mappings (the heap,
anonymous mmaps: where a runaway allocation lands), not the model file llama.cpp maps read-only from the page
cache, nor address space reserved and never made writable (glibc's per-thread arenas; CUDA reserves tens of GB).
RLIMIT_AS counts all of those, so a bound low enough to matter would break the load.

The bound: IPLM_WORKER_MEMORY_MIB when set (in force before loading; 0: none). Otherwise, for llama.cpp, what
loading took (VmData once the engine is up: the model file size in whatever weights llama.cpp copied or repacked,
the KV cache for the context, its compute and output buffers) plus headroom for one request; measured, not
guessed from the file size and n_ctx, which cannot tell the KV cache's width per token or the vocabulary's
buffers. Loading is the owner's model and trusted; requests are not, and they start after this. MLC's GPU
runtimes allocate host memory lazily at the first requests, in amounts no measure at load foresees: an MLC worker
gets a bound only when one is configured (it keeps the oom_score_adj).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from appliance.engine.engine_types import EngineError

_LIMIT_ENV = "IPLM_WORKER_MEMORY_MIB"
_OOM_SCORE_ADJ = 1000  # the most: a worker goes before anything else on the unit
# One request's growth past the loaded engine: prompt and reply text, a grammar from a schema the portal let through
# (a few MB at most), Python's objects; a chat's first decode starts llama.cpp's compute threads (an 8 MiB stack
# each). Measured: a chat adds about 40 MB to a loaded SmolLM2 worker.
_HEADROOM_BYTES = 512 << 20
_HEADROOM_PER_CPU_BYTES = 16 << 20
_UNMEASURED_KINDS = ("mlc",)

Loaded = TypeVar("Loaded")


def _raise_oom_score() -> None:
    try:
        Path("/proc/self/oom_score_adj").write_text(f"{_OOM_SCORE_ADJ}\n")
    except OSError:
        pass  # no procfs (not Linux): the memory bound still holds


def _read_configured_limit() -> int | None:
    raw = os.environ.get(_LIMIT_ENV, "").strip()
    if not raw:
        return None
    try:
        mib = int(raw)
    except ValueError:
        raise EngineError(
            "engine_unavailable", f"{_LIMIT_ENV} must be a whole number of MiB (0 for no limit); got {raw!r}.", 503
        ) from None
    return mib << 20 if mib > 0 else 0


def _read_data_size() -> int:
    # VmData: the private writable memory RLIMIT_DATA counts.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) << 10
    raise OSError("no VmData in /proc/self/status")


def _set_data_limit(limit: int) -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    bound = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    # The hard limit too: a worker that native code has gone wrong in cannot raise it again.
    resource.setrlimit(resource.RLIMIT_DATA, (bound, bound))
    return bound


def load_within_memory_limit(kind: str, load: Callable[[], Loaded]) -> tuple[Loaded, int | None]:
    """Make this worker the kernel's first choice when memory runs out, run `load` (the engine of `kind`), and
    bound the private memory the worker may hold from then on; the engine, and the bound in bytes (None: none)."""
    _raise_oom_score()
    configured = _read_configured_limit()
    if configured:
        bound = _set_data_limit(configured)
        try:
            return load(), bound
        except MemoryError:
            raise EngineError(
                "engine_unavailable",
                f"The engine does not load within its memory limit of {bound >> 20} MiB ({_LIMIT_ENV}).",
                503,
            ) from None
    loaded = load()
    if configured == 0 or kind in _UNMEASURED_KINDS:
        return loaded, None
    try:
        taken = _read_data_size()
    except OSError:
        return loaded, None  # not Linux: the oom_score_adj is all there is
    headroom = _HEADROOM_BYTES + _HEADROOM_PER_CPU_BYTES * (os.cpu_count() or 1)
    return loaded, _set_data_limit(taken + headroom)
