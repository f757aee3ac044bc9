"""llama.cpp builds side by side: decode and prompt speed of each candidate on this machine, in one run.

Run: scripts/dev bench builds   (or .venv/bin/python -m benchmarks.bench_builds --help)

Candidates (each compiled once into the wheel cache, ~/.cache/iplm/llama-cpp; a missing one is compiled
first, which takes many minutes on 2 cores):
  - native:        GGML_NATIVE=ON, what pip builds by default (for comparison only: it may not run on
                   the next machine, or even here where the CPU lists what the OS refuses);
  - host:          the explicit feature list this machine grants (scripts/dev's build);
  - generic-amd64: every CPU variant as a loadable module, the best one this machine grants loaded at
                   start (the image's build) (generic-arm64 on arm64).
Each candidate is installed into its own folder and run in its own process: the default model, the same
threads and context, a prompt of about 80 tokens, 128 tokens decoded at temperature 0. Candidates
alternate round by round so that machine noise hits all alike; the table shows medians and the ratio to
the host build. A candidate that dies (SIGILL...) is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from appliance.engine.describe_exit import describe_exit
from appliance.engine.llama_cpp.build_llama_wheel import build_llama_wheel
from appliance.engine.llama_cpp.cpu_types import LlamaBuild
from appliance.engine.llama_cpp.llama_build_targets import COMMON_CMAKE_ARGS
from appliance.engine.llama_cpp.plan_llama_build import plan_llama_build
from appliance.engine.llama_cpp.probe_cpu_features import probe_cpu_features
from appliance.engine.locate_default_model import locate_default_model

ROOT = Path(__file__).resolve().parents[1]
PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant. Answer plainly and at length.<|im_end|>\n<|im_start|>user\n"
    "Count from 1 to 200, separated by commas, and do not stop early. Then list the planets of the solar "
    "system with one sentence about each.<|im_end|>\n<|im_start|>assistant\n"
)

# Runs inside each candidate's process: llama.cpp from that candidate's folder only.
CHILD = r"""
import json, os, sys, time
from appliance.engine.llama_cpp.load_cpu_backend import load_cpu_backend
import llama_cpp
variant = load_cpu_backend()
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=int(sys.argv[2]), n_batch=512, verbose=False)
tokens = llm.tokenize(sys.argv[3].encode(), add_bos=True, special=True)
out = []
for _ in range(int(sys.argv[4])):
    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    prefill = time.perf_counter() - started
    sampled, started = 0, time.perf_counter()
    for _ in range(128):
        token = llm.sample(temp=0.0)
        llm.eval([token])
        sampled += 1
    decode = time.perf_counter() - started
    out.append({"prefill_tps": len(tokens) / prefill, "decode_tps": sampled / decode})
info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
print(json.dumps({"runs": out, "variant": variant, "system_info": info, "prompt_tokens": len(tokens)}))
"""


def _candidates(names: list[str]) -> list[LlamaBuild]:
    builds = []
    for name in names:
        if name == "native":
            builds.append(
                LlamaBuild(
                    target="native",
                    arch=platform.machine(),
                    dynamic=False,
                    cmake_args=(COMMON_CMAKE_ARGS[0], "-DGGML_NATIVE=ON"),
                    description="-march=native (pip's default)",
                )
            )
        else:
            builds.append(plan_llama_build(name, probe_cpu_features() if name == "host" else None))
    return builds


def _install(wheel: Path, into: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(into), str(wheel)], check=True
    )


def _measure(folder: Path, threads: int, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(locate_default_model()), str(threads), PROMPT, str(repeats)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        check=False,
    )
    if result.returncode != 0:
        return {"error": describe_exit(result.returncode), "stderr": result.stderr[-500:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    generic = "generic-arm64" if platform.machine() in ("aarch64", "arm64") else "generic-amd64"
    parser.add_argument("--candidates", default=f"native,host,{generic}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="measurements per candidate per round")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iplm" / "llama-cpp",
    )
    args = parser.parse_args()
    builds = _candidates(args.candidates.split(","))
    samples: dict[str, list[dict]] = {b.target: [] for b in builds}
    details: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {}
        for build in builds:
            wheel = build_llama_wheel(build, cache_dir=args.cache_dir)
            folders[build.target] = Path(scratch) / build.target
            _install(wheel, folders[build.target])
            info = json.loads((wheel.parent / "build.json").read_text())
            details[build.target] = {"wheel_mb": wheel.stat().st_size / 1e6, "compile_s": info.get("compile_seconds")}
        for round_ in range(args.rounds):
            order = builds if round_ % 2 == 0 else list(reversed(builds))
            for build in order:
                measured = _measure(folders[build.target], args.threads, args.repeats)
                if "error" in measured:
                    details[build.target]["error"] = measured["error"]
                    continue
                samples[build.target] += measured["runs"]
                details[build.target].update(
                    variant=measured["variant"],
                    system_info=measured["system_info"],
                    prompt_tokens=measured["prompt_tokens"],
                )
            print(f"  round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    _print_table(builds, samples, details, args)
    return 0


def _print_table(builds, samples, details, args) -> None:
    cpu = probe_cpu_features()
    print(
        f"llama.cpp builds on {cpu.model or cpu.arch} ({args.threads} threads), default model, "
        f"{args.rounds} rounds x {args.repeats}, medians; ratios to the host build"
    )
    host_decode = statistics.median(s["decode_tps"] for s in samples["host"]) if samples.get("host") else None
    host_prefill = statistics.median(s["prefill_tps"] for s in samples["host"]) if samples.get("host") else None
    print(
        f"{'build':15}{'decode tok/s':>14}{'ratio':>8}{'prompt tok/s':>14}{'ratio':>8}{'wheel MB':>10}"
        f"{'compile s':>11}  CPU backend"
    )
    for build in builds:
        detail = details[build.target]
        if not samples[build.target]:
            print(f"{build.target:15}  did not run: {detail.get('error', 'no samples')}")
            continue
        decode = statistics.median(s["decode_tps"] for s in samples[build.target])
        prefill = statistics.median(s["prefill_tps"] for s in samples[build.target])
        ratio_d = f"{decode / host_decode:.2f}x" if host_decode else "-"
        ratio_p = f"{prefill / host_prefill:.2f}x" if host_prefill else "-"
        backend = detail.get("variant") or "compiled in"
        compile_s = detail.get("compile_s")
        print(
            f"{build.target:15}{decode:14.1f}{ratio_d:>8}{prefill:14.1f}{ratio_p:>8}{detail['wheel_mb']:10.1f}"
            f"{compile_s if compile_s is not None else '?':>11}  {backend}"
        )
    print(
        f"(prompt: {details[builds[0].target].get('prompt_tokens', '?')} tokens; host flags: "
        f"{' '.join(sorted(cpu.granted))})"
    )


if __name__ == "__main__":
    sys.exit(_main())
