"""`iw list` output of a few radios, as iw prints it (tab-indented, combinations wrapped onto a second line)."""

# Atheros ath9k: up to 8 interfaces of types AP and mesh point together.
ATH9K = """\
Wiphy phy0
	wiphy index: 0
	max # scan SSIDs: 4
	max scan IEs length: 2257 bytes
	Retry short limit: 7
	Retry long limit: 4
	Coverage class: 0 (up to 0m)
	Device supports RSN-IBSS.
	Device supports AP-side u-APSD.
	Supported Ciphers:
		* WEP40 (00-0f-ac:1)
		* TKIP (00-0f-ac:2)
		* CCMP-128 (00-0f-ac:4)
	Available Antennas: TX 0x3 RX 0x3
	Supported interface modes:
		 * IBSS
		 * managed
		 * AP
		 * AP/VLAN
		 * monitor
		 * mesh point
		 * P2P-client
		 * P2P-GO
		 * outside context of a BSS
	Band 1:
		Capabilities: 0x11ef
			RX LDPC
			HT20/HT40
		Frequencies:
			* 2412 MHz [1] (20.0 dBm)
			* 2437 MHz [6] (20.0 dBm)
			* 2484 MHz [14] (disabled)
	Supported commands:
		 * new_interface
		 * set_interface
		 * join_mesh
	software interface modes (can always be added):
		 * AP/VLAN
		 * monitor
	valid interface combinations:
		 * #{ managed } <= 2048, #{ AP, mesh point } <= 8, #{ P2P-client, P2P-GO } <= 1,
		   total <= 2048, #channels <= 1, STA/AP BI must match, radar detect widths: { 20 MHz (no HT), 20 MHz, 40 MHz }

	HT Capability overrides:
		 * MCS: ff ff ff ff ff ff ff ff ff ff
		 * maximum A-MSDU length
	Device supports TX status socket option.
	Device supports HT-IBSS.
"""

# A Broadcom FullMAC chip (Raspberry Pi and many boards): an AP, but no mesh point at all.
BRCMFMAC = """\
Wiphy phy0
	wiphy index: 0
	max # scan SSIDs: 10
	Supported Ciphers:
		* WEP40 (00-0f-ac:1)
		* CCMP-128 (00-0f-ac:4)
	Available Antennas: TX 0 RX 0
	Supported interface modes:
		 * IBSS
		 * managed
		 * AP
		 * P2P-client
		 * P2P-GO
		 * P2P-device
	Band 1:
		Capabilities: 0x1062
		Frequencies:
			* 2412 MHz [1] (20.0 dBm)
	Supported commands:
		 * new_interface
		 * set_interface
	software interface modes (can always be added):
	valid interface combinations:
		 * #{ managed } <= 1, #{ P2P-device } <= 1, #{ P2P-client, P2P-GO } <= 1,
		   total <= 3, #channels <= 2
		 * #{ managed } <= 1, #{ AP } <= 1, #{ P2P-client } <= 1, #{ P2P-device } <= 1,
		   total <= 4, #channels <= 1
	Device supports scan flush.
"""

# Mesh point supported, but only instead of the AP: one interface of either type.
EITHER = """\
Wiphy phy1
	Supported interface modes:
		 * managed
		 * AP
		 * AP/VLAN
		 * monitor
		 * mesh point
	valid interface combinations:
		 * #{ AP, mesh point } <= 1, #{ managed } <= 1,
		   total <= 2, #channels <= 1
"""

# AP and mesh point in groups of their own.
SEPARATE = """\
Wiphy phy2
	Supported interface modes:
		 * managed
		 * AP
		 * mesh point
	valid interface combinations:
		 * #{ managed } <= 1, #{ AP } <= 1, #{ mesh point } <= 1,
		   total <= 2, #channels <= 1
"""

# One interface at a time.
SINGLE = """\
Wiphy phy3
	Supported interface modes:
		 * managed
		 * AP
		 * mesh point
	interface combinations are not supported
	Device supports scan flush.
"""
