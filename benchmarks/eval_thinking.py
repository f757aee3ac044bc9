"""Deep thinking, evaluated on the labelled prompt set benchmarks/prompts/clarify_prompts.json.

Run: scripts/dev eval thinking   (or .venv/bin/python -m benchmarks.eval_thinking --help)

The default model (or --model) in one batched llama.cpp engine, as a unit runs it, behind the thinking
layer (start_thinking_chats) at --effort. Two parts, both printed with their figures side by side:

1. Asking. Every prompt is thought about up to the decision: how often the unit asks on the ambiguous
   prompts (it should) and on the clear ones (it should not), per category, and what the rules alone and
   the model's measured agreement alone would have done.
2. Answering. The multi-part clear prompts and --answers other clear ones are answered thinking and
   directly (the same engine, one call): whether every part of a multi-part prompt is answered (each part's
   words in the answer), model calls and seconds, thinking against direct.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.engine.engine_types import ChatParams, ChatRequest, ChatStream, Engine, ThinkingAsk
from appliance.engine.locate_default_model import locate_default_model
from appliance.thinking.clarify_types import CLARIFY_BUDGET
from appliance.thinking.decide_to_clarify import decide_to_clarify
from appliance.thinking.decode_intent_model import decode_intent_model
from appliance.thinking.find_unclear_aspect import find_unclear_aspect
from appliance.thinking.start_thinking_chats import start_thinking_chats

PROMPTS = Path(__file__).resolve().parent / "prompts" / "clarify_prompts.json"
# What the evaluation's person says when a clear prompt is asked about: they meant it as written.
_AS_WRITTEN = "Answer it as I wrote it, please."


@dataclass
class _Asked:
    prompt: dict
    asked: bool
    rules: bool
    model: bool
    choices: int
    calls: int
    seconds: float


@dataclass
class _Answered:
    prompt: dict
    mode: str  # "thinking" | "direct"
    text: str
    calls: int
    seconds: float


class _Counted:
    """run_chat that counts the model calls made through it."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, request: ChatRequest, cancel) -> ChatStream:
        with self.lock:
            self.calls += 1
        return self.engine.stream_chat(request, cancel)


def _thinking(engine: Engine, counted: _Counted) -> Callable[[ChatRequest, threading.Event], ChatStream]:
    return start_thinking_chats(
        run_chat=counted, next_chat=engine.stream_chat, engine_kind=lambda: engine.kind, width=lambda: engine.sequences
    ).stream_chat


def _request(prompt: str, effort: str | None, max_tokens: int) -> ChatRequest:
    return ChatRequest(
        messages=({"role": "user", "content": prompt},),
        params=ChatParams(max_tokens=max_tokens),
        client_key="eval",
        thinking=None if effort is None else ThinkingAsk(effort=effort),  # type: ignore[arg-type]
    )


def _ask(engine: Engine, item: dict, effort: str, max_tokens: int) -> _Asked:
    """Think about one prompt up to its decision (the candidates it would then explore are stopped)."""
    counted = _Counted(engine)
    cancel = threading.Event()
    asked, choices, intent, calls = False, 0, None, 0
    started = time.perf_counter()
    for event in _thinking(engine, counted)(_request(item["prompt"], effort, max_tokens), cancel):
        if event.kind == "intent":
            intent = decode_intent_model(event.text)
        elif event.kind == "clarify":
            asked, choices, calls = True, len(event.choices), counted.calls
        elif event.kind == "thought" and event.step == "exploring" and not cancel.is_set():
            # Decided: it answers. The calls up to the decision: all but the candidates it has just started.
            candidates = sum(1 for node in (event.graph or {}).get("nodes", []) if node["kind"] == "candidate")
            calls = counted.calls - candidates
            cancel.set()
    seconds = time.perf_counter() - started
    rules = find_unclear_aspect(item["prompt"]) is not None
    model = decide_to_clarify(item["prompt"], intent, rules=False) is not None
    return _Asked(item, asked, rules, model, choices, calls, seconds)


def _answer(engine: Engine, item: dict, effort: str | None, max_tokens: int) -> _Answered:
    """One prompt answered; a question back is answered as a person who meant it as written would."""
    counted = _Counted(engine)
    stream = _thinking(engine, counted) if effort else counted
    request = _request(item["prompt"], effort, max_tokens)
    started = time.perf_counter()
    for _ in range(CLARIFY_BUDGET + 1):
        text, asked = [], False
        for event in stream(request, threading.Event()):
            if event.kind == "delta":
                text.append(event.text)
            asked = asked or event.kind == "clarify"
        if not asked:
            break
        said = ({"role": "assistant", "content": "".join(text)}, {"role": "user", "content": _AS_WRITTEN})
        thinking = dataclasses.replace(request.thinking, asked=request.thinking.asked + 1) if request.thinking else None
        request = dataclasses.replace(request, messages=(*request.messages, *said), thinking=thinking)
    seconds = time.perf_counter() - started
    return _Answered(item, "thinking" if effort else "direct", "".join(text), counted.calls, seconds)


def _parts_answered(item: dict, text: str) -> tuple[int, int]:
    lowered = text.lower()
    parts = item.get("parts") or []
    return sum(1 for words in parts if any(word.lower() in lowered for word in words)), len(parts)


def _rate(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)} ({100 * sum(flags) / max(1, len(flags)):.0f} %)"


def _print_asking(results: list[_Asked]) -> None:
    print("\n## Asking: how often the unit asks before answering\n")
    print(
        "| prompts | n | the unit asks | rules alone | model alone | asks with choices | median s | calls to decide |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    groups: dict[str, list[_Asked]] = {}
    for result in results:
        label = result.prompt["label"]
        groups.setdefault(f"{label}", []).append(result)
        groups.setdefault(f"  {label}: {result.prompt['category']}", []).append(result)
    for name in sorted(groups, key=lambda n: (n.strip().split(":")[0], n.startswith("  "), n)):
        rows = groups[name]
        asked = [r for r in rows if r.asked]
        print(
            f"| {name} | {len(rows)} | {_rate([r.asked for r in rows])} | {_rate([r.rules for r in rows])} "
            f"| {_rate([r.model for r in rows])} | {_rate([r.choices > 0 for r in asked])} "
            f"| {statistics.median(r.seconds for r in rows):.1f} | {statistics.median(r.calls for r in rows):.0f} |"
        )
    ambiguous = [r.asked for r in results if r.prompt["label"] == "ambiguous"]
    clear = [r.asked for r in results if r.prompt["label"] == "clear"]
    if ambiguous and clear:
        print(
            f"\nAsks on {_rate(ambiguous)} of the ambiguous prompts (target: at least 70 %) and on {_rate(clear)} "
            "of the clear ones (target: at most 20 %)."
        )


def _print_answering(pairs: list[tuple[_Answered, _Answered]]) -> None:
    print("\n## Answering: thinking against direct, on clear prompts\n")
    print("| prompt | parts answered, thinking | parts answered, direct | calls | s thinking | s direct |")
    print("|---|---:|---:|---:|---:|---:|")
    for thought, direct in pairs:
        got_t, total = _parts_answered(thought.prompt, thought.text)
        got_d, _ = _parts_answered(direct.prompt, direct.text)
        parts_t, parts_d = (f"{got_t}/{total}", f"{got_d}/{total}") if total else ("-", "-")
        print(
            f"| {thought.prompt['id']} {thought.prompt['category']} | {parts_t} | {parts_d} | {thought.calls} vs "
            f"{direct.calls} | {thought.seconds:.1f} | {direct.seconds:.1f} |"
        )
    multi = [(t, d) for t, d in pairs if t.prompt.get("parts")]
    if multi:
        whole_t = sum(1 for t, _ in multi if _parts_answered(t.prompt, t.text)[0] == len(t.prompt["parts"]))
        whole_d = sum(1 for _, d in multi if _parts_answered(d.prompt, d.text)[0] == len(d.prompt["parts"]))
        answered_t = sum(_parts_answered(t.prompt, t.text)[0] for t, _ in multi)
        answered_d = sum(_parts_answered(d.prompt, d.text)[0] for _, d in multi)
        total = sum(len(t.prompt["parts"]) for t, _ in multi)
        print(
            f"\nMulti-part prompts with every part answered: thinking {whole_t}/{len(multi)}, direct "
            f"{whole_d}/{len(multi)}; parts answered: thinking {answered_t}/{total}, direct {answered_d}/{total}."
        )
    seconds_t = statistics.median(t.seconds for t, _ in pairs)
    seconds_d = statistics.median(d.seconds for _, d in pairs)
    calls_t = statistics.mean(t.calls for t, _ in pairs)
    print(
        f"Median seconds per answer: thinking {seconds_t:.1f}, direct {seconds_d:.1f} ({seconds_t / seconds_d:.1f}x); "
        f"model calls per answer: thinking {calls_t:.1f}, direct 1."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a GGUF file (default: the packaged default model)")
    parser.add_argument("--effort", choices=("medium", "high"), default="medium", help="reasoning effort (medium)")
    parser.add_argument("--every", type=int, default=1, help="every Nth prompt only, in both parts (default 1: all)")
    parser.add_argument("--answers", type=int, default=7, help="clear prompts answered besides the multi-part (7)")
    parser.add_argument("--max-tokens", type=int, default=192, help="reply length of an answer (default 192)")
    parser.add_argument("--sequences", type=int, default=4, help="chats the engine decodes at once (default 4)")
    args = parser.parse_args(argv)
    if args.every < 1 or args.answers < 0 or args.max_tokens < 16 or not 1 <= args.sequences <= 8:
        parser.error("--every at least 1, --answers at least 0, --max-tokens at least 16, --sequences 1 to 8")
    prompts = json.loads(PROMPTS.read_text(encoding="utf-8"))["prompts"]

    from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine

    model = args.model or str(locate_default_model())
    threads = len(os.sched_getaffinity(0))
    engine = open_llama_cpp_engine(
        model, model_id="eval", n_ctx=2048, n_threads=threads, max_tokens=args.max_tokens, sequences=args.sequences
    )
    print(f"model {os.path.basename(model)}, effort {args.effort}, {args.sequences} sequences, {threads} threads")
    try:
        asking = []
        chosen = prompts[:: args.every]
        for number, item in enumerate(chosen, 1):
            result = _ask(engine, item, args.effort, args.max_tokens)
            asking.append(result)
            print(
                f"  [{number}/{len(chosen)}] {item['id']} {item['label']}/{item['category']}: "
                f"{'asks' if result.asked else 'answers'} ({result.seconds:.1f} s)",
                flush=True,
            )
        clear = [item for item in prompts if item["label"] == "clear"]
        others = Counter[str]()
        answering = [item for item in clear if item.get("parts")]
        for item in clear:
            if not item.get("parts") and sum(others.values()) < args.answers and others[item["category"]] < 2:
                others[item["category"]] += 1
                answering.append(item)
        pairs = []
        answering = answering[:: args.every]
        for number, item in enumerate(answering, 1):
            thought = _answer(engine, item, args.effort, args.max_tokens)
            direct = _answer(engine, item, None, args.max_tokens)
            pairs.append((thought, direct))
            print(
                f"  [{number}/{len(answering)}] {item['id']}: thinking {thought.seconds:.1f} s, "
                f"direct {direct.seconds:.1f} s",
                flush=True,
            )
    finally:
        engine.close()
    _print_asking(asking)
    if pairs:
        _print_answering(pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
