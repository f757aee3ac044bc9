"""Stand-in for a llama.cpp build compiled for another CPU: importing it executes an instruction the CPU refuses.

Put its parent folder first on PYTHONPATH; the process dies by a real SIGILL, as a library with AVX-512 or
AMX code dies on a CPU (or VM) that does not grant them.
"""

from tests.engine.fake_engines import _trap_illegal_instruction

_trap_illegal_instruction()
