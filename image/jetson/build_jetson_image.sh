#!/usr/bin/env bash
# Build the Jetson Orin root file system of an iplm unit from NVIDIA's Jetson Linux (L4T r36, JetPack 6),
# ready to flash: NVIDIA's BSP and sample root (Ubuntu 22.04), its binaries applied, a default user made
# so that the first boot asks nothing, then the iplm package, the CUDA toolkit and MLC LLM installed in it.
#
#   sudo image/jetson/build_jetson_image.sh \
#       --bsp Jetson_Linux_R36.4.4_aarch64.tbz2 \
#       --sample-rootfs Tegra_Linux_Sample-Root-Filesystem_R36.4.4_aarch64.tbz2 \
#       --wheels DIR --country DE [--deb iplm_0.1.0_arm64.deb] [--passphrase-file FILE] [--work DIR]
#
# The two tarballs come from NVIDIA's Jetson Linux page (its license: download them yourself). DIR holds
# MLC LLM's and TVM's wheels for JetPack 6 with their dependencies and pip (see the README). Without --deb
# the package is built here for the Jetson: arm64, Python 3.10, Ubuntu 22.04's glibc 2.35. The result is
# WORK/Linux_for_Tegra (default build/jetson), and the script prints the flash commands.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# The user l4t_create_default_user.sh makes (its password random and then locked: the unit has no login).
ADMIN_USER=iplmadmin

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() {
	printf 'build_jetson_image.sh: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

parse_arguments() {
	bsp="" sample_rootfs="" deb="" wheels="" country="" passphrase_file="" work=$root/build/jetson
	while [ $# -gt 0 ]; do
		case $1 in
		--bsp) bsp=${2:?--bsp needs a path}; shift 2 ;;
		--sample-rootfs) sample_rootfs=${2:?--sample-rootfs needs a path}; shift 2 ;;
		--deb) deb=${2:?--deb needs a path}; shift 2 ;;
		--wheels) wheels=${2:?--wheels needs a directory}; shift 2 ;;
		--country) country=${2:?--country needs two letters}; shift 2 ;;
		--passphrase-file) passphrase_file=${2:?--passphrase-file needs a path}; shift 2 ;;
		--work) work=${2:?--work needs a directory}; shift 2 ;;
		-h | --help) usage 0 ;;
		*) printf 'build_jetson_image.sh: unknown argument %s\n\n' "$1" >&2; usage 2 ;;
		esac
	done
}

check_tarball() {
	local path=$1 option=$2 pattern=$3 example=$4
	[ -n "$path" ] || fail "$option is required (from NVIDIA's Jetson Linux r36 page)"
	[ -f "$path" ] || fail "$option $path: no such file"
	# JetPack 5 (r35) is Ubuntu 20.04 with Python 3.8: not a root this package is built for.
	[[ $(basename "$path") =~ $pattern ]] ||
		fail "$option $(basename "$path") is not a Jetson Linux r36 (JetPack 6) download: expected a name like $example"
}

check_inputs() {
	[ "$(id -u)" = 0 ] || fail "run as root (sudo): NVIDIA's scripts and the chroot need it"
	check_tarball "$bsp" --bsp '^Jetson_Linux_[Rr]36\.[0-9.]+_aarch64\.tbz2$' Jetson_Linux_R36.4.4_aarch64.tbz2
	check_tarball "$sample_rootfs" --sample-rootfs '^Tegra_Linux_Sample-Root-Filesystem_[Rr]36\.[0-9.]+_aarch64\.tbz2$' \
		Tegra_Linux_Sample-Root-Filesystem_R36.4.4_aarch64.tbz2
	[ -n "$wheels" ] || fail "--wheels is required: MLC LLM's and TVM's wheels for JetPack 6 (see the README)"
	[ -d "$wheels" ] || fail "--wheels $wheels: no such directory"
	compgen -G "$wheels/mlc_llm*.whl" >/dev/null || fail "--wheels $wheels has no mlc_llm wheel"
	compgen -G "$wheels/pip-*.whl" >/dev/null || fail "--wheels $wheels has no pip wheel (pip download pip)"
	country=${country^^}
	[[ $country =~ ^[A-Z]{2}$ ]] ||
		fail "--country is required: the two-letter code of the country where the unit is used (its radio's rules)"
	if [ -n "$deb" ] && [ ! -f "$deb" ]; then fail "--deb $deb: no such file"; fi
	if [ -n "$passphrase_file" ] && [ ! -f "$passphrase_file" ]; then
		fail "--passphrase-file $passphrase_file: no such file"
	fi
	if [ "$(uname -m)" != aarch64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
		fail "this machine cannot run arm64 programs (apply_binaries.sh and the chroot need them): apt install qemu-user-static binfmt-support"
	fi
	local tool
	for tool in tar bzip2 dpkg-deb chroot usermod openssl; do
		command -v "$tool" >/dev/null || fail "$tool is missing (Debian/Ubuntu: apt install $tool)"
	done
	# lbzip2 unpacks the tarballs on every core; bzip2 on one.
	unpack=(-j)
	if command -v lbzip2 >/dev/null; then unpack=(--use-compress-program=lbzip2); fi
	[ ! -e "$work/Linux_for_Tegra" ] ||
		fail "$work/Linux_for_Tegra already exists: remove it (or pass another --work) to start from NVIDIA's files"
}

build_package() {
	[ -z "$deb" ] || return 0
	local python=$root/.venv/bin/python llama_wheel
	[ -x "$python" ] || fail "no --deb, and $root/.venv is missing to build one: run scripts/dev setup first"
	say "building llama.cpp for Jetson Orin (cross-compiled; once, then cached)"
	llama_wheel=$(cd "$root" && "$python" -m appliance.engine.llama_cpp.build_llama_wheel --target jetson-orin | tail -n 1) ||
		fail "llama.cpp could not be built for jetson-orin (see above)"
	say "building the package for the Jetson: arm64, Python 3.10, glibc 2.35 (Ubuntu 22.04)"
	deb=$(cd "$root" && "$python" - "$llama_wheel" "$work" <<-'EOF'
		import sys
		from pathlib import Path

		from image.build_deb import build_deb

		package = build_deb(
		    Path.cwd(),
		    Path(sys.argv[1]),
		    Path(sys.argv[2]),
		    target_python="3.10",  # JetPack 6 is Ubuntu 22.04, whose python3 is 3.10
		    target_glibc=(2, 35),
		    progress=lambda message: print(message, file=sys.stderr, flush=True),
		)
		print(package.path)
	EOF
	) || fail "the package could not be built (see above)"
}

extract_l4t() {
	mkdir -p "$work"
	say "extracting $(basename "$bsp") into $work"
	tar -x "${unpack[@]}" -f "$bsp" -C "$work"
	l4t=$work/Linux_for_Tegra
	[ -x "$l4t/apply_binaries.sh" ] || fail "$(basename "$bsp") has no Linux_for_Tegra/apply_binaries.sh: not the Jetson Linux BSP?"
	say "extracting $(basename "$sample_rootfs") into $l4t/rootfs (a few minutes)"
	# p: the owners and modes as NVIDIA made them (this is the unit's root).
	tar -x -p "${unpack[@]}" -f "$sample_rootfs" -C "$l4t/rootfs"
}

apply_binaries() {
	say "apply_binaries.sh: NVIDIA's drivers, firmware and kernel into the root (a few minutes under qemu)"
	(cd "$l4t" && ./apply_binaries.sh) || fail "apply_binaries.sh failed (see above)"
	local release
	release=$(head -n 1 "$l4t/rootfs/etc/nv_tegra_release" 2>/dev/null || true)
	[[ $release =~ R36 ]] || fail "the root's /etc/nv_tegra_release says '$release', not R36 (JetPack 6)"
}

create_default_user() {
	say "making the default user $ADMIN_USER, so that the first boot runs no setup wizard (oem-config)"
	local password
	password=$(openssl rand -base64 24)
	(cd "$l4t" && ./tools/l4t_create_default_user.sh --username "$ADMIN_USER" --password "$password" \
		--hostname iplm --accept-license) || fail "tools/l4t_create_default_user.sh failed (see above)"
	# Its password was random and is locked now: like the other images, the unit has no login.
	usermod --root "$l4t/rootfs" --lock "$ADMIN_USER"
}

install_unit() {
	local options=(--deb "$deb" --wheels "$wheels" --country "$country")
	[ -z "$passphrase_file" ] || options+=(--passphrase-file "$passphrase_file")
	"$here/install_into_rootfs.sh" "$l4t/rootfs" "${options[@]}"
}

print_flash_commands() {
	cat <<-EOF

		The root file system is ready in $l4t/rootfs. Once on the flashing machine (Ubuntu 22.04 x86-64):
		  cd $l4t && sudo ./tools/l4t_flash_prerequisites.sh
		Put the Jetson in recovery mode, connect its USB-C port to this machine, then in $l4t:

		Jetson Orin Nano / Orin NX developer kit, NVMe SSD:
		  sudo ./tools/kernel_flash/l4t_initrd_flash.sh --external-device nvme0n1p1 \\
		    -c tools/kernel_flash/flash_l4t_t234_nvme.xml -p "-c bootloader/generic/cfg/flash_t234_qspi.xml" \\
		    --showlogs --network usb0 jetson-orin-nano-devkit internal
		Jetson Orin Nano developer kit, microSD card: the same with --external-device mmcblk0p1
		JetPack 6.2's "super" power modes (Orin Nano / NX): the same with jetson-orin-nano-devkit-super

		Jetson AGX Orin developer kit, its eMMC:
		  sudo ./flash.sh jetson-agx-orin-devkit internal
		Jetson AGX Orin developer kit, NVMe SSD:
		  sudo ./tools/kernel_flash/l4t_initrd_flash.sh --external-device nvme0n1p1 \\
		    -c tools/kernel_flash/flash_l4t_t234_nvme.xml --showlogs --network usb0 jetson-agx-orin-devkit external
	EOF
}

main() {
	parse_arguments "$@"
	check_inputs
	build_package
	extract_l4t
	apply_binaries
	create_default_user
	install_unit
	print_flash_commands
}

main "$@"
