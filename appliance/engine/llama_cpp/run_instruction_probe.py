"""Run one instruction that needs OS-enabled register state, in this process: it returns, or dies by SIGILL.

Run it in a child process (`python -m appliance.engine.llama_cpp.run_instruction_probe amx`): a CPU may
list AVX-512 or AMX in CPUID while the kernel or hypervisor never enabled their state, and the only
reliable test is to run an instruction and see whether the process survives.
"""

from __future__ import annotations

import ctypes
import mmap
import sys

# Machine code (x86-64, System V ABI), assembled with GNU as from:
#   avx:    vxorps ymm0,ymm0,ymm0; vzeroupper; ret
#   avx512: vpxord zmm0,zmm0,zmm0; kxorw k1,k1,k1; vzeroupper; ret
#   amx:    ldtilecfg [rdi]; tilezero tmm0; tilerelease; ret
_CODE = {
    "avx": bytes.fromhex("c5fc57c0c5f877c3"),
    "avx512": bytes.fromhex("62f17d48efc0c5f447c9c5f877c3"),
    "amx": bytes.fromhex("c4e2784907c4e27b49c0c4e27849c0c3"),
}
_SYS_ARCH_PRCTL = 158  # x86-64
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


def _tile_config() -> ctypes.Array:
    # 64-byte tile configuration: palette 1, tile 0 as 16 rows of 64 bytes.
    config = (ctypes.c_uint8 * 64)()
    config[0] = 1
    config[16] = 64  # colsb[0], little-endian u16
    config[48] = 16  # rows[0]
    return config


def _request_amx_permission() -> None:
    # Linux hands out AMX tile state only on request (arch_prctl); a refusal is an answer too.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) != 0:
        raise SystemExit(f"arch_prctl(ARCH_REQ_XCOMP_PERM) refused: errno {ctypes.get_errno()}")


def run_instruction_probe(state: str) -> None:
    """Execute `state`'s instruction ("avx", "avx512" or "amx"); SIGILL kills the process if it is refused."""
    if state not in _CODE:
        raise ValueError(f"unknown register state {state!r}; one of {', '.join(_CODE)}")
    if state == "amx":
        _request_amx_permission()
    code = _CODE[state]
    memory = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    memory.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    function = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(address)
    config = _tile_config()
    function(ctypes.addressof(config))


if __name__ == "__main__":
    run_instruction_probe(sys.argv[1])
