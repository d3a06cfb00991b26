#!/bin/sh
# Captures real babeld 1.12.1 packets between two network namespaces joined by a veth,
# for the wire-layer fixtures (`*.cap`) and the fuzz seed corpus.
# Needs root, babeld, tcpdump, python3. Uses only 2001:db8::/32 and fe80:: addresses and
# namespaces it creates; removes them on exit.
# Usage: sh capture.sh [scenario...]   (default: all)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/babel-capture.XXXXXX)
A=b6cap-a-$$
B=b6cap-b-$$
# Fixed key material: tests verify the captured MACs with these same keys.
BLAKE_KEY=000102030405060708090a0b0c0d0e0f
SHA_KEY=101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f

cleanup() {
    for ns in $A $B; do
        if [ -f "$WORK/$ns.pid" ]; then kill "$(cat "$WORK/$ns.pid")" 2>/dev/null || true; fi
    done
    [ -n "${TCPDUMP:-}" ] && kill "$TCPDUMP" 2>/dev/null || true
    sleep 0.3
    ip netns del $A 2>/dev/null || true
    ip netns del $B 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

setup() {
    ip netns add $A
    ip netns add $B
    ip link add vb0 netns $A address 02:00:00:00:00:01 type veth peer name vb0 netns $B address 02:00:00:00:00:02
    for ns in $A $B; do
        ip -n $ns link set lo up
        ip -n $ns link add dum0 type veth peer name dum1; ip -n $ns link set dum1 up
        ip -n $ns link set dum0 up
        ip -n $ns link set vb0 up
    done
    # Wait for DAD on the link-local addresses.
    sleep 2.5
}

teardown() {
    for ns in $A $B; do
        if [ -f "$WORK/$ns.pid" ]; then kill "$(cat "$WORK/$ns.pid")" 2>/dev/null || true; rm -f "$WORK/$ns.pid"; fi
    done
    kill "$TCPDUMP" 2>/dev/null || true
    TCPDUMP=
    sleep 0.5
    ip netns del $A
    ip netns del $B
}

# run NAME SECONDS CONF_A CONF_B [ACTION_AT ACTION_CMD]
run() {
    name=$1 secs=$2 conf_a=$3 conf_b=$4
    printf '%s\n' "$conf_a" >"$WORK/a.conf"
    printf '%s\n' "$conf_b" >"$WORK/b.conf"
    ip netns exec $A tcpdump -q -n -i vb0 -s 0 -U -w "$WORK/$name.pcap" udp port 6696 2>/dev/null &
    TCPDUMP=$!
    sleep 0.5
    ip netns exec $A babeld -I "$WORK/$A.pid" -S "$WORK/a.state" -L "$WORK/a.log" -c "$WORK/a.conf" -D vb0
    ip netns exec $B babeld -I "$WORK/$B.pid" -S "$WORK/b.state" -L "$WORK/b.log" -c "$WORK/b.conf" -D vb0
    if [ $# -ge 6 ]; then
        sleep "$5"
        eval "$6"
        sleep $((secs - $5))
    else
        sleep "$secs"
    fi
    python3 "$HERE/pcap2cap.py" "$WORK/$name.pcap" "$HERE/$name.cap" \
        "$HERE/../../../fuzz/corpus/babel_packet" "$name"
}

COMMON='router-id 00:00:00:00:00:00:00:0a
redistribute local deny'

scenario_plain() {
    setup
    ip -n $A -6 route add 2001:db8:1::/48 dev dum0 proto static
    ip -n $A -6 route add 2001:db8:1:1::/64 dev dum0 proto static
    ip -n $A -6 route add 2001:db8:1:2::/64 dev dum0 proto static
    ip -n $A -6 route add 2001:db8:1::a/128 dev dum0 proto static
    ip -n $B -6 route add 2001:db8:2::/48 dev dum0 proto static
    run plain 9 "$COMMON
default hello-interval 1
redistribute ip 2001:db8:1::/48 le 128
redistribute deny" "router-id 00:00:00:00:00:00:00:0b
redistribute local deny
default hello-interval 1
redistribute ip 2001:db8:2::/48 eq 48
redistribute deny" 6 "ip -n $A -6 route del 2001:db8:1:2::/64 dev dum0"
    teardown
}

scenario_tunnel() {
    setup
    ip -n $A -6 route add 2001:db8:1::/48 dev dum0 proto static
    ip -n $B -6 route add 2001:db8:2::/48 dev dum0 proto static
    run tunnel 9 "$COMMON
interface vb0 type tunnel hello-interval 1 max-rtt-penalty 5000 rtt-max 500 rtt-decay 125
redistribute ip 2001:db8:1::/48 eq 48
redistribute deny" "router-id 00:00:00:00:00:00:00:0b
redistribute local deny
interface vb0 type tunnel hello-interval 1 max-rtt-penalty 5000 rtt-max 500 rtt-decay 125
redistribute ip 2001:db8:2::/48 eq 48
redistribute deny"
    teardown
}

scenario_blake2s() {
    setup
    ip -n $A -6 route add 2001:db8:1::/48 dev dum0 proto static
    ip -n $B -6 route add 2001:db8:2::/48 dev dum0 proto static
    run blake2s 7 "$COMMON
key id k1 type blake2s128 value $BLAKE_KEY
interface vb0 type tunnel hello-interval 1 key k1
redistribute ip 2001:db8:1::/48 eq 48
redistribute deny" "router-id 00:00:00:00:00:00:00:0b
redistribute local deny
key id k1 type blake2s128 value $BLAKE_KEY
interface vb0 type tunnel hello-interval 1 key k1
redistribute ip 2001:db8:2::/48 eq 48
redistribute deny"
    teardown
}

scenario_sha256() {
    setup
    ip -n $A -6 route add 2001:db8:1::/48 dev dum0 proto static
    ip -n $B -6 route add 2001:db8:2::/48 dev dum0 proto static
    run sha256 7 "$COMMON
key id k2 type hmac-sha256 value $SHA_KEY
interface vb0 hello-interval 1 key k2
redistribute ip 2001:db8:1::/48 eq 48
redistribute deny" "router-id 00:00:00:00:00:00:00:0b
redistribute local deny
key id k2 type hmac-sha256 value $SHA_KEY
interface vb0 hello-interval 1 key k2
redistribute ip 2001:db8:2::/48 eq 48
redistribute deny"
    teardown
}

scenario_srcspec() {
    setup
    ip -n $A -6 route add default from 2001:db8:42::/48 dev dum0 proto static
    ip -n $A -6 route add 2001:db8:42::/48 dev dum0 proto static
    run srcspec 8 "$COMMON
default hello-interval 1
redistribute ip ::/0 eq 0 src-prefix 2001:db8:42::/48
redistribute ip 2001:db8:42::/48 eq 48
redistribute deny" "router-id 00:00:00:00:00:00:00:0b
redistribute local deny
default hello-interval 1
redistribute deny" 5 "ip -n $A -6 route del default from 2001:db8:42::/48 dev dum0"
    teardown
}

mkdir -p "$HERE/../../../fuzz/corpus/babel_packet"
for s in ${*:-plain tunnel blake2s sha256 srcspec}; do
    echo "== $s"
    scenario_$s
done
