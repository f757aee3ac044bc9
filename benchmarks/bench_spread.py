"""Spreading whole chats: N concurrent chats on one unit, then on two units in a mesh (issue 12, benchmark a).

Run (root: it builds network namespaces): scripts/dev bench spread   (or .venv/bin/python -m benchmarks.bench_spread)
    [--chats 8] [--max-tokens 96] [--cores 1] [--rounds 2]

A lab LAN of three network namespaces (tests/netlab/start_net_lab.py, prefix iplm-bs, 10.x addresses of the
lab only): unit 0 is the phones (one process sending the chats at once, streaming), units 1 and 2 run
`iplm serve` with the default model, one engine worker each, pinned with taskset to their own `--cores` CPUs
(unit 1 on the first ones, unit 2 on the next). Each round measures, side by side:

  one unit:   unit 1 alone (no mesh); all chats sent to it
  two units:  units 1 and 2 in one mesh; all chats sent to unit 1, which sends some on (choose_chat_unit)

Each setup is warmed up first (one chat per unit, so that each has measured its speed, as a unit that has
served for a while has). Figures: aggregate completion tokens/s over the time until the last chat ends,
the slowest chat's wait for its first token and its whole time, and how many chats unit 2 answered.
Replies are greedy (temperature 0), so both setups generate the same replies.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.mesh.key.create_mesh_key import create_mesh_key  # noqa: E402
from tests.netlab.start_net_lab import start_net_lab  # noqa: E402

PHONES, FIRST, SECOND = 0, 1, 2
PORT, MESH_PORT = 8080, 1883
PROMPTS = [
    "Describe how a bicycle gear works.",
    "Give three tips for keeping bread fresh.",
    "Explain what a rainbow is to a child.",
    "Write a short note thanking a neighbour for help.",
    "List some uses of a paperclip.",
    "What makes a good cup of tea?",
    "Describe the water cycle in a few sentences.",
    "Suggest a name for a small boat and say why.",
    "Explain why the sky is dark at night.",
    "Give advice for a first day at a new job.",
    "Describe a quiet morning in a village.",
    "What should go in a simple first aid kit?",
]

# The phones: every chat at once, streamed; per chat the time of its first token, its end, its tokens and
# which unit answered.
_PHONES = r"""
import json, sys, threading, time, urllib.request
url, max_tokens, prompts = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
results = [None] * len(prompts)
start = threading.Event()
def chat(i, prompt):
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    start.wait()
    began = time.monotonic()
    first = unit = None
    tokens = 0
    with urllib.request.urlopen(request, timeout=1800) as response:
        for line in response:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "iplm_unit" in chunk and unit is None:
                unit = chunk["iplm_unit"]
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content") and first is None:
                first = time.monotonic() - began
            if chunk.get("usage") and not chunk.get("choices"):
                tokens = chunk["usage"]["completion_tokens"]
    results[i] = {"first_s": first, "total_s": time.monotonic() - began, "tokens": tokens, "unit": unit}
threads = [threading.Thread(target=chat, args=(i, p)) for i, p in enumerate(prompts)]
for thread in threads:
    thread.start()
began = time.monotonic()
start.set()
for thread in threads:
    thread.join()
print(json.dumps({"wall_s": time.monotonic() - began, "chats": results}))
"""


def _cpus(unit: int, cores: int) -> str:
    first = (unit - FIRST) * cores
    return ",".join(str(c) for c in range(first, first + cores))


def _serve(lab, unit: int, data_dir: Path, cores: int, mesh: bool, log: Path, sequences: int | None = None):
    argv = ["taskset", "-c", _cpus(unit, cores), sys.executable, "-m", "appliance.cli.main", "serve",
            "--host", "0.0.0.0", "--port", str(PORT), "--data-dir", str(data_dir), "--n-ctx", "2048",
            "--workers", "1", "--threads", str(cores), "--max-queued-chats", "64",
            "--chats-per-device", "64"]  # fmt: skip
    if sequences is not None:
        argv += ["--sequences", str(sequences)]
    if mesh:
        argv += ["--mesh-address", lab.units[unit].address, "--mesh-port", str(MESH_PORT)]
    return lab.run(unit, argv, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _cli(lab, unit: int, *argv: str) -> str:
    return lab.check_output(unit, [sys.executable, "-m", "appliance.cli.main", *argv], timeout=60, cwd=ROOT)


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (subprocess.SubprocessError, ValueError, KeyError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not happen in {timeout:g} s")


def _healthy(lab, unit: int) -> bool:
    probe = f"import urllib.request as u; u.urlopen('http://{lab.units[unit].address}:{PORT}/healthz', timeout=2)"
    return lab.run(PHONES, [sys.executable, "-c", probe], stderr=subprocess.DEVNULL).wait() == 0


def _sees_ready(lab, unit: int, data_dir: Path) -> bool:
    status = json.loads(_cli(lab, unit, "mesh", "status", "--json", "--data-dir", str(data_dir)))
    return any(
        peer["state"] == "online" and peer.get("presence", {}).get("load", {}).get("decode_tokens_per_s")
        for peer in status["peers"].values()
    )


def _phones(lab, unit: int, prompts: list[str], max_tokens: int) -> dict:
    url = f"http://{lab.units[unit].address}:{PORT}"
    out = lab.check_output(
        PHONES, [sys.executable, "-c", _PHONES, url, str(max_tokens), json.dumps(prompts)], timeout=3600
    )
    return json.loads(out)


def _measure(lab, prompts: list[str], max_tokens: int) -> dict:
    run = _phones(lab, FIRST, prompts, max_tokens)
    chats = run["chats"]
    tokens = sum(chat["tokens"] for chat in chats)
    return {
        "wall_s": run["wall_s"],
        "tokens": tokens,
        "tokens_per_s": tokens / run["wall_s"],
        "slowest_first_s": max(chat["first_s"] or chat["total_s"] for chat in chats),
        "slowest_total_s": max(chat["total_s"] for chat in chats),
        "on_second": sum(bool(chat["unit"]) for chat in chats),
    }


def _setup(
    lab, work: Path, cores: int, two: bool, key: str, prompts: list[str], max_tokens: int, sequences: int | None = None
) -> list:
    """Start the units of one setup, warm them up, and return their processes."""
    units = [FIRST, SECOND] if two else [FIRST]
    dirs = {unit: work / f"unit{unit}-{'two' if two else 'one'}-{time.monotonic_ns()}" for unit in units}
    if two:
        for unit in units:
            other = lab.units[SECOND if unit == FIRST else FIRST].address
            _cli(lab, unit, "mesh", "join", key, "--data-dir", str(dirs[unit]))
            _cli(lab, unit, "mesh", "add", f"{other}:{MESH_PORT}", "--data-dir", str(dirs[unit]))
    processes = [
        _serve(lab, unit, dirs[unit], cores, two, work / f"{dirs[unit].name}.log", sequences) for unit in units
    ]
    for unit in units:
        _wait(lambda unit=unit: _healthy(lab, unit), 120, f"unit {unit} serving")
    for unit in units:  # each unit measures its speed (a unit that has served a while has)
        _phones(lab, unit, prompts[:1], max_tokens)
    if two:
        for unit in units:
            _wait(lambda unit=unit: _sees_ready(lab, unit, dirs[unit]), 60, f"unit {unit} seeing its peer's speed")
    return processes


def _stop(processes: list) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--cores", type=int, default=1, help="CPUs per unit (default 1)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sequences", type=int, help="chats each unit decodes together (default: the unit's own)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench spread builds network namespaces: run it as root", file=sys.stderr)
        return 2
    if args.sequences is not None and args.sequences < 1:
        parser.error("--sequences: at least 1")
    if (os.cpu_count() or 1) < 2 * args.cores:
        print(f"two units of {args.cores} CPU(s) each need {2 * args.cores} CPUs", file=sys.stderr)
        return 2
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.chats)]
    key = create_mesh_key()
    rows: dict[str, list[dict]] = {"one unit": [], "two units": []}
    with tempfile.TemporaryDirectory(prefix="iplm-bench-spread-") as scratch, start_net_lab(3, "iplm-bs") as lab:
        work = Path(scratch)
        for round_ in range(args.rounds):
            order = ["one unit", "two units"] if round_ % 2 == 0 else ["two units", "one unit"]
            for name in order:
                print(f"round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
                processes = _setup(
                    lab, work, args.cores, name == "two units", key, prompts, args.max_tokens, args.sequences
                )
                try:
                    rows[name].append(_measure(lab, prompts, args.max_tokens))
                finally:
                    _stop(processes)
                for log in sorted(work.glob("*.log")):  # what the work service did, for the record
                    for line in log.read_text(errors="replace").splitlines():
                        if "iplm.mesh.work" in line and " here" in line:
                            print(f"  {log.stem}: {line}", file=sys.stderr)
                    log.unlink()
                print(f"  {json.dumps(rows[name][-1])}", file=sys.stderr, flush=True)
    print(f"\n{args.chats} concurrent chats, max_tokens {args.max_tokens}, {args.cores} CPU(s) per unit, "
          f"sequences per unit: {'the unit default' if args.sequences is None else args.sequences}, "
          f"medians of {args.rounds} round(s)")  # fmt: skip
    print(
        f"{'setup':10} {'tokens/s':>9} {'all done s':>11} {'slowest 1st token s':>20} "
        f"{'slowest chat s':>15} {'on unit 2':>10}"
    )
    medians = {}
    for name, runs in rows.items():
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        medians[name] = median
        print(f"{name:10} {median['tokens_per_s']:9.1f} {median['wall_s']:11.1f} {median['slowest_first_s']:20.1f} "
              f"{median['slowest_total_s']:15.1f} {median['on_second']:10.0f}")  # fmt: skip
    ratio = medians["two units"]["tokens_per_s"] / medians["one unit"]["tokens_per_s"]
    wait = medians["one unit"]["slowest_total_s"] / medians["two units"]["slowest_total_s"]
    print(f"aggregate tokens/s, two units / one: {ratio:.2f}x; slowest chat, one unit / two: {wait:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
