#!/usr/bin/env python3
"""A minimal STUN (RFC 5389) Binding responder for the NAT tests.

miniupnpd 2.3.1 refuses to map ports while its external address is a
reserved one (the tests' TEST-NET addresses are): with ext_perform_stun it
trusts the address a STUN server reports instead. This answers every
Binding request with the observed source (XOR-MAPPED-ADDRESS and
MAPPED-ADDRESS). Usage: stun-responder.py ADDRESS PORT
"""
import socket
import struct
import sys

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("READY", flush=True)
while True:
    d, (ip, port) = s.recvfrom(2048)
    if len(d) < 20 or d[:2] != b"\x00\x01":
        continue
    cookie, ipb = d[4:8], socket.inet_aton(ip)
    xored = bytes(x ^ y for x, y in zip(ipb, cookie))
    a = struct.pack("!HHBBH4s", 0x0020, 8, 0, 1, port ^ 0x2112, xored)
    a += struct.pack("!HHBBH4s", 0x0001, 8, 0, 1, port, ipb)
    s.sendto(struct.pack("!HH", 0x0101, len(a)) + cookie + d[8:20] + a, (ip, port))
