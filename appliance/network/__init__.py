"""The unit's network: the access point (hostapd, dnsmasq, nftables), the mesh link, the broker's listeners."""
