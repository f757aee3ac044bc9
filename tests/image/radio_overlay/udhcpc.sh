#!/bin/sh
# busybox udhcpc's script for the test phone: its address, route and DNS server from the unit's DHCP.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; done
    : > /etc/netns/phone/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/netns/phone/resolv.conf; done
    echo "$ip $router $dns" > /run/iplm-test-phone-lease ;;
esac
