"""The ADB (apk v3) writer against bytes worked out by hand from the format
description (apk-tools doc/apk-v3.5 and the schema field numbers), not from
apk's output: no apk-tools v3 binary is available on Debian here."""

import hashlib
import struct
import sys
import pathlib
import unittest
import zlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from pkgtools import adb  # noqa: E402


def h(text):
    """Hex with spaces and comments (after #) ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


class Values(unittest.TestCase):
    def test_scalars_alignment_and_dedupe(self):
        w = adb.Writer()
        self.assertEqual(w.int(5), 0x10000005)          # direct: no data
        self.assertEqual(w.int((1 << 28) - 1), 0x1FFFFFFF)
        self.assertEqual(len(w.buf), 8)
        self.assertEqual(w.int(1 << 28), 0x20000008)     # int32 at 8
        self.assertEqual(w.int(1 << 32), 0x3000000C)     # int64 at 12 (4-aligned)
        self.assertEqual(w.blob("ab"), 0x80000014)       # blob8 at 20
        self.assertEqual(w.blob(b"ab"), 0x80000014)      # stored once
        self.assertEqual(w.blob(""), adb.NULL)           # empty blob is null
        self.assertEqual(w.blob(b"x" * 300), 0x90000018)  # blob16, 2-aligned: 23 -> 24
        big = w.blob(b"y" * 70000)                       # blob32, 4-aligned
        self.assertEqual(big, 0xA0000000 | 328)          # 24 + 2 + 300 = 326 -> 328
        self.assertEqual(w.obj({1: 0x10000007, 3: 0x80000014}), 0xE0000000 | (332 + 70000))
        self.assertEqual(w.obj({}), adb.NULL)
        self.assertEqual(w.obj({2: adb.NULL}), adb.NULL)  # only null fields: null
        self.assertEqual(w.arr([]), adb.NULL)
        self.assertEqual(bytes(w.buf[8:23]), h("""
            00 00 00 10                 # 0x10000000 as int32
            00 00 00 00 01 00 00 00     # 2^32 as int64
            02 61 62                    # "ab"
        """))
        self.assertEqual(bytes(w.buf[23:26]), h("00 2c 01"))  # padding, length 300
        self.assertEqual(bytes(w.buf[326:332]), h("00 00 70 11 01 00"))  # pad, 70000
        self.assertEqual(bytes(w.buf[70332:]), h("""
            04 00 00 00                 # 4 slots: count, fields 1..3
            07 00 00 10                 # field 1: int 7
            00 00 00 00                 # field 2: null
            14 00 00 80                 # field 3: blob at 0x14
        """))

    def test_trailing_null_fields_are_dropped(self):
        w = adb.Writer()
        v = w.obj({1: 0x10000001, 2: adb.NULL, 3: adb.NULL})
        self.assertEqual(bytes(w.buf[adb.val_value(v):]), h("02000000 01000010"))

    def test_limits(self):
        w = adb.Writer()
        with self.assertRaises(ValueError):
            w.int(-1)
        with self.assertRaises(ValueError):
            adb.val(adb.T_INT, 1 << 28)

    def test_block_framing(self):
        # tag = type << 30 | (4 + payload); padded to 8 bytes
        self.assertEqual(adb.block(adb.BLOCK_ADB, b"\x01\x02\x03\x04"),
                         h("08000000 01020304"))
        self.assertEqual(adb.block(adb.BLOCK_DATA, b"\x01"), h("05000080 01 000000"))
        self.assertEqual(adb.block(adb.BLOCK_SIG, bytes(12)), h("10000040") + bytes(12))
        self.assertEqual(adb.file_header(adb.SCHEMA_PACKAGE), b"ADB.pckg")
        self.assertEqual(adb.file_header(adb.SCHEMA_INDEX), b"ADB.indx")

    def test_compression_is_ADBd_and_raw_deflate(self):
        raw = b"ADB.pckg" + bytes(100)
        c = adb.compress(raw)
        self.assertEqual(c[:4], b"ADBd")
        self.assertEqual(zlib.decompress(c[4:], -15), raw)
        self.assertEqual(adb.decompress(c), raw)
        self.assertEqual(adb.decompress(raw), raw)
        with self.assertRaises(ValueError):
            adb.decompress(b"ADBx....")


# A package with one file, "f" (mode 0644, contents "x", mtime 0), in the
# root directory, named "a", version "1"; worked out field by field.
MINIMAL_ADB = h("""
    00 00 00 00  d8 00 00 e0    # 0: compat 0, version 0, reserved; root = object at 0xd8
    01 61                       # 8: name "a"
    01 31                       # 10: version "1"
    01 66                       # 12: file name "f"
    20 """ + hashlib.sha256(b"x").hexdigest() + """  # 14: hash, sha256("x")
    04 72 6f 6f 74              # 47: "root" (user and group, stored once)
    04 00 00 00  a4 01 00 10  2f 00 00 80  2f 00 00 80
                                # 52: acl {mode 0644, user, group}
    06 00 00 00  0c 00 00 80  34 00 00 e0  01 00 00 10  00 00 00 10  0e 00 00 80
                                # 68: file {name, acl, size 1, mtime 0, hash}
    04 00 00 00  ed 01 00 10  2f 00 00 80  2f 00 00 80
                                # 92: acl {mode 0755, root, root}
    02 00 00 00  44 00 00 e0    # 108: files [file]
    04 00 00 00  00 00 00 00  5c 00 00 e0  6c 00 00 d0
                                # 116: dir {name null (root), acl, files}
    14 """ + "00" * 20 + """    # 132: hashes: 20-byte id (zero while hashing)
    00 00 00                    # 153: padding to 4
    0d 00 00 00                 # 156: info: 13 slots (fields 1..12)
    08 00 00 80  0a 00 00 80  84 00 00 80      # name, version, hashes
    00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00  00 00 00 00
    00 00 00 00  00 00 00 00  00 00 00 00      # fields 4..11 unset
    01 00 00 10                                # installed-size 1
    02 00 00 00  74 00 00 e0    # 208: paths [dir]
    03 00 00 00  9c 00 00 e0  d0 00 00 d0      # 216: package {info, paths}
""")


class Package(unittest.TestCase):
    def test_minimal_package_bytes(self):
        got = adb.package({"name": "a", "version": "1"}, [adb.Entry("f", 0o644, b"x")])
        adb_block = bytearray(MINIMAL_ADB)
        adb_block[133:153] = hashlib.sha256(MINIMAL_ADB).digest()[:20]
        expected = (b"ADB.pckg"
                    + struct.pack("<I", 4 + len(adb_block)) + adb_block  # 232: no padding
                    + h("0d000080 01000000 01000000 78 000000"))  # DATA: dir 1, file 1, "x"
        self.assertEqual(len(MINIMAL_ADB), 228)
        self.assertEqual(got, expected)

    def test_read_back_and_checks(self):
        entries = [
            adb.Entry("etc", 0o755), adb.Entry("etc/b", 0o600, b"bb", mtime=7),
            adb.Entry("etc/a", 0o644, b""), adb.Entry("usr", 0o755),
            adb.Entry("usr/bin", 0o755), adb.Entry("usr/bin/z", 0o755, b"z" * 1000),
            adb.Entry("etc/sub", 0o700),
        ]
        info = {"name": "pkg", "version": "1.2.3-r4", "arch": "mipsel_24kc",
                "description": "d", "depends": "libc kmod-tun libc"}
        scripts = {"pre-deinstall": "#!/bin/sh\nexit 0\n", "post-install": "#!/bin/sh\n"}
        data = adb.compress(adb.package(info, entries, scripts))
        p = adb.read_package(data)
        self.assertEqual(p["info"]["depends"], ["kmod-tun", "libc"])  # sorted, unique
        self.assertEqual(p["info"]["installed-size"], 1002)
        self.assertEqual(len(bytes.fromhex(p["info"]["hashes"])), 20)
        self.assertEqual([e["path"] for e in p["paths"]],
                         ["", "etc", "etc/a", "etc/b", "etc/sub", "usr", "usr/bin", "usr/bin/z"])
        modes = {e["path"]: e["mode"] for e in p["paths"]}
        self.assertEqual((modes["etc/sub"], modes["etc/b"], modes[""]), (0o700, 0o600, 0o755))
        self.assertEqual(p["data"], {"etc/b": b"bb", "usr/bin/z": b"z" * 1000})
        self.assertEqual(p["scripts"], scripts)
        self.assertEqual(next(e for e in p["paths"] if e["path"] == "etc/b")["mtime"], 7)
        # The id is the start of the SHA-256 of the ADB block written with a zero id.
        block = bytearray(p["adb"])
        i = block.find(bytes.fromhex(p["info"]["hashes"]))
        block[i:i + 20] = bytes(20)
        self.assertEqual(hashlib.sha256(block).hexdigest()[:40], p["info"]["hashes"])

    def test_reader_rejects_damage(self):
        raw = adb.package({"name": "a", "version": "1"}, [adb.Entry("f", 0o644, b"xyz")])
        bad_data = raw[:-8] + b"XYZ" + raw[-5:]  # file contents changed
        with self.assertRaises(ValueError):
            adb.read_package(bad_data)
        with self.assertRaises(ValueError):
            adb.read_package(raw[:-8])  # data block missing
        with self.assertRaises(ValueError):
            adb.read_package(b"ADB.indx" + raw[8:])
        with self.assertRaises(ValueError):
            adb.package({"name": "a", "version": "1"}, [adb.Entry("d/f", 0o644, b"")])
        with self.assertRaises(ValueError):
            adb.package({"name": "a", "version": "1", "depends": "a>=1"}, [])


if __name__ == "__main__":
    unittest.main()
