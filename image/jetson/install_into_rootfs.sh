#!/usr/bin/env bash
# Install the iplm package, the CUDA toolkit and MLC LLM into a unit's root file system (a directory), in a
# chroot: arm64 under qemu-user on an x86-64 machine. build_jetson_image.sh calls it on L4T's rootfs; it
# works on any Debian-family root whose Python matches the package.
#
#   image/jetson/install_into_rootfs.sh ROOTFS --deb iplm_0.1.0_arm64.deb --wheels DIR --country DE \
#       [--passphrase-file FILE] [--no-cuda]
#
# apt in the chroot needs the root's own apt sources (Ubuntu's ports mirror, NVIDIA's Jetson repository);
# pip needs nothing: DIR holds every wheel (MLC LLM, TVM, their dependencies, pip itself; see the README).
# --no-cuda leaves out the CUDA toolkit (for a root without NVIDIA's apt source).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() {
	printf 'install_into_rootfs.sh: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

parse_arguments() {
	rootfs="" deb="" wheels="" country="" passphrase_file="" cuda_flag=()
	while [ $# -gt 0 ]; do
		case $1 in
		--deb) deb=${2:?--deb needs a path}; shift 2 ;;
		--wheels) wheels=${2:?--wheels needs a directory}; shift 2 ;;
		--country) country=${2:?--country needs two letters}; shift 2 ;;
		--passphrase-file) passphrase_file=${2:?--passphrase-file needs a path}; shift 2 ;;
		--no-cuda) cuda_flag=(--no-cuda); shift ;;
		-h | --help) usage 0 ;;
		-*) printf 'install_into_rootfs.sh: unknown option %s\n\n' "$1" >&2; usage 2 ;;
		*) [ -z "$rootfs" ] || fail "one ROOTFS only (got $rootfs and $1)"; rootfs=$1; shift ;;
		esac
	done
}

check_passphrase() {
	local passphrase printable='^[ -~]{8,63}$'
	passphrase=$(cat "$1")
	[[ $passphrase =~ $printable ]]
}

check_inputs() {
	[ "$(id -u)" = 0 ] || fail "run as root (chroot and mounts)"
	[ -n "$rootfs" ] || fail "ROOTFS is required: the root file system directory (Linux_for_Tegra/rootfs)"
	if [ ! -d "$rootfs/etc" ] || [ ! -d "$rootfs/usr/bin" ]; then
		fail "$rootfs does not look like a root file system (no etc/, usr/bin/)"
	fi
	rootfs=$(cd "$rootfs" && pwd)
	[ "$rootfs" != / ] || fail "ROOTFS is /: give the unit's root file system, not this machine's"
	[ -n "$deb" ] || fail "--deb is required: the iplm package built for the root's architecture and Python"
	[ -f "$deb" ] || fail "--deb $deb: no such file"
	local package
	package=$(dpkg-deb --field "$deb" Package 2>/dev/null) || fail "--deb $deb is not a Debian package"
	[ "$package" = iplm ] || fail "--deb $deb is the package '$package', not iplm"
	[ -n "$wheels" ] || fail "--wheels is required: the directory of pre-downloaded wheels (see the README)"
	[ -d "$wheels" ] || fail "--wheels $wheels: no such directory"
	country=${country^^}
	[[ $country =~ ^[A-Z]{2}$ ]] ||
		fail "--country is required: the two-letter code of the country where the unit is used (its radio's rules)"
	if [ -n "$passphrase_file" ]; then
		[ -f "$passphrase_file" ] || fail "--passphrase-file $passphrase_file: no such file"
		check_passphrase "$passphrase_file" ||
			fail "--passphrase-file must hold 8 to 63 printable ASCII characters (WPA3-SAE and WPA2)"
	fi
	check_match
}

check_match() {
	# The package, the root and the wheels must agree on the architecture and the Python version: apt would
	# refuse the first, but a wrong Python only shows as a broken unit.
	local deb_arch root_arch python wheel tag machine
	deb_arch=$(dpkg-deb --field "$deb" Architecture)
	root_arch=$(chroot "$rootfs" dpkg --print-architecture 2>/dev/null) ||
		fail "cannot run programs in $rootfs (an arm64 root on this machine needs qemu-user-static and binfmt-support)"
	[ "$deb_arch" = "$root_arch" ] || fail "--deb is for $deb_arch, the root file system is $root_arch"
	python=$(dpkg-deb --field "$deb" Depends | grep -oE 'python3\.[0-9]+' | head -n 1)
	[ -n "$python" ] || fail "--deb $deb does not say which python3.X it needs (Depends)"
	# A root with another Python (L4T's Ubuntu 22.04 has 3.10) cannot run the package; a root with none gets
	# the package's own from apt, or apt says why not.
	local have=() candidate
	for candidate in "$rootfs"/usr/bin/python3.[0-9] "$rootfs"/usr/bin/python3.[0-9][0-9]; do
		if [ -x "$candidate" ]; then have+=("$(basename "$candidate")"); fi
	done
	if [ ${#have[@]} -gt 0 ] && [ ! -x "$rootfs/usr/bin/$python" ]; then
		fail "the package is built for $python; $rootfs has ${have[*]}: build the package for the root's Python"
	fi
	tag=cp${python#python}
	tag=${tag/./}
	machine=$([ "$root_arch" = arm64 ] && echo aarch64 || echo x86_64)
	for wheel in "$wheels"/*.whl; do
		[ -e "$wheel" ] || fail "no wheels in $wheels"
		case $(basename "$wheel") in
		*-py3-none-any.whl | *-py2.py3-none-any.whl | *-py3-none-*"$machine"*.whl | *-"$tag"-*"$machine"*.whl | *-abi3-*"$machine"*.whl) ;;
		*) fail "$(basename "$wheel") is not for $tag on $machine (download the wheels for the unit's Python)" ;;
		esac
	done
}

mount_chroot() {
	# Undone by unmount_chroot (the EXIT trap) whatever happens.
	mounted=()
	local target
	for target in proc sys dev dev/pts; do
		mkdir -p "$rootfs/$target"
	done
	mount -t proc proc "$rootfs/proc" && mounted=("$rootfs/proc" "${mounted[@]}")
	mount -t sysfs sysfs "$rootfs/sys" && mounted=("$rootfs/sys" "${mounted[@]}")
	mount --bind /dev "$rootfs/dev" && mounted=("$rootfs/dev" "${mounted[@]}")
	mount -t devpts devpts "$rootfs/dev/pts" && mounted=("$rootfs/dev/pts" "${mounted[@]}")
}

unmount_chroot() {
	local target
	for target in "${mounted[@]}"; do
		umount "$target" || umount --lazy "$target" || true
	done
	mounted=()
}

stage_files() {
	# The root's own resolver setup (Ubuntu: a link to systemd-resolved's stub) is put back afterwards.
	resolv_saved=$(mktemp -d)
	if [ -e "$rootfs/etc/resolv.conf" ] || [ -L "$rootfs/etc/resolv.conf" ]; then
		mv "$rootfs/etc/resolv.conf" "$resolv_saved/"
	fi
	cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
	# No service starts inside the chroot (invoke-rc.d asks this first).
	if [ ! -e "$rootfs/usr/sbin/policy-rc.d" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
		chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
		added_policy=yes
	fi
	stage=$rootfs/tmp/iplm-install
	rm -rf "$stage"
	mkdir -p "$stage/wheels"
	cp "$deb" "$stage/"
	cp "$wheels"/*.whl "$stage/wheels/"
	install -m 0755 "$here/install_inside_chroot.sh" "$stage/install_inside_chroot.sh"
	passphrase_args=()
	if [ -n "$passphrase_file" ]; then
		install -m 0600 "$passphrase_file" "$stage/wifi-passphrase"
		passphrase_args=(--passphrase-file /tmp/iplm-install/wifi-passphrase)
	fi
}

restore_files() {
	[ -n "${stage:-}" ] && rm -rf "$stage"
	if [ "${added_policy:-}" = yes ]; then rm -f "$rootfs/usr/sbin/policy-rc.d"; fi
	if [ -n "${resolv_saved:-}" ]; then
		rm -f "$rootfs/etc/resolv.conf"
		if [ -e "$resolv_saved/resolv.conf" ] || [ -L "$resolv_saved/resolv.conf" ]; then
			mv "$resolv_saved/resolv.conf" "$rootfs/etc/resolv.conf"
		fi
		rmdir "$resolv_saved"
	fi
}

clean_up() {
	unmount_chroot
	restore_files
}

main() {
	parse_arguments "$@"
	check_inputs
	mounted=()
	trap clean_up EXIT
	mount_chroot
	stage_files
	say "installing iplm$([ ${#cuda_flag[@]} -eq 0 ] && echo ", the CUDA toolkit") and MLC LLM into $rootfs (in a chroot; under qemu this takes a while)"
	chroot "$rootfs" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		/bin/bash /tmp/iplm-install/install_inside_chroot.sh --country "$country" "${passphrase_args[@]}" "${cuda_flag[@]}" ||
		fail "the install inside $rootfs failed (see above)"
	say "installed into $rootfs"
}

main "$@"
