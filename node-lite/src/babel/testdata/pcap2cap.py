#!/usr/bin/env python3
"""pcap (Ethernet, IPv6/UDP 6696) -> fixture records and fuzz seeds.

A `.cap` file is a sequence of records: 16-byte source address, 16-byte destination
address, 2-byte big-endian payload length, then the UDP payload (one Babel packet).
"""
import hashlib, os, struct, sys

pcap, out, corpus, name = sys.argv[1:5]
data = open(pcap, 'rb').read()
assert struct.unpack('<I', data[:4])[0] == 0xa1b2c3d4, 'little-endian usec pcap expected'
assert struct.unpack('<I', data[20:24])[0] == 1, 'Ethernet link type expected'
off, records, seen = 24, [], set()
while off + 16 <= len(data):
    incl = struct.unpack('<I', data[off + 8:off + 12])[0]
    frame = data[off + 16:off + 16 + incl]
    off += 16 + incl
    if struct.unpack('!H', frame[12:14])[0] != 0x86dd or frame[20] != 17:
        continue
    ip = frame[14:]
    src, dst = ip[8:24], ip[24:40]
    udp = ip[40:]
    if struct.unpack('!H', udp[2:4])[0] != 6696:
        continue
    payload = udp[8:struct.unpack('!H', udp[4:6])[0]]
    records.append(src + dst + struct.pack('!H', len(payload)) + payload)
    digest = hashlib.sha1(payload).hexdigest()[:12]
    if digest not in seen:
        seen.add(digest)
        with open(os.path.join(corpus, '%s-%s.bin' % (name, digest)), 'wb') as f:
            f.write(payload)
with open(out, 'wb') as f:
    f.write(b''.join(records))
print('%s: %d packets, %d distinct' % (name, len(records), len(seen)))
