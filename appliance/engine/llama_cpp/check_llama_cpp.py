"""Check that the installed llama.cpp answers a chat on this machine, in a child process that may die.

A one-token prompt does not reach the batch kernels where a build for the wrong CPU faults (a bare
completion of "Hello" works where a chat dies), so the check sends a chat of at least 32 prompt tokens.

    python -m appliance.engine.llama_cpp.check_llama_cpp [--model FILE.gguf]

prints what answered, or why not, and exits 0 or 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading

from appliance.engine.describe_exit import describe_exit
from appliance.engine.llama_cpp.cpu_types import LlamaCheck

MIN_PROMPT_TOKENS = 32
_PROMPT = (
    "You are checking a new appliance. Read this sentence, which is long on purpose so that the prompt "
    "is processed as one batch of many tokens, and then answer in a few words: what colour is a clear "
    "daytime sky on a sunny summer afternoon?"
)
_ADVICE = {
    "SIGILL": (
        "llama.cpp was compiled for instructions this CPU or its OS does not allow (for example a "
        "-march=native build on a virtual machine that lists AVX-512 or AMX without granting them, or a "
        "wheel built on another machine)."
    ),
    "SIGSEGV": "llama.cpp crashed before answering: a broken build, a damaged model file, or too little memory.",
    "SIGBUS": "llama.cpp crashed before answering: a damaged or truncated model file, or a broken build.",
    "SIGKILL": "llama.cpp was killed, most likely by the kernel because memory ran out.",
}
_REBUILD = (
    "Rebuild llama.cpp for this machine with `scripts/dev setup` (it compiles for the CPU features this "
    "machine grants, cached in ~/.cache/iplm/llama-cpp; delete that folder to force a fresh compile), or "
    "choose the build that picks its CPU backend at load time: IPLM_LLAMA_TARGET=generic-amd64 "
    "(generic-arm64 on arm64) scripts/dev setup. IPLM_LLAMA_CMAKE_ARGS adds CMake flags of your own, "
    "for example -DGGML_AVX512=OFF."
)


def _answer_in_this_process(model: str) -> dict:
    from appliance.engine.engine_types import ChatParams, ChatRequest
    from appliance.engine.llama_cpp.open_llama_cpp_engine import open_llama_cpp_engine

    engine = open_llama_cpp_engine(model, model_id="check", n_ctx=512, n_threads=os.cpu_count() or 1, max_tokens=8)
    request = ChatRequest(messages=({"role": "user", "content": _PROMPT},), params=ChatParams(max_tokens=8, seed=1))
    events = list(engine.stream_chat(request, threading.Event()))
    engine.close()
    import llama_cpp

    return {
        "prompt_tokens": events[0].prompt_tokens,
        "completion_tokens": events[-1].completion_tokens,
        "text": "".join(e.text for e in events if e.kind == "delta"),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }


def _describe_failure(returncode: int, stderr: str) -> str:
    how = describe_exit(returncode)
    signal_name = how.split()[2] if how.startswith("killed by SIG") else ""
    cause = _ADVICE.get(signal_name, "")
    tail = "\n".join(stderr.strip().splitlines()[-8:])
    return "\n".join(
        part
        for part in (
            f"llama.cpp could not answer a test chat: the process was {how}.",
            cause,
            _REBUILD,
            f"Its last output:\n{tail}" if tail else "",
        )
        if part
    )


def check_llama_cpp(model: str | None = None, *, timeout: float = 300.0) -> LlamaCheck:
    """Load `model` (default: the embedded one) in a child process and answer a chat of >= 32 prompt tokens."""
    if model is None:
        from appliance.engine.locate_default_model import locate_default_model

        model = str(locate_default_model())
    command = [sys.executable, "-m", "appliance.engine.llama_cpp.check_llama_cpp", "--in-process", "--model", model]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, errors="replace")
    except subprocess.TimeoutExpired:
        return LlamaCheck(False, f"llama.cpp did not answer a test chat within {timeout:g} s.")
    if result.returncode != 0:
        return LlamaCheck(False, _describe_failure(result.returncode, result.stderr))
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if answer["prompt_tokens"] < MIN_PROMPT_TOKENS:
        return LlamaCheck(
            False,
            f"the test chat was only {answer['prompt_tokens']} prompt tokens; it must be at "
            f"least {MIN_PROMPT_TOKENS} to reach llama.cpp's batch kernels",
        )
    return LlamaCheck(
        True,
        f"llama.cpp answered a chat of {answer['prompt_tokens']} prompt tokens with "
        f"{answer['completion_tokens']} tokens ({answer['system_info']})",
        prompt_tokens=answer["prompt_tokens"],
        completion_tokens=answer["completion_tokens"],
    )


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="check_llama_cpp", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a GGUF file (default: the embedded default model)")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        # The answer gets a descriptor of its own: native code prints to fd 1, which now goes to stderr.
        answer_out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        answer_out.write(json.dumps(_answer_in_this_process(args.model)) + "\n")
        answer_out.close()
        return 0
    check = check_llama_cpp(args.model)
    print(check.message, file=sys.stdout if check.ok else sys.stderr)
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
