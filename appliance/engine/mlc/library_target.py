"""Data shape of a compiled MLC model library's target: the board and toolchain a `.so` was built for.

A unit keeps the libraries it may use under `<data_dir>/libs/<model_id>/<target.key>/`: one `.so` and a
`target.json` beside it (see RECORD_FIELDS). keep_model_library writes them, choose_model_library reads them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

LIBS_DIR = (
    "libs"  # in the data dir: <LIBS_DIR>/<model id>/ kept libraries, <LIBS_DIR>/<JIT_DIR>/<model id>/ MLC's cache
)
JIT_DIR = ".mlc-jit"
TARGET_FILE = "target.json"
RECORD_VERSION = 1
# "prebuilt": an admin gave the library; "jit": MLC compiled it on this unit.
LIBRARY_SOURCES = ("prebuilt", "jit")
# target.json: {"version": 1, "target": {<LibraryTarget fields>}, "library": "<name>.so", "size": int,
# "sha256": hex of the .so, "source": one of LIBRARY_SOURCES,
# "model_config_sha256": hex of the model's mlc-chat-config.json, or null when it was not given}
RECORD_FIELDS = ("version", "target", "library", "size", "sha256", "source", "model_config_sha256")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LibraryTarget:
    """What a compiled MLC model library was built for and by. Missing facts are "".

    board: the board class (DeviceProfile.board) where it fixes the GPU ("jetson-orin": sm_87, "rk3588":
        Mali-G610); other boards add the GPU's name ("generic-x86_64:NVIDIA GeForce RTX 4090"), since
        a CUDA library is compiled for one GPU architecture.
    device: the MLC device it runs on: "cuda", "opencl", "vulkan".
    platform_version: the OS and GPU toolkit the host code and kernels were built against, "; "-joined:
        "ubuntu 22.04; L4T 36.4.0; CUDA 12.6.68". JetPack is not read: L4T fixes it, and the
        nvidia-jetpack package is absent from containers and minimal flashes.
    driver: the GPU driver: "NVIDIA 540.4.0" (from /proc/driver/nvidia/version; "" on a Jetson without
        it, where L4T fixes libcuda), or "mali_kbase g18p0-01eac0; libmali-valhall-g610-g13p0-...so".
    mlc_version: the MLC LLM distribution(s) that compiled it, "mlc-llm-nightly-cu122==0.1.dev1234".
    tvm_version: the TVM distribution(s) underneath, "mlc-ai-nightly-cu122==0.15.dev567"
        (plus "apache-tvm-ffi==..." where TVM ships its FFI apart).

    The rule: a library is used or offered only where ALL six fields are equal. Each one can break a
    library: another GPU architecture or device kind has no kernels for it, another libc or toolkit
    breaks its host code's links, another MLC/TVM changes the runtime ABI it calls, and the JIT bakes in
    what the driver reported. A false mismatch costs one JIT compile (minutes); a false match costs a
    native crash or wrong answers, so nothing is relaxed. Distribution names are part of the versions:
    a -cu122 and a -cu123 wheel of the same version are different toolchains.
    """

    board: str
    device: str
    platform_version: str
    driver: str
    mlc_version: str
    tvm_version: str

    @property
    def key(self) -> str:
        """The target's directory name: readable board and device, then a hash over all six fields."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode("utf-8")).hexdigest()[:16]
        readable = _UNSAFE.sub("_", f"{self.board}-{self.device}").strip("._-")[:64] or "unknown"
        return f"{readable}-{digest}"
