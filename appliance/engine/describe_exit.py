"""Say in words how a process ended, from its Popen return code."""

from __future__ import annotations

import signal

_MEANINGS = {
    signal.SIGILL: "illegal instruction: the code uses an instruction this CPU or its OS does not allow",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "arithmetic fault",
    signal.SIGABRT: "aborted",
    signal.SIGKILL: "killed; without anyone asking, usually the kernel's out-of-memory killer",
}


def describe_exit(returncode: int) -> str:
    """ "exit code 3", or "killed by SIGILL (illegal instruction: ...)" for a negative (signal) code."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        number = signal.Signals(-returncode)
    except ValueError:
        return f"killed by signal {-returncode}"
    meaning = _MEANINGS.get(number)
    return f"killed by {number.name} ({meaning})" if meaning else f"killed by {number.name}"
