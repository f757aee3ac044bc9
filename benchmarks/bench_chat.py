"""Chat benchmark: the full stack (HTTP → portal → engine worker) against llama.cpp called directly.

Run: scripts/dev bench   (or .venv/bin/python -m benchmarks.bench_chat --help)

Both sides load the same GGUF with the same context size and threads, get the same prompts at
temperature 0, and are measured alternately in one run, so that machine noise hits both alike:
  - time to first token (TTFT) and decode tokens/s of single chats;
  - aggregate tokens/s with 1, 4 and 8 chats at once (the engine called directly runs them one after
    another: one llama.cpp context decodes one sequence at a time, which is also what the unit does
    with one worker);
  - /healthz latency while 8 chats stream, and the slowest chat's share (starvation check).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx

from appliance.engine.default_model import DEFAULT_MODEL_ID
from appliance.engine.llama_cpp.load_cpu_backend import load_cpu_backend
from appliance.engine.locate_default_model import locate_default_model

# A per-request system line defeats llama.cpp's prompt-prefix cache, so every TTFT includes prompt evaluation.
SYSTEM = "You are assistant number {i}."
QUESTION = "Count from 1 to 1000, separated by commas."
CHATS_PER_LEVEL = 8


def _messages(i: int) -> list[dict]:
    return [{"role": "system", "content": SYSTEM.format(i=i)}, {"role": "user", "content": QUESTION}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_unit(args, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--n-ctx",
            str(args.n_ctx),
            "--threads",
            str(args.threads),
            "--workers",
            str(args.workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("bench: iplm serve did not start")


def _run_direct(llm, i: int, max_tokens: int) -> dict:
    start = time.perf_counter()
    first = last = None
    pieces = []
    for chunk in llm.create_chat_completion(messages=_messages(i), stream=True, max_tokens=max_tokens, temperature=0):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            last = time.perf_counter()
            first = first or last
            pieces.append(text)
    tokens = len(llm.tokenize("".join(pieces).encode(), add_bos=False))
    return {"start": start, "first": first, "last": last, "tokens": tokens}


def _run_stack(http: httpx.Client, i: int, max_tokens: int) -> dict:
    # `http` is kept open between chats, as a phone's browser keeps its connection.
    body = {
        "model": DEFAULT_MODEL_ID,
        "messages": _messages(i),
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    start = time.perf_counter()
    first = last = None
    tokens = 0
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
    return {"start": start, "first": first, "last": last, "tokens": tokens}


def _ttft_ms(run: dict) -> float:
    return (run["first"] - run["start"]) * 1000


def _decode_rate(run: dict) -> float:
    # Tokens after the first one, over the time after the first one: prompt evaluation excluded.
    return (run["tokens"] - 1) / (run["last"] - run["first"]) if run["tokens"] > 1 else 0.0


def _concurrent_stack(url: str, n: int, max_tokens: int, offset: int) -> dict:
    """CHATS_PER_LEVEL chats, n at a time, with /healthz probed all along."""
    runs: list[dict] = []
    health: list[float] = []
    done = threading.Event()
    todo = iter(range(offset, offset + CHATS_PER_LEVEL))
    lock = threading.Lock()

    def chat() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                run = _run_stack(http, i, max_tokens)
                with lock:
                    runs.append(run)

    def poll_health() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not done.is_set():
                start = time.perf_counter()
                http.get("/healthz").raise_for_status()
                health.append((time.perf_counter() - start) * 1000)
                time.sleep(0.05)

    threads = [threading.Thread(target=chat) for _ in range(n)]
    poller = threading.Thread(target=poll_health)
    poller.start()
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    done.set()
    poller.join()
    return {"elapsed": elapsed, "tokens": sum(r["tokens"] for r in runs), "runs": runs, "health_ms": health}


def _concurrent_direct(llm, max_tokens: int, offset: int) -> dict:
    start = time.perf_counter()
    runs = [_run_direct(llm, i, max_tokens) for i in range(offset, offset + CHATS_PER_LEVEL)]
    return {"elapsed": time.perf_counter() - start, "tokens": sum(r["tokens"] for r in runs)}


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="single-chat rounds per side (default 10)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, default=1, help="engine workers of the unit (default 1)")
    parser.add_argument("--concurrency", default="1,4,8")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]

    from llama_cpp import Llama

    load_cpu_backend()  # a dynamic build: the same CPU variant the unit's workers load
    llm = Llama(
        model_path=str(locate_default_model()),
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_batch=min(512, args.n_ctx),
        verbose=False,
    )
    with tempfile.TemporaryDirectory() as data_dir:
        process, url = _start_unit(args, data_dir)
        try:
            with httpx.Client(base_url=url, timeout=600) as http:
                # Warm both (page cache, first-call allocations), then alternate.
                _run_direct(llm, -1, 8)
                _run_stack(http, -1, 8)
                direct, stack = [], []
                for i in range(args.rounds):
                    direct.append(_run_direct(llm, i, args.max_tokens))
                    stack.append(_run_stack(http, i, args.max_tokens))
            rows = []
            for n in levels:
                # The same chats on both sides, so both generate the same tokens.
                d = _concurrent_direct(llm, args.max_tokens, offset=100)
                s = _concurrent_stack(url, n, args.max_tokens, offset=100)
                rows.append((n, d, s))
        finally:
            process.terminate()
            process.wait(timeout=30)

    ttft_d = statistics.median(_ttft_ms(r) for r in direct)
    ttft_s = statistics.median(_ttft_ms(r) for r in stack)
    rate_d = statistics.median(_decode_rate(r) for r in direct)
    rate_s = statistics.median(_decode_rate(r) for r in stack)
    print(
        f"iplm chat benchmark: {DEFAULT_MODEL_ID}, llama.cpp, {args.threads} threads, n_ctx {args.n_ctx}, "
        f"{args.workers} worker(s), max_tokens {args.max_tokens}, {args.rounds} rounds (medians)"
    )
    print(f"{'':28}{'direct':>12}{'full stack':>12}{'ratio / diff':>16}")
    print(f"{'time to first token (ms)':28}{ttft_d:12.1f}{ttft_s:12.1f}{ttft_s - ttft_d:+13.1f} ms")
    print(f"{'decode tokens/s':28}{rate_d:12.1f}{rate_s:12.1f}{rate_s / rate_d:15.3f}x")
    for n, d, s in rows:
        agg_d, agg_s = d["tokens"] / d["elapsed"], s["tokens"] / s["elapsed"]
        print(f"{f'aggregate tok/s, {n} at once':28}{agg_d:12.1f}{agg_s:12.1f}{agg_s / agg_d:15.3f}x")
    n, _, s = rows[-1]
    health = sorted(s["health_ms"])
    slowest = min(r["tokens"] / (r["last"] - r["start"]) for r in s["runs"])
    fastest = max(r["tokens"] / (r["last"] - r["start"]) for r in s["runs"])
    completed = sum(1 for r in s["runs"] if r["tokens"] > 0)
    print(
        f"with {n} chats streaming: {completed}/{CHATS_PER_LEVEL} completed; "
        f"/healthz p50 {statistics.median(health):.1f} ms, "
        f"max {health[-1]:.1f} ms over {len(health)} probes; slowest/fastest chat rate "
        f"{slowest / fastest:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main())
