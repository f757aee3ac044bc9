"""Split answers: time to the complete answer, split vs whole, on one unit and on two (issue 12, benchmark b).

Run (root: it builds network namespaces): scripts/dev bench split   (or .venv/bin/python -m benchmarks.bench_split)
    [--max-tokens 192] [--cores 1] [--limit N]
    scripts/dev bench split --planner-check   (no root, no lab: the model planner alone, on this machine)

The prompt set is benchmarks/prompts/split_prompts.json: prompts written for iplm, each labelled "split"
(several questions, one request over several subjects, a long text to read) or "whole" (code, maths, one
flowing text, one short question). The lab is bench_spread's: unit 0 is the phone, units 1 and 2 run
`iplm serve` with the default model, one engine worker each, pinned with taskset to their own `--cores` CPUs.
Each prompt is sent alone (nothing else runs), greedy, and timed until the whole answer is in:

  whole, one unit:   unit 1 alone, iplm_split false (the baseline)
  split, one unit:   unit 1 alone, iplm_split true (the router decides)
  whole, two units:  units 1 and 2 in one mesh, iplm_split false, sent to unit 1 (which runs it)
  split, two units:  units 1 and 2 in one mesh, iplm_split true, sent to unit 1

Each prompt's whole and split answers are timed one after the other in each setup (so that a machine
that slows down for a while slows both); in the two-unit setup the whole answer runs on unit 1 (idle, it
keeps its chats), which gives a second baseline measured beside the split one.

It prints, per prompt, the router's decision and the times; then per label the median times and their
ratios, and the share of pieces that were answered (the rest failed or were given up).

--planner-check asks the default model (in this process, one thread) to plan every prompt the router cuts
into sections, as `iplm serve --split-planner model` would, and prints how many of its plans passed the
planner's checks (else the rules' cut is used) and how long a plan took.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.mesh.key.create_mesh_key import create_mesh_key  # noqa: E402
from appliance.split.route_prompt import route_prompt  # noqa: E402
from benchmarks import bench_spread as lab_units  # noqa: E402 - the same lab, units and warm-up
from tests.netlab.start_net_lab import start_net_lab  # noqa: E402

PROMPTS = ROOT / "benchmarks/prompts/split_prompts.json"
FIRST = lab_units.FIRST

# The phone: each body in turn, alone; per body its time to the complete answer, tokens and pieces.
_PHONE = r"""
import json, sys, time, urllib.request
url, bodies = sys.argv[1], json.loads(sys.argv[2])
for body in bodies:
    request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    began = time.monotonic()
    with urllib.request.urlopen(request, timeout=1800) as response:
        answer = json.load(response)
    pieces = [{"unit": p["unit"], "finish_reason": p["finish_reason"]} for p in answer.get("iplm_pieces", [])]
    print(json.dumps({"total_s": time.monotonic() - began, "tokens": answer["usage"]["completion_tokens"],
                      "pieces": pieces, "unit": answer.get("iplm_unit", "")}), flush=True)
"""


def _ask(lab, prompts: list[dict], max_tokens: int) -> list[tuple[dict, dict]]:
    """Each prompt whole, then split, one after the other: the two are timed under the same conditions."""
    bodies = [
        {
            "messages": [{"role": "user", "content": p["prompt"]}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "iplm_split": split,
        }  # fmt: skip
        for p in prompts
        for split in (False, True)
    ]
    url = f"http://{lab.units[FIRST].address}:{lab_units.PORT}"
    out = lab.check_output(lab_units.PHONES, [sys.executable, "-c", _PHONE, url, json.dumps(bodies)], timeout=4 * 3600)
    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    return list(zip(results[::2], results[1::2], strict=True))


def _run_setup(lab, work: Path, args, two: bool, key: str, prompts: list[dict]) -> list[tuple[dict, dict]]:
    warm = ["Describe how a bicycle gear works."]
    processes = lab_units._setup(lab, work, args.cores, two, key, warm, args.max_tokens, args.sequences)
    try:
        print(f"{'two units' if two else 'one unit'}: {len(prompts)} prompts, whole then split ...", file=sys.stderr)
        began = time.monotonic()
        results = _ask(lab, prompts, args.max_tokens)
        print(f"  {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        return results
    finally:
        lab_units._stop(processes)


def _choose_prompts(limit: int | None) -> list[dict]:
    prompts = json.loads(PROMPTS.read_text("utf-8"))["prompts"]
    if limit is None:
        return prompts
    return [p for p in prompts if p["label"] == "split"][:limit] + [p for p in prompts if p["label"] == "whole"][:limit]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _check_planner(limit: int | None) -> int:
    from appliance.engine.default_model import DEFAULT_MODEL_ID
    from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine
    from appliance.engine.locate_default_model import locate_default_model
    from appliance.split.ask_model_for_json import ask_model_for_json
    from appliance.split.plan_pieces import plan_pieces

    engine = open_llama_cpp_engine(str(locate_default_model()), model_id=DEFAULT_MODEL_ID, n_ctx=2048, n_threads=1)
    try:
        chosen = [p for p in _choose_prompts(limit) if route_prompt(p["prompt"]).kind == "sections"]
        passed, times = 0, []
        for prompt in chosen:
            route = route_prompt(prompt["prompt"])
            began = time.monotonic()
            plan = plan_pieces(route, prompt["prompt"], lambda text, schema: ask_model_for_json(engine, text, schema))
            times.append(time.monotonic() - began)
            passed += plan.planner == "model"
            print(f"{prompt['id']:4} {times[-1]:5.1f} s  {plan.planner}", flush=True)
        print(f"\nthe model's plan passed the checks for {passed}/{len(chosen)} prompts cut into sections; "
              f"a plan took {_median(times):.1f} s (median), the rules' cut microseconds")  # fmt: skip
    finally:
        engine.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=192, help="max_tokens of each answer (default 192)")
    parser.add_argument("--cores", type=int, default=1, help="CPUs per unit (default 1)")
    parser.add_argument("--limit", type=int, help="only the first N prompts of each label")
    parser.add_argument("--sequences", type=int, help="chats each unit decodes together (default: the unit's own)")
    parser.add_argument("--planner-check", action="store_true", help="measure the model planner alone (no lab)")
    args = parser.parse_args()
    if args.planner_check:
        return _check_planner(args.limit)
    if os.geteuid() != 0:
        print("bench split builds network namespaces: run it as root", file=sys.stderr)
        return 2
    if args.sequences is not None and args.sequences < 1:
        parser.error("--sequences: at least 1")
    if (os.cpu_count() or 1) < 2 * args.cores:
        print(f"two units of {args.cores} CPU(s) each need {2 * args.cores} CPUs", file=sys.stderr)
        return 2
    prompts = _choose_prompts(args.limit)
    key = create_mesh_key()
    with tempfile.TemporaryDirectory(prefix="iplm-bench-split-") as scratch, start_net_lab(3, "iplm-bs") as lab:
        work = Path(scratch)
        one_unit = _run_setup(lab, work, args, False, key, prompts)
        two_units = _run_setup(lab, work, args, True, key, prompts)

    sequences = "the unit's default" if args.sequences is None else args.sequences
    print(
        f"\n{len(prompts)} prompts, one at a time, max_tokens {args.max_tokens}, {args.cores} CPU(s) per unit, "
        f"sequences per unit: {sequences}"
    )
    print("  whole 1u / split 1u: unit 1 alone; whole 2u / split 2u: units 1 and 2 in a mesh (a whole answer there")
    print("  runs on unit 1, which is idle); each prompt's whole and split answers were timed one after the other")
    columns = f"{'whole 1u':>8} {'split 1u':>8} {'whole 2u':>8} {'split 2u':>8} {'2u pieces':>9}"
    print(f"{'id':4} {'kind':10} {'router':22} {columns}")
    rows = []
    for prompt, (whole, one), (whole_mesh, two) in zip(prompts, one_unit, two_units, strict=True):
        route = route_prompt(prompt["prompt"], most_parts=2)  # as unit 1 cuts it with unit 2 in reach
        decision = "whole" if route.kind == "whole" else f"{route.kind} x{len(route.parts)}"
        on_second = sum(bool(piece["unit"]) for piece in two["pieces"])
        pieces = f"{on_second}/{len(two['pieces'])}" if two["pieces"] else "-"
        elsewhere = "" if not whole_mesh["unit"] else " (whole ran on unit 2)"
        print(f"{prompt['id']:4} {prompt['kind']:10} {decision:22} {whole['total_s']:8.1f} {one['total_s']:8.1f} "
              f"{whole_mesh['total_s']:8.1f} {two['total_s']:8.1f} {pieces:>9}{elsewhere}")  # fmt: skip
        rows.append((prompt, route, whole, one, two, whole_mesh))

    print("\nmedian time to the complete answer (s), and whole on one unit / split:")
    for label in ("split", "whole"):
        chosen = [row for row in rows if row[0]["label"] == label]
        whole_s = _median([row[2]["total_s"] for row in chosen])
        one_s = _median([row[3]["total_s"] for row in chosen])
        two_s = _median([row[4]["total_s"] for row in chosen])
        agreed = sum((row[1].kind != "whole") == (label == "split") for row in chosen)
        print(f"  {label}-suited ({len(chosen)}): whole 1 unit {whole_s:.1f}, "
              f"split 1 unit {one_s:.1f} ({whole_s / one_s:.2f}x), split 2 units {two_s:.1f} ({whole_s / two_s:.2f}x); "
              f"router agrees with the label on {agreed}/{len(chosen)}")  # fmt: skip
        ratios = [row[2]["total_s"] / row[4]["total_s"] for row in chosen]
        print(f"    per prompt, whole 1 unit / split 2 units: median {_median(ratios):.2f}x, "
              f"lowest {min(ratios):.2f}x, highest {max(ratios):.2f}x")  # fmt: skip
        beside_s = _median([row[5]["total_s"] for row in chosen])
        ratios = [row[5]["total_s"] / row[4]["total_s"] for row in chosen]
        print(f"    timed side by side in the mesh: whole {beside_s:.1f} / split {two_s:.1f} = "
              f"{beside_s / two_s:.2f}x; per prompt median {_median(ratios):.2f}x")  # fmt: skip
    for name, results in (("one unit", [row[3] for row in rows]), ("two units", [row[4] for row in rows])):
        answered_pieces = [piece for result in results for piece in result["pieces"]]
        answered = sum(piece["finish_reason"] in ("stop", "length") for piece in answered_pieces)
        print(f"pieces answered, split on {name}: {answered}/{len(answered_pieces)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
