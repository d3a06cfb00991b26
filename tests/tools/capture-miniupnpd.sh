#!/bin/bash
# capture-miniupnpd.sh - record the real bytes Debian 12's miniupnpd 2.3.1 sends back to a
# client that behaves like re6st-lite's NAT mapper (node-lite/src/nat), for its unit tests.
#
#   u-lan  192.0.2.2/24  (lan0) --veth-- (rtr-lan) 192.0.2.1/24  u-rtr  (miniupnpd)
#   u-rtr  203.0.113.1/24 (rtr-wan) --veth-- (wan0) 203.0.113.2/24  u-wan  (STUN responder)
#
# miniupnpd refuses to map while its external address is a reserved one (TEST-NET is), so it
# runs with ext_perform_stun=yes against a tiny STUN responder in u-wan.
# Writes into OUT (default: node-lite/src/nat/testdata next to this script's repository):
#   pcp-announce.bin [pmp-announce.bin] pcp-map.bin pcp-delete.bin pmp-external.bin
#   pmp-map.bin pmp-delete.bin ssdp.txt rootdesc.http soap-add.http soap-external.http
#   soap-conflict.http soap-delete.http
# Needs root, iproute2, nft, miniupnpd (miniupnpd-nftables), python3. Touches nothing outside
# its three namespaces, a mktemp work dir and OUT. KEEP=1 keeps the work dir (logs).
set -Eeu

LAN_NS=u-lan RTR_NS=u-rtr WAN_NS=u-wan
LAN_IP=192.0.2.2 RTR_LAN_IP=192.0.2.1 RTR_WAN_IP=203.0.113.1 WAN_IP=203.0.113.2
HTTP_PORT=5000 STUN_PORT=3478
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/../../node-lite/src/nat/testdata}

WORK=$(mktemp -d /tmp/mupnp-capture.XXXXXX)
MPID='' STUNPID='' ANNPID='' CREATED_NS=()
in_ns(){ local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM ERR
    [ -n "$ANNPID" ] && kill "$ANNPID" 2>/dev/null && wait "$ANNPID" 2>/dev/null
    [ -n "$MPID" ] && kill -TERM "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
    [ -n "$STUNPID" ] && kill "$STUNPID" 2>/dev/null && wait "$STUNPID" 2>/dev/null
    for ns in "${CREATED_NS[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done   # only our helpers
        ip netns del "$ns" 2>/dev/null
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    [ $rc -ne 0 ] && echo "FAILED (exit status $rc)" >&2
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "ERROR: line $LINENO: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------- preflight
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
for c in ip nft miniupnpd python3; do command -v $c >/dev/null || { echo "missing $c" >&2; exit 1; }; done
for ns in $LAN_NS $RTR_NS $WAN_NS; do
    ip netns list | grep -qw "^$ns" && { echo "netns $ns already exists - refusing" >&2; exit 1; }
done
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
echo "miniupnpd: $(miniupnpd --version 2>&1 | head -1)"
echo "output:    $OUT"

# ---------------------------------------------------------------- python helpers
cat > "$WORK/announce.py" <<'EOF'
# Listen on 0.0.0.0:5350 (where PCP ANNOUNCE / NAT-PMP address notices go) and save the
# distinct datagrams from the router: ARGV = router outdir seconds.
import socket, sys, time
router, out, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5350))
print("READY", flush=True)
seen, end = [], time.time() + secs
while time.time() < end:
    s.settimeout(max(0.05, end - time.time()))
    try:
        d, src = s.recvfrom(2048)
    except socket.timeout:
        break
    print(f"datagram from {src[0]}:{src[1]}: {d.hex()}", flush=True)
    if src[0] == router and d not in seen:
        seen.append(d)
names = {2: "pcp-announce.bin", 0: "pmp-announce.bin"}
for i, d in enumerate(seen):
    # a PCP (version 2) or NAT-PMP (version 0) notice; anything else: by order
    name = names.pop(d[0], None) or ("pcp-announce.bin" if i == 0 else "pmp-announce.bin")
    open(f"{out}/{name}", "wb").write(d)
    print(f"saved {name} ({len(d)} B)", flush=True)
print(f"ANNOUNCES={len(seen)}", flush=True)
EOF
cat > "$WORK/client.py" <<'EOF'
# The requests re6st-lite's node sends (node-lite/src/nat/{pmp,upnp}.rs), one UDP socket.
import socket, struct, sys, re, ipaddress
gw, client, out = sys.argv[1], sys.argv[2], sys.argv[3]
PORT, NONCE = 1194, bytes(range(1, 13))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 0)); u.settimeout(3)

def save(name, data):
    open(f"{out}/{name}", "wb").write(data)
    print(f"saved {name} ({len(data)} B)", flush=True)

def udp(name, req, dest):
    u.sendto(req, dest)
    while True:
        d, src = u.recvfrom(4096)
        if src == dest:
            break
        print(f"  (ignored datagram from {src})")
    print(f"{name}: {d.hex() if name.endswith('.bin') else d[:60]}")
    save(name, d)
    return d

def m4(ip):
    return ipaddress.IPv6Address("::ffff:" + ip).packed

def pcp_map(lifetime):
    return (bytes([2, 1, 0, 0]) + struct.pack("!I", lifetime) + m4(client) + NONCE
            + bytes([17, 0, 0, 0]) + struct.pack("!HH", PORT, PORT) + m4("0.0.0.0"))

def pmp_map(lifetime):
    return bytes([0, 1, 0, 0]) + struct.pack("!HHI", PORT, PORT, lifetime)

def http(name, req):
    t = socket.create_connection((hname, hport), timeout=5)
    t.sendall(req.encode())
    d = b""
    while True:
        c = t.recv(65536)
        if not c:
            break
        d += c
    t.close()
    print(name + ": " + d.split(b"\r\n", 1)[0].decode())
    save(name, d)
    return d.decode()

# ---- PCP / NAT-PMP (port 5351)
pcp = (gw, 5351)
assert len(pcp_map(3600)) == 60
udp("pcp-map.bin", pcp_map(3600), pcp)
udp("pcp-delete.bin", pcp_map(0), pcp)
udp("pmp-external.bin", bytes([0, 0]), pcp)
udp("pmp-map.bin", pmp_map(3600), pcp)
udp("pmp-delete.bin", pmp_map(0), pcp)        # also frees 1194 before the UPnP add

# ---- UPnP IGD
msearch = ("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n"
           "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n").encode()
ssdp = udp("ssdp.txt", msearch, (gw, 1900)).decode()
loc = re.search(r"(?im)^LOCATION:\s*http://([^/\s]+)(/\S*)", ssdp)
host, path = loc.group(1), loc.group(2)
hname, _, hp = host.partition(":"); hport = int(hp or 80)
print(f"LOCATION host={host} path={path}")
get = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
desc = http("rootdesc.http", get).split("\r\n\r\n", 1)[1]
service = control = None
for kind in ("urn:schemas-upnp-org:service:WANIPConnection:2",      # the node's preference order
             "urn:schemas-upnp-org:service:WANIPConnection:1",
             "urn:schemas-upnp-org:service:WANPPPConnection:1"):
    for block in desc.split("<service>")[1:]:
        if f"<serviceType>{kind}</serviceType>" in block:
            service, control = kind, re.search(r"<controlURL>\s*(\S+?)\s*</controlURL>", block).group(1)
            break
    if service:
        break
print(f"service={service} controlURL={control}")

def soap(name, action, args):
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in args)
    body = ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            f'<u:{action} xmlns:u="{service}">{inner}</u:{action}></s:Body></s:Envelope>\r\n')
    # header order exactly as upnp::soap() builds it (SOAPAction spliced in last)
    req = (f"POST {control} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
           f'Content-Type: text/xml; charset="utf-8"\r\nSOAPAction: "{service}#{action}"\r\n\r\n{body}')
    d = http(name, req)
    m = re.search(r"<(errorCode|NewExternalIPAddress)>(.*?)</", d)
    if m:
        print(f"  {m.group(1)}={m.group(2)}")

def add(who):
    return [("NewRemoteHost", ""), ("NewExternalPort", PORT), ("NewProtocol", "UDP"),
            ("NewInternalPort", PORT), ("NewInternalClient", who), ("NewEnabled", 1),
            ("NewPortMappingDescription", "re6st-lite"), ("NewLeaseDuration", 3600)]

soap("soap-add.http", "AddPortMapping", add(client))
soap("soap-external.http", "GetExternalIPAddress", [])
soap("soap-conflict.http", "AddPortMapping", add("192.0.2.3"))
soap("soap-delete.http", "DeletePortMapping",
     [("NewRemoteHost", ""), ("NewExternalPort", PORT), ("NewProtocol", "UDP")])
print("CLIENT-DONE")
EOF

# ---------------------------------------------------------------- topology
for ns in $LAN_NS $RTR_NS $WAN_NS; do ip netns add "$ns"; CREATED_NS+=("$ns"); in_ns "$ns" ip link set lo up; done
ip link add rtr-lan netns $RTR_NS type veth peer name lan0 netns $LAN_NS
ip link add rtr-wan netns $RTR_NS type veth peer name wan0 netns $WAN_NS
ip -n $LAN_NS addr add $LAN_IP/24 dev lan0;        ip -n $LAN_NS link set lan0 up
ip -n $LAN_NS route add default via $RTR_LAN_IP
ip -n $RTR_NS addr add $RTR_LAN_IP/24 dev rtr-lan; ip -n $RTR_NS link set rtr-lan up
ip -n $RTR_NS addr add $RTR_WAN_IP/24 dev rtr-wan; ip -n $RTR_NS link set rtr-wan up
ip -n $WAN_NS addr add $WAN_IP/24 dev wan0;        ip -n $WAN_NS link set wan0 up
in_ns $RTR_NS sysctl -qw net.ipv4.ip_forward=1

# nftables: table/chain names are miniupnpd 2.3.1's nft defaults for the ones it manages
in_ns $RTR_NS nft -f - <<EOF
table inet filter {
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "rtr-wan" ct state established,related accept
        iifname "rtr-wan" counter drop
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "rtr-lan" oifname "rtr-wan" accept
        iifname "rtr-wan" jump miniupnpd
    }
    chain miniupnpd {
    }
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "rtr-wan" jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        jump postrouting_miniupnpd
        oifname "rtr-wan" ip saddr 192.0.2.0/24 masquerade
    }
    chain prerouting_miniupnpd {
    }
    chain postrouting_miniupnpd {
    }
}
EOF

cat > "$WORK/miniupnpd.conf" <<EOF
ext_ifname=rtr-wan
listening_ip=rtr-lan
http_port=$HTTP_PORT
enable_upnp=yes
enable_natpmp=yes
ipv6_disable=yes
secure_mode=yes
system_uptime=no
uuid=3c2e6a54-1f0b-4d6e-9a43-7e5b2f0c1d11
lease_file=$WORK/upnp.leases
minissdpdsocket=$WORK/minissdpd.sock
min_lifetime=120
max_lifetime=86400
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
ext_perform_stun=yes
ext_stun_host=$WAN_IP
ext_stun_port=$STUN_PORT
allow 1024-65535 192.0.2.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
echo "--- miniupnpd.conf"; sed 's/^/    /' "$WORK/miniupnpd.conf"

wait_for() {  # wait_for <file> <pattern> <tenths>
    for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    grep -q "$2" "$1" 2>/dev/null
}

# ---------------------------------------------------------------- STUN, announce listener, miniupnpd
in_ns $WAN_NS python3 "$(dirname "$0")/stun-responder.py" $WAN_IP $STUN_PORT > "$WORK/stun.log" 2>&1 & STUNPID=$!
wait_for "$WORK/stun.log" READY 50 || { cat "$WORK/stun.log"; exit 1; }

FILES="pcp-map.bin pcp-delete.bin pmp-external.bin pmp-map.bin pmp-delete.bin ssdp.txt rootdesc.http
       soap-add.http soap-external.http soap-conflict.http soap-delete.http"
(cd "$OUT" && rm -f pcp-announce.bin pmp-announce.bin $FILES)   # no stale capture survives a failure
in_ns $LAN_NS python3 "$WORK/announce.py" $RTR_LAN_IP "$OUT" 6 > "$WORK/announce.log" 2>&1 & ANNPID=$!
wait_for "$WORK/announce.log" READY 50 || { cat "$WORK/announce.log"; exit 1; }

in_ns $RTR_NS miniupnpd -f "$WORK/miniupnpd.conf" -d -P "$WORK/miniupnpd.pid" > "$WORK/miniupnpd.log" 2>&1 & MPID=$!
if ! wait_for "$WORK/miniupnpd.log" 'Listening for NAT-PMP/PCP' 100; then
    cat "$WORK/miniupnpd.log"; echo "miniupnpd did not start" >&2; exit 1
fi
grep -q 'Port forwarding is now enabled' "$WORK/miniupnpd.log" \
    || { cat "$WORK/miniupnpd.log"; echo "STUN did not enable port forwarding" >&2; exit 1; }

echo "--- announce listener (6 s from before miniupnpd's start)"
wait "$ANNPID" || true; ANNPID=
sed 's/^/    /;/READY/d' "$WORK/announce.log"

# ---------------------------------------------------------------- the client
echo "--- client"
in_ns $LAN_NS python3 "$WORK/client.py" $RTR_LAN_IP $LAN_IP "$OUT" 2>&1 | tee "$WORK/client.log" | sed 's/^/    /'
grep -q CLIENT-DONE "$WORK/client.log" || { echo "client failed" >&2; exit 1; }

echo "--- miniupnpd log"
sed 's/^/    /' "$WORK/miniupnpd.log"

missing=0
for f in $FILES; do
    [ -s "$OUT/$f" ] || { echo "missing $OUT/$f" >&2; missing=1; }
done
[ -s "$OUT/pcp-announce.bin" ] || echo "NOTE: miniupnpd sent no announce to 224.0.0.1:5350"
echo "--- files"; ls -l "$OUT"
exit $missing
