#!/usr/bin/env bash
# Download MLC LLM and TVM for JetPack 6, with every wheel they depend on and pip itself, into a directory
# for build_jetson_image.sh --wheels (its chroot installs offline). Runs on any machine with pip and the
# internet; the wheels are picked for the unit: arm64, CPython 3.10, Ubuntu 22.04's glibc 2.35.
#
#   image/jetson/download_mlc_wheels.sh DIR [--index URL] [--mlc SPEC] [--tvm SPEC]
#
# The builds for Jetson's CUDA are NVIDIA's Jetson AI Lab index for JetPack 6 / CUDA 12.6 (made by
# jetson-containers from MLC's sources; MLC publishes no CUDA wheels for arm64 itself). SPEC pins a release,
# e.g. --mlc mlc-llm==0.20.0 --tvm tvm==0.20.0; without one, the newest the index has.
set -euo pipefail

INDEX=https://pypi.jetson-ai-lab.io/jp6/cu126
PYTHON_VERSION=3.10
GLIBC_MINOR=35 # Ubuntu 22.04: glibc 2.35

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() {
	printf 'download_mlc_wheels.sh: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

parse_arguments() {
	dest="" index=$INDEX mlc=mlc-llm tvm=tvm
	while [ $# -gt 0 ]; do
		case $1 in
		--index) index=${2:?--index needs a URL}; shift 2 ;;
		--mlc) mlc=${2:?--mlc needs a requirement}; shift 2 ;;
		--tvm) tvm=${2:?--tvm needs a requirement}; shift 2 ;;
		-h | --help) usage 0 ;;
		-*) printf 'download_mlc_wheels.sh: unknown option %s\n\n' "$1" >&2; usage 2 ;;
		*) [ -z "$dest" ] || fail "one DIR only (got $dest and $1)"; dest=$1; shift ;;
		esac
	done
	[ -n "$dest" ] || usage 2
}

plan_platforms() {
	# pip does not widen a manylinux_2_N tag to the older ones a glibc 2.35 system also runs: list them all.
	platforms=(--platform linux_aarch64 --platform manylinux2014_aarch64)
	local minor
	for minor in $(seq 17 "$GLIBC_MINOR"); do
		platforms+=(--platform "manylinux_2_${minor}_aarch64")
	done
}

main() {
	parse_arguments "$@"
	local pip
	pip=$(command -v pip3 || command -v pip || true)
	[ -n "$pip" ] || fail "pip is needed (Debian/Ubuntu: apt install python3-pip)"
	plan_platforms
	mkdir -p "$dest"
	say "downloading $mlc, $tvm and pip for cp${PYTHON_VERSION/./} on aarch64 from $index (and PyPI) into $dest"
	"$pip" download --disable-pip-version-check --dest "$dest" --only-binary=:all: \
		--python-version "$PYTHON_VERSION" --implementation cp --abi "cp${PYTHON_VERSION/./}" --abi abi3 --abi none \
		"${platforms[@]}" --index-url "$index" --extra-index-url https://pypi.org/simple \
		"$mlc" "$tvm" pip || fail "pip download failed (see above): is $index reachable, and has it these releases?"
	say "$(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels in $dest"
}

main "$@"
