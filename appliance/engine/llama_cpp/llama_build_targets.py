"""How llama.cpp is compiled, per target (data only). The image recipes and `scripts/dev` read this.

Never `-march=native`: a native build takes whatever the build machine's CPU advertises (AMX, AVX-512)
even where the OS or hypervisor refuses it, and it dies with SIGILL on the next CPU it meets.

- "host" (scripts/dev): one CPU backend for exactly the features this machine's CPU lists and its OS
  lets a program use (probe_cpu_features); fastest to compile, runs here.
- "generic-amd64", "generic-arm64" (images for machines nobody has seen yet): every CPU variant ggml
  has for the architecture, as loadable modules; the unit loads the best one its CPU and OS grant
  (choose_cpu_variant), not ggml's own pick, which on x86 ignores what the OS refuses.
- Board classes: one backend for the board's cores. RK3588 (Orange Pi 5): Cortex-A76 + Cortex-A55,
  both Armv8.2-A with dot product and fp16 arithmetic (no i8mm, no SVE), tuned for the big.LITTLE pair.
  Jetson Orin: Cortex-A78AE, the same feature set (no i8mm, no SVE).
"""

from __future__ import annotations

# The llama-cpp-python release every build compiles (pyproject.toml pins the same one).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# Every build: no multimodal library (the appliance does not use it; it costs compile time), never native.
COMMON_CMAKE_ARGS = ("-DLLAVA_BUILD=OFF", "-DGGML_NATIVE=OFF")

# ggml's x86 feature options and the /proc/cpuinfo flags each one needs.
X86_FEATURE_FLAGS: dict[str, tuple[str, ...]] = {
    "SSE42": ("sse4_2",),
    "AVX": ("avx",),
    "F16C": ("f16c",),
    "FMA": ("fma",),
    "AVX2": ("avx2",),
    "BMI2": ("bmi2",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
    "AMX_TILE": ("amx_tile",),
    "AMX_INT8": ("amx_int8",),
    "AMX_BF16": ("amx_bf16",),
}

# Register state the OS has to enable before a feature's instructions run. A CPU (or a hypervisor's
# CPUID) can list the feature while the kernel never enabled the state: only running one tells.
X86_FEATURE_STATE: dict[str, str] = {
    "AVX": "avx",
    "F16C": "avx",
    "FMA": "avx",
    "AVX2": "avx",
    "AVX_VNNI": "avx",
    "AVX512": "avx512",
    "AVX512_VBMI": "avx512",
    "AVX512_VNNI": "avx512",
    "AVX512_BF16": "avx512",
    "AMX_TILE": "amx",
    "AMX_INT8": "amx",
    "AMX_BF16": "amx",
}

# Features that are useless without another: ggml's AMX kernels need AVX512-VNNI as well.
X86_FEATURE_NEEDS: dict[str, tuple[str, ...]] = {
    "AMX_TILE": ("AVX512_VNNI",),
    "AMX_INT8": ("AMX_TILE", "AVX512_VNNI"),
    "AMX_BF16": ("AMX_TILE",),
}

# ggml's CPU variants under GGML_CPU_ALL_VARIANTS (ggml/src/CMakeLists.txt), tag -> features.
X86_VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("SSE42",),
    "sandybridge": ("SSE42", "AVX"),
    "ivybridge": ("SSE42", "AVX", "F16C"),
    "piledriver": ("SSE42", "AVX", "F16C", "FMA"),
    "haswell": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"),
    "skylakex": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"),
    "cannonlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"),
    "cascadelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI"),
    "icelake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"),
    "cooperlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI", "AVX512_BF16"),
    "zen4": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"),
    "alderlake": ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI"),
    "sapphirerapids": (
        "SSE42",
        "AVX",
        "F16C",
        "FMA",
        "AVX2",
        "BMI2",
        "AVX512",
        "AVX512_VBMI",
        "AVX512_VNNI",
        "AVX512_BF16",
        "AMX_TILE",
        "AMX_INT8",
    ),
}

# arm64: the kernel's HWCAP names (the "Features" line of /proc/cpuinfo) for ggml's ARM features.
# The kernel lists only what it enabled, so nothing here needs to be tried by running it.
ARM_FEATURE_FLAGS: dict[str, tuple[str, ...]] = {
    "DOTPROD": ("asimddp",),
    "FP16_VECTOR_ARITHMETIC": ("fphp", "asimdhp"),
    "MATMUL_INT8": ("i8mm",),
    "SVE": ("sve",),
    "SVE2": ("sve2",),
    "SME": ("sme",),
}

# -march extensions for an arm64 host build, in order.
ARM_MARCH_EXTENSIONS: dict[str, str] = {
    "DOTPROD": "dotprod",
    "FP16_VECTOR_ARITHMETIC": "fp16",
    "MATMUL_INT8": "i8mm",
    "SVE": "sve",
    "SVE2": "sve2",
}

# ggml's ARM variants under GGML_CPU_ALL_VARIANTS (ggml/src/CMakeLists.txt), tag -> features. A build ships
# those its compiler can compile (ARM_VARIANT_MARCH): GCC 12, Debian 12's, has no -march=armv9.2-a nor +sme,
# so a generic-arm64 build made with it lacks the two SME variants; the chooser only picks among the files a
# build has, and an SME CPU takes armv8.6_2 there.
ARM_VARIANTS: dict[str, tuple[str, ...]] = {
    "armv8.0_1": (),
    "armv8.2_1": ("DOTPROD",),
    "armv8.2_2": ("DOTPROD", "FP16_VECTOR_ARITHMETIC"),
    "armv8.2_3": ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE"),
    "armv8.6_1": ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE", "MATMUL_INT8"),
    "armv8.6_2": ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE", "MATMUL_INT8", "SVE2"),
    "armv9.2_1": ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE", "MATMUL_INT8", "SME"),
    "armv9.2_2": ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE", "MATMUL_INT8", "SVE2", "SME"),
}

# The -march each ARM variant compiles with (ggml-cpu/CMakeLists.txt): a compiler that refuses one cannot
# build that variant, and build_llama_wheel leaves it out rather than fail the whole build.
ARM_VARIANT_MARCH: dict[str, str] = {
    "armv8.0_1": "armv8-a",
    "armv8.2_1": "armv8.2-a+dotprod",
    "armv8.2_2": "armv8.2-a+dotprod+fp16",
    "armv8.2_3": "armv8.2-a+dotprod+fp16+sve",
    "armv8.6_1": "armv8.6-a+dotprod+fp16+sve+i8mm",
    "armv8.6_2": "armv8.6-a+dotprod+fp16+sve+i8mm+sve2",
    "armv9.2_1": "armv9.2-a+dotprod+fp16+sve+i8mm+sme",
    "armv9.2_2": "armv9.2-a+dotprod+fp16+sve+i8mm+sve2+sme",
}

# Cross-compiling for another architecture (an arm64 image built on an amd64 machine): Debian's cross
# compilers, by GNU triplet (<triplet>-gcc, <triplet>-g++, the target's libraries under /usr/<triplet>),
# and the Debian packages that hold them.
CROSS_TOOLCHAINS: dict[str, tuple[str, str]] = {
    "aarch64": ("aarch64-linux-gnu", "gcc-aarch64-linux-gnu g++-aarch64-linux-gnu"),
    "x86_64": ("x86_64-linux-gnu", "gcc-x86-64-linux-gnu g++-x86-64-linux-gnu"),
}

_ALL_VARIANTS = ("-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON")

# Fixed targets: (arch, extra CMake args, dynamic, description).
# What QEMU 7.2's TCG emulates of ggml's x86 features (-cpu max).
TCG_X86_FEATURES = ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2")

FIXED_TARGETS: dict[str, tuple[str, tuple[str, ...], bool, str]] = {
    "generic-amd64": ("x86_64", _ALL_VARIANTS, True, "every x86-64 CPU: all of ggml's CPU variants, chosen at load"),
    "generic-arm64": ("aarch64", _ALL_VARIANTS, True, "every arm64 CPU: all of ggml's CPU variants, chosen at load"),
    # The image's tests boot it under QEMU's software CPU (TCG, -cpu max, QEMU 7.2), which runs AVX2 but no
    # AVX-512 or AVX-VNNI: a host build from a machine with those would die there with SIGILL.
    "qemu-tcg-amd64": (
        "x86_64",
        tuple(f"-DGGML_{feature}={'ON' if feature in TCG_X86_FEATURES else 'OFF'}" for feature in X86_FEATURE_FLAGS),
        False,
        "QEMU's software CPU (TCG): SSE4.2 AVX F16C FMA AVX2 BMI2, no AVX-512",
    ),
    "rk3588": (
        "aarch64",
        (
            "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16",
            "-DCMAKE_C_FLAGS=-mtune=cortex-a76.cortex-a55",
            "-DCMAKE_CXX_FLAGS=-mtune=cortex-a76.cortex-a55",
        ),
        False,
        "RK3588 (Orange Pi 5): Cortex-A76/A55, Armv8.2-A + dotprod + fp16",
    ),
    "jetson-orin": (
        "aarch64",
        (
            "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16",
            "-DCMAKE_C_FLAGS=-mtune=cortex-a78ae",
            "-DCMAKE_CXX_FLAGS=-mtune=cortex-a78ae",
        ),
        False,
        "Jetson Orin: Cortex-A78AE, Armv8.2-A + dotprod + fp16",
    ),
}

# How ggml ranks its variants (ggml-cpu/arch/*/cpu-feats.cpp): the same weights, so that where the OS
# refuses nothing our choice is ggml's own.
X86_FEATURE_WEIGHT: dict[str, int] = {
    "FMA": 1,
    "F16C": 1 << 1,
    "SSE42": 1 << 2,
    "BMI2": 1 << 3,
    "AVX": 1 << 4,
    "AVX2": 1 << 5,
    "AVX_VNNI": 1 << 6,
    "AVX512": 1 << 7,
    "AVX512_VBMI": 1 << 8,
    "AVX512_BF16": 1 << 9,
    "AVX512_VNNI": 1 << 10,
    "AMX_INT8": 1 << 11,
}
ARM_FEATURE_WEIGHT: dict[str, int] = {
    "DOTPROD": 1 << 1,
    "FP16_VECTOR_ARITHMETIC": 1 << 2,
    "SVE": 1 << 3,
    "MATMUL_INT8": 1 << 4,
    "SVE2": 1 << 5,
    "SME": 1 << 6,
}
