#!/usr/bin/env bash
# Build the Orange Pi 5 image of an iplm unit with Armbian's build framework (github.com/armbian/build):
# Armbian's kernel, boot loader and Debian 12 root, plus the iplm package installed by customize-image.sh.
#
#   image/armbian/build_armbian_image.sh --deb build/image/iplm_0.1.0_arm64.deb --country DE \
#       [--passphrase-file FILE] [--armbian DIR] [-- compile.sh options, e.g. BRANCH=current]
#
# --armbian names a checkout of armbian/build to use; without it the pinned release below is cloned into
# build/armbian/build (once). The framework wants root (it asks for sudo) or Docker, and about 50 GB free.
set -euo pipefail

# The last Armbian release that supports Debian 12 (bookworm) without EXPERT=yes; config-iplm.conf sets
# EXPERT=yes so that a newer checkout builds bookworm too.
ARMBIAN_REPO=https://github.com/armbian/build
ARMBIAN_TAG=v25.8.2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() {
	printf 'build_armbian_image.sh: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

parse_arguments() {
	deb="" country="" passphrase_file="" armbian="" compile_args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--deb) deb=${2:?--deb needs a path}; shift 2 ;;
		--country) country=${2:?--country needs two letters}; shift 2 ;;
		--passphrase-file) passphrase_file=${2:?--passphrase-file needs a path}; shift 2 ;;
		--armbian) armbian=${2:?--armbian needs a directory}; shift 2 ;;
		-h | --help) usage 0 ;;
		--) shift; compile_args=("$@"); break ;;
		*) printf 'build_armbian_image.sh: unknown argument %s\n\n' "$1" >&2; usage 2 ;;
		esac
	done
}

check_passphrase() {
	# Byte ranges mean ASCII only in the C locale.
	local LC_ALL=C passphrase printable='^[ -~]{8,63}$'
	passphrase=$(cat "$1")
	[[ $passphrase =~ $printable ]]
}

check_inputs() {
	[ -n "$deb" ] || fail "--deb is required: the arm64 package (scripts/dev image --arch arm64 builds it)"
	[ -f "$deb" ] || fail "--deb $deb: no such file"
	command -v dpkg-deb >/dev/null || fail "dpkg-deb is needed to read the package (Debian: apt install dpkg)"
	local package arch depends python311='(^|[ ,])python3[.]11([ ,(]|$)'
	package=$(dpkg-deb --field "$deb" Package 2>/dev/null) || fail "--deb $deb is not a Debian package"
	[ "$package" = iplm ] || fail "--deb $deb is the package '$package', not iplm"
	arch=$(dpkg-deb --field "$deb" Architecture)
	[ "$arch" = arm64 ] || fail "--deb $deb is for $arch; the Orange Pi 5 needs the arm64 package"
	# Armbian's root is Debian 12: the package's virtualenv must be the one built for its python3.11.
	depends=$(dpkg-deb --field "$deb" Depends)
	[[ $depends =~ $python311 ]] ||
		fail "--deb $deb does not depend on python3.11 (Debian 12's Python): build it for Python 3.11"
	country=${country^^}
	[[ $country =~ ^[A-Z]{2}$ ]] ||
		fail "--country is required: the two-letter code of the country where the unit is used (its radio's rules)"
	if [ -n "$passphrase_file" ]; then
		[ -f "$passphrase_file" ] || fail "--passphrase-file $passphrase_file: no such file"
		check_passphrase "$passphrase_file" ||
			fail "--passphrase-file must hold 8 to 63 printable ASCII characters (WPA3-SAE and WPA2)"
	fi
	if [ -n "$armbian" ] && ! { [ -x "$armbian/compile.sh" ] && [ -d "$armbian/lib" ]; }; then
		fail "--armbian $armbian is not a checkout of armbian/build (no compile.sh and lib/)"
	fi
}

fetch_armbian() {
	[ -n "$armbian" ] && return 0
	armbian=$root/build/armbian/build
	if [ -x "$armbian/compile.sh" ]; then
		say "using the Armbian checkout in $armbian"
		return 0
	fi
	command -v git >/dev/null || fail "git is needed to clone $ARMBIAN_REPO (or pass --armbian DIR)"
	say "cloning Armbian's build framework $ARMBIAN_TAG into $armbian"
	mkdir -p "$(dirname "$armbian")"
	git clone --quiet --depth 1 --branch "$ARMBIAN_TAG" "$ARMBIAN_REPO" "$armbian" ||
		fail "could not clone $ARMBIAN_REPO at $ARMBIAN_TAG (no network? pass --armbian DIR)"
}

stage_userpatches() {
	local userpatches=$armbian/userpatches overlay=$armbian/userpatches/overlay/iplm
	say "copying config-iplm.conf, customize-image.sh and the package into $userpatches"
	mkdir -p "$userpatches"
	install -m 0644 "$here/userpatches/config-iplm.conf" "$userpatches/config-iplm.conf"
	install -m 0755 "$here/userpatches/customize-image.sh" "$userpatches/customize-image.sh"
	# Only this build's files in the overlay: customize-image.sh refuses two packages.
	rm -rf "$overlay"
	mkdir -p "$overlay"
	cp "$deb" "$overlay/"
	printf 'IPLM_WIFI_COUNTRY=%s\n' "$country" >"$overlay/image.env"
	if [ -n "$passphrase_file" ]; then
		install -m 0600 "$passphrase_file" "$overlay/wifi-passphrase"
	fi
}

run_compile() {
	say "running ./compile.sh iplm ${compile_args[*]} (Armbian prints its own progress; an hour or more)"
	(cd "$armbian" && ./compile.sh iplm "${compile_args[@]}") || fail "Armbian's build failed (its log is in $armbian/output/logs)"
	local image
	image=$(find "$armbian/output/images" -maxdepth 1 -name '*_bookworm_*.img' -newer "$armbian/userpatches/overlay/iplm/image.env" 2>/dev/null | head -n 1)
	[ -n "$image" ] || fail "compile.sh finished but no new bookworm image is in $armbian/output/images"
	say "built $image"
	printf 'Write it to a card (or use Etcher):\n  dd if=%s of=/dev/sdX bs=4M conv=fsync status=progress\n' "$image"
}

main() {
	parse_arguments "$@"
	check_inputs
	fetch_armbian
	stage_userpatches
	run_compile
}

main "$@"
