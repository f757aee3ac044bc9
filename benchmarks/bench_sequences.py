"""Several sequences in one llama.cpp context: aggregate tokens/s at 1, 2 and 4 chats at once.

Run: scripts/dev bench sequences   (or .venv/bin/python -m benchmarks.bench_sequences --help)

Two engines load the default model with the same context and threads, pinned to the same cores:
  - batched: open_llama_cpp_engine(sequences=4), what a unit runs (start_batch_decoder);
  - one at a time: open_llama_cpp_engine(sequences=1), llama-cpp-python's own completion, which runs
    concurrent chats one after the other.
At each level both get the same chats (greedy, a reply that runs to max_tokens), measured alternately in
each round so that machine noise hits both alike. Every chat has its own system line, so no prompt is
answered from another's cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from appliance.engine.engine_types import ChatParams, ChatRequest, Engine
from appliance.engine.locate_default_model import locate_default_model

QUESTION = "Count from 1 to 1000, separated by commas."


def _run_level(engine: Engine, chats: int, max_tokens: int, tag: str) -> tuple[float, int]:
    """(seconds from the first chat asked to the last one done, reply tokens of all chats together)."""
    tokens = [0] * chats

    def run(i: int) -> None:
        request = ChatRequest(
            messages=(
                {"role": "system", "content": f"You are assistant {tag}-{i}."},
                {"role": "user", "content": QUESTION},
            ),
            params=ChatParams(max_tokens=max_tokens, temperature=0),
        )
        for event in engine.stream_chat(request, threading.Event()):
            if event.kind == "done":
                tokens[i] = event.completion_tokens

    threads = [threading.Thread(target=run, args=(i,)) for i in range(chats)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sum(tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,2,4", help="chats at once to measure (default 1,2,4; at most 4)")
    parser.add_argument("--max-tokens", type=int, default=96, help="reply length of every chat (default 96)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    parser.add_argument("--cores", type=int, default=1, help="CPU cores (and threads) the engines get (default 1)")
    args = parser.parse_args(argv)
    try:
        levels = [int(level) for level in args.levels.split(",")]
    except ValueError:
        parser.error("--levels: numbers separated by commas, like 1,2,4")
    if not levels or any(level < 1 or level > 4 for level in levels) or args.max_tokens < 2 or args.rounds < 1:
        parser.error("--levels from 1 to 4, --max-tokens at least 2, --rounds at least 1")
    cores = sorted(os.sched_getaffinity(0))[: max(1, args.cores)]
    os.sched_setaffinity(0, cores)  # a one-core unit: both engines on the same core(s)

    from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine

    model = str(locate_default_model())
    common = {"model_id": "bench", "n_ctx": 1024, "n_threads": len(cores), "max_tokens": args.max_tokens}
    engines = {
        "batched": open_llama_cpp_engine(model, sequences=4, **common),
        "one at a time": open_llama_cpp_engine(model, sequences=1, **common),
    }
    print(f"model {os.path.basename(model)}, cores {cores}, {args.max_tokens} tokens per reply, {args.rounds} rounds")
    rates: dict[tuple[str, int], list[float]] = {}
    try:
        _run_level(engines["batched"], 1, 8, "warm")  # first-use costs (allocations, page faults) out of the figures
        _run_level(engines["one at a time"], 1, 8, "warm")
        for round_ in range(args.rounds):
            for level in levels:
                for name, engine in engines.items():
                    seconds, tokens = _run_level(engine, level, args.max_tokens, f"{round_}-{level}")
                    rates.setdefault((name, level), []).append(tokens / seconds)
                    print(
                        f"  round {round_ + 1}, {level} at once, {name}: {tokens} tokens in {seconds:.2f} s", flush=True
                    )
    finally:
        for engine in engines.values():
            engine.close()
    base = statistics.median(rates[("batched", levels[0])])
    print()
    print("| chats at once | batched tokens/s | against one chat | one at a time tokens/s | batched / one at a time |")
    print("|---:|---:|---:|---:|---:|")
    for level in levels:
        batched = statistics.median(rates[("batched", level)])
        single = statistics.median(rates[("one at a time", level)])
        print(f"| {level} | {batched:.1f} | {batched / base:.2f}x | {single:.1f} | {batched / single:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
