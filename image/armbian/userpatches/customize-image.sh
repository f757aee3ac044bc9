#!/bin/bash
# Turns an Armbian image into an iplm unit. Armbian's build framework runs it inside the image's chroot
# (arm64, under qemu-user on an x86-64 build host), after the kernel and board packages, as
#   /tmp/customize-image.sh RELEASE LINUXFAMILY BOARD BUILD_DESKTOP [ARCH]
# with userpatches/overlay bind-mounted read-only at /tmp/overlay. build_armbian_image.sh puts there:
#   iplm/iplm_<version>_arm64.deb   the package (the same one the other images and Ansible install)
#   iplm/image.env                  IPLM_WIFI_COUNTRY=XX
#   iplm/wifi-passphrase            optional: WPA3-SAE + WPA2 with it, else Enhanced Open (OWE)
# Any error stops the build: Armbian fails the image when this script exits non-zero.
set -euo pipefail
# Byte ranges in the checks below mean ASCII; apt and dpkg print plain messages.
export LC_ALL=C

overlay=/tmp/overlay/iplm

say() { printf 'customize-image.sh (iplm): %s\n' "$*"; }
fail() {
	printf 'customize-image.sh (iplm): error: %s\n' "$*" >&2
	exit 1
}

check_arguments() {
	[ $# -ge 4 ] || fail "expected RELEASE LINUXFAMILY BOARD BUILD_DESKTOP as arguments (Armbian passes them), got $#"
	release=$1
	board=$3
	desktop=$4
	# The package's virtualenv runs on the image's own python3.11: Debian 12 is the release that has it.
	[ "$release" = bookworm ] || fail "RELEASE=$release: the package is built for Debian 12 (bookworm) and its python3.11"
	[ "$desktop" = no ] || fail "BUILD_DESKTOP=$desktop: the appliance is a command-line image (BUILD_DESKTOP=no)"
	if [ $# -ge 5 ] && [ "$5" != "$(dpkg --print-architecture)" ]; then
		fail "ARCH=$5 but the image's dpkg is $(dpkg --print-architecture)"
	fi
}

read_settings() {
	[ -d "$overlay" ] || fail "$overlay is missing: run image/armbian/build_armbian_image.sh, which puts the package there"
	local settings="$overlay/image.env"
	[ -f "$settings" ] || fail "$settings is missing (build_armbian_image.sh writes IPLM_WIFI_COUNTRY=XX into it)"
	# Read, not sourced: only the one line we know.
	country=$(sed -n 's/^IPLM_WIFI_COUNTRY=//p' "$settings")
	[[ $country =~ ^[A-Z]{2}$ ]] ||
		fail "IPLM_WIFI_COUNTRY in $settings is '$country': two capital letters, where the unit is used (e.g. DE)"
	passphrase_file=""
	if [ -e "$overlay/wifi-passphrase" ]; then
		passphrase_file="$overlay/wifi-passphrase"
		local passphrase printable='^[ -~]{8,63}$'
		passphrase=$(cat "$passphrase_file")
		[[ $passphrase =~ $printable ]] ||
			fail "$passphrase_file must hold 8 to 63 printable ASCII characters (WPA3-SAE and WPA2)"
	fi
	local debs=("$overlay"/iplm_*.deb)
	[ -f "${debs[0]}" ] || fail "no iplm_*.deb in $overlay"
	[ ${#debs[@]} -eq 1 ] || fail "more than one iplm_*.deb in $overlay: ${debs[*]}"
	deb=${debs[0]}
	local arch
	arch=$(dpkg-deb --field "$deb" Architecture) || fail "$deb is not a Debian package"
	[ "$arch" = "$(dpkg --print-architecture)" ] ||
		fail "$deb is for $arch; this image is $(dpkg --print-architecture) (build the arm64 package)"
}

install_package() {
	say "installing $(basename "$deb") and the Debian packages it needs (apt)"
	export DEBIAN_FRONTEND=noninteractive
	# Armbian has updated the lists before it calls us; a root without them gets them here.
	if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
		apt-get update -q
	fi
	apt-get install -y -q --no-install-recommends "$deb"
	apt-get clean
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

make_headless() {
	say "headless boot: no first-login wizard, no console autologin, root locked"
	# Armbian's first-login wizard (armbian-firstlogin, started from /etc/profile.d at a root login) runs
	# while this file exists: it asks for a root password and a user, which a unit never gets.
	rm -f /root/.not_logged_in_yet
	# CONSOLE_AUTOLOGIN=no in config-iplm.conf already; these are Armbian's autologin drop-ins if it was on.
	rm -f /etc/systemd/system/getty@.service.d/override.conf /etc/systemd/system/serial-getty@.service.d/override.conf
	# Armbian set ROOTPWD (1234 by default) at build time. Like the amd64 image, the unit has no login.
	passwd --delete root >/dev/null
	passwd --lock root >/dev/null
	# iplm-firstboot writes the admin PIN to /boot/efi/iplm-admin-pin.txt where that directory exists (the
	# amd64 image's FAT partition); here it is on the card's root partition, beside the console's copy.
	mkdir -p /boot/efi
}

check_units() {
	local unit state
	for unit in iplm-firstboot.service iplm-network.service iplm-hostapd.service iplm-dnsmasq.service \
		iplm-mosquitto.path iplm-mesh-link.path iplm.service; do
		state=$(systemctl is-enabled "$unit" 2>/dev/null || true)
		[ "$state" = enabled ] || fail "$unit is '$state' after the package's postinst, not enabled"
	done
}

main() {
	check_arguments "$@"
	read_settings
	say "turning the $board image ($release) into an iplm unit"
	install_package
	configure_wifi
	make_headless
	check_units
	say "done"
}

main "$@"
