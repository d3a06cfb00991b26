"""A writer (and a small reader) for apk-tools v3 "ADB" files.

Written from apk-tools' format description (doc/apk-v3.5) and its schema
headers (field numbers of the package schema), not from its code. What
OpenWrt 25.12 installs with `apk add` is one such file:

    "ADBd"  then raw deflate of:
      file header   "ADB." (0x2e424441 LE) and the schema id "pckg" (LE u32)
      ADB block     the root package object and everything it points to
      DATA blocks   one per non-empty regular file: path index, file index
                    (both LE u32, 1-based, in the sorted arrays), contents

Blocks: a LE u32 tag, type in the top 2 bits (0 ADB, 1 SIG, 2 DATA) and size
(tag + payload) in the low 30, then the payload, then zeros up to a multiple
of 8 bytes.

Inside the ADB block, after a 4-byte header (compat version 0, version 0,
2 reserved bytes) and the root value (LE u32), values are 32-bit LE words:
the top 4 bits are a type, the low 28 a value or an offset from the start of
the ADB payload:

    0x0 special (0 null, 1 true, 2 false)   0x1 int (value < 2^28, direct)
    0x2 int32 (offset, 4-aligned)           0x3 int64 (offset, 4-aligned)
    0x8 blob8 / 0x9 blob16 / 0xa blob32 (offset of a 1/2/4-byte LE length,
        aligned to that size, then the bytes)
    0xd array / 0xe object (offset, 4-aligned, of slots: slot 0 holds the
        slot count including itself, slot i holds field i; trailing null
        slots are left out; an object or array with no field is null)

Identical data is stored once (as apk's writer does). Arrays of objects are
sorted the way apk sorts them (by their comparison fields); data blocks
name files by their index in those sorted arrays.
"""

import hashlib
import struct
import zlib

# Value types (top 4 bits of a value word).
T_SPECIAL, T_INT, T_INT32, T_INT64 = 0x0, 0x1, 0x2, 0x3
T_BLOB8, T_BLOB16, T_BLOB32 = 0x8, 0x9, 0xA
T_ARRAY, T_OBJECT = 0xD, 0xE
NULL = 0

BLOCK_ADB, BLOCK_SIG, BLOCK_DATA = 0, 1, 2
BLOCK_ALIGN = 8

FILE_MAGIC = 0x2E424441  # "ADB."
SCHEMA_PACKAGE = 0x676B6370  # "pckg"
SCHEMA_INDEX = 0x78646E69  # "indx"

# Field numbers (apk-tools src/apk_adb.h).
PKG_INFO, PKG_PATHS, PKG_SCRIPTS, PKG_TRIGGERS, PKG_REPLACES_PRIORITY = 1, 2, 3, 4, 5
PI_FIELDS = {
    "name": 1, "version": 2, "hashes": 3, "description": 4, "arch": 5,
    "license": 6, "origin": 7, "maintainer": 8, "url": 9, "repo-commit": 10,
    "build-time": 11, "installed-size": 12, "file-size": 13,
    "provider-priority": 14, "depends": 15, "provides": 16, "replaces": 17,
    "install-if": 18, "recommends": 19, "layer": 20, "tags": 21,
}
DEP_NAME, DEP_VERSION, DEP_MATCH = 1, 2, 3
ACL_MODE, ACL_USER, ACL_GROUP, ACL_XATTRS = 1, 2, 3, 4
FI_NAME, FI_ACL, FI_SIZE, FI_MTIME, FI_HASHES, FI_TARGET = 1, 2, 3, 4, 5, 6
DI_NAME, DI_ACL, DI_FILES = 1, 2, 3
SCRIPTS = {
    "trigger": 1, "pre-install": 2, "post-install": 3, "pre-deinstall": 4,
    "post-deinstall": 5, "pre-upgrade": 6, "post-upgrade": 7,
}
# Package info fields given as text that are plain strings.
PI_TEXT = ("name", "version", "description", "arch", "license", "origin",
           "maintainer", "url")


def val(kind, value):
    if not 0 <= value < 1 << 28:
        raise ValueError(f"value {value:#x} does not fit 28 bits")
    return kind << 28 | value


def val_type(v):
    return v >> 28


def val_value(v):
    return v & 0x0FFFFFFF


class Writer:
    """Builds the payload of an ADB block: header, then data appended with
    alignment and deduplication; values are returned as 32-bit words."""

    def __init__(self):
        self.buf = bytearray(8)  # compat 0, version 0, reserved, root (set last)
        self.seen = {}

    def _data(self, data, align, dedupe=True):
        data = bytes(data)
        if dedupe:
            for off in self.seen.get(data, ()):
                if off % align == 0:
                    return off
        self.buf += bytes(-len(self.buf) % align)
        off = len(self.buf)
        self.buf += data
        if dedupe:
            self.seen.setdefault(data, []).append(off)
        return off

    def int(self, n):
        if n < 0:
            raise ValueError("negative integer")
        if n < 1 << 28:
            return val(T_INT, n)
        if n < 1 << 32:
            return val(T_INT32, self._data(struct.pack("<I", n), 4))
        return val(T_INT64, self._data(struct.pack("<Q", n), 4))

    def blob(self, data, dedupe=True):
        """A blob; empty is null (as in apk)."""
        data = data.encode() if isinstance(data, str) else bytes(data)
        n = len(data)
        if n == 0:
            return NULL
        if n <= 0xFF:
            kind, head = T_BLOB8, struct.pack("<B", n)
        elif n <= 0xFFFF:
            kind, head = T_BLOB16, struct.pack("<H", n)
        else:
            kind, head = T_BLOB32, struct.pack("<I", n)
        return val(kind, self._data(head + data, len(head), dedupe))

    def _slots(self, kind, slots):
        slots = list(slots)
        while slots and slots[-1] == NULL:
            slots.pop()
        if not slots:
            return NULL
        words = [len(slots) + 1] + slots
        return val(kind, self._data(struct.pack(f"<{len(words)}I", *words), 4))

    def obj(self, fields):
        """An object from {field number: value word}."""
        if not fields:
            return NULL
        slots = [NULL] * max(fields)
        for i, v in fields.items():
            if i < 1:
                raise ValueError("object fields start at 1")
            slots[i - 1] = v
        return self._slots(T_OBJECT, slots)

    def arr(self, items):
        return self._slots(T_ARRAY, [v for v in items if v != NULL])

    def finish(self, root):
        struct.pack_into("<I", self.buf, 4, root)
        return bytes(self.buf)


def block(kind, payload):
    """One block: tag (type, size of tag + payload), payload, padding."""
    size = 4 + len(payload)
    if size >= 1 << 30:
        raise ValueError("block too large for a plain block header")
    tag = struct.pack("<I", kind << 30 | size)
    return tag + payload + bytes(-size % BLOCK_ALIGN)


def file_header(schema):
    return struct.pack("<II", FILE_MAGIC, schema)


def compress(raw, level=9):
    """apk's default compression: "ADBd" and raw deflate."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return b"ADBd" + c.compress(raw) + c.flush()


def decompress(data):
    if data[:4] == b"ADB.":
        return data
    if data[:4] == b"ADBd":
        d = zlib.decompressobj(-15)
        out = d.decompress(data[4:]) + d.flush()
        if not d.eof or d.unused_data:
            raise ValueError("bad deflate stream")
        return out
    raise ValueError("not an ADB file")


# -- packages -----------------------------------------------------------------

def dependencies(w, text):
    """A dependency array from "name name ..." (unversioned names only,
    which is what OpenWrt writes), sorted and unique as apk stores it."""
    names = list(dict.fromkeys(text.split()))
    for n in names:
        if not n[0].isalnum() or any(c in "<>=~!" for c in n):
            raise ValueError(f"unsupported dependency {n!r}")
    # Written in the given order, then the slots sorted by name.
    objs = [(n.encode(), w.obj({DEP_NAME: w.blob(n)})) for n in names]
    return w.arr(v for _, v in sorted(objs))


class Entry:
    """A path in the package: a directory or a regular file."""

    def __init__(self, path, mode, data=None, mtime=0, user="root", group="root"):
        self.path = path.strip("/")
        self.mode = mode
        self.data = data  # None for a directory
        self.mtime = mtime
        self.user, self.group = user, group

    @property
    def is_dir(self):
        return self.data is None


def package(info, entries, scripts=None, uid_len=20):
    """The uncompressed package file (header, ADB block, DATA blocks).

    info: {field name: text or int}; "depends" is a space-separated list.
    entries: Entry objects; every parent directory must be listed (the root
    directory "" may be, with its own mode). scripts: {name: text}.
    """
    w = Writer()
    dirs = {"": Entry("", 0o755)}
    files = {}
    for e in entries:
        (dirs if e.is_dir else files)[e.path] = e
    for p in files:
        parent = p.rpartition("/")[0]
        if parent not in dirs:
            raise ValueError(f"{p}: parent directory {parent!r} not listed")
    # Package info, in field order (as `apk mkpkg` assigns them).
    pi = {}
    for name, value in sorted(info.items(), key=lambda kv: PI_FIELDS[kv[0]]):
        f = PI_FIELDS[name]
        if name == "depends" or name == "provides":
            pi[f] = dependencies(w, value)
        elif name in PI_TEXT:
            pi[f] = w.blob(value)
        elif name in ("build-time", "provider-priority"):
            pi[f] = w.int(int(value))
        else:
            raise ValueError(f"unsupported info field {name!r}")
    # Paths: directories sorted by name, each with its files sorted by name.
    dir_names = sorted(dirs, key=str.encode)
    installed = 0
    path_vals = []
    layout = []  # (dir index, file index, entry) of files with data
    for di, dname in enumerate(dir_names, 1):
        d = dirs[dname]
        members = sorted((p for p in files if p.rpartition("/")[0] == dname),
                         key=lambda p: p.rpartition("/")[2].encode())
        file_vals = []
        for fi, p in enumerate(members, 1):
            f = files[p]
            name = w.blob(p.rpartition("/")[2])
            digest = w.blob(hashlib.sha256(f.data).digest())
            mtime = w.int(f.mtime)
            size = w.int(len(f.data))
            acl = w.obj({ACL_MODE: w.int(f.mode & 0o7777), ACL_USER: w.blob(f.user),
                         ACL_GROUP: w.blob(f.group)})
            file_vals.append(w.obj({FI_NAME: name, FI_ACL: acl, FI_SIZE: size,
                                    FI_MTIME: mtime, FI_HASHES: digest}))
            installed += len(f.data)
            if f.data:
                layout.append((di, fi, f))
        name = w.blob(dname)
        acl = w.obj({ACL_MODE: w.int(d.mode & 0o7777), ACL_USER: w.blob(d.user),
                     ACL_GROUP: w.blob(d.group)})
        path_vals.append(w.obj({DI_NAME: name, DI_ACL: acl, DI_FILES: w.arr(file_vals)}))
    if scripts and not installed:
        installed = 1
    pi[PI_FIELDS["installed-size"]] = w.int(installed or 1)
    # The package's unique id: a placeholder, filled in below.
    pi[PI_FIELDS["hashes"]] = w.blob(bytes(uid_len), dedupe=False)
    pkg = {PKG_INFO: w.obj(pi), PKG_PATHS: w.arr(path_vals)}
    if scripts:
        pkg[PKG_SCRIPTS] = w.obj({SCRIPTS[k]: w.blob(scripts[k])
                                  for k in sorted(scripts, key=SCRIPTS.__getitem__)})
    adb = bytearray(w.finish(w.obj(pkg)))
    # Like `apk mkpkg`: the id is the start of the SHA-256 of the ADB payload
    # written with a zero id.
    uid_off = val_value(pi[PI_FIELDS["hashes"]]) + 1
    adb[uid_off:uid_off + uid_len] = hashlib.sha256(adb).digest()[:uid_len]
    out = bytearray(file_header(SCHEMA_PACKAGE))
    out += block(BLOCK_ADB, bytes(adb))
    for di, fi, f in layout:
        out += block(BLOCK_DATA, struct.pack("<II", di, fi) + f.data)
    return bytes(out)


# -- reading ------------------------------------------------------------------

class Reader:
    """Decodes an ADB block payload (for tests and `--dump`)."""

    def __init__(self, adb):
        if len(adb) < 8 or adb[0] != 0:
            raise ValueError("bad ADB header")
        self.adb = adb
        self.root = struct.unpack_from("<I", adb, 4)[0]

    def _at(self, off, n):
        if off + n > len(self.adb):
            raise ValueError(f"offset {off:#x}+{n} beyond the ADB block")
        return self.adb[off:off + n]

    def int(self, v):
        t, x = val_type(v), val_value(v)
        if t == T_INT:
            return x
        if t == T_INT32:
            return struct.unpack("<I", self._at(x, 4))[0]
        if t == T_INT64:
            return struct.unpack("<Q", self._at(x, 8))[0]
        if v == NULL:
            return None
        raise ValueError(f"not an integer: {v:#010x}")

    def blob(self, v):
        t, x = val_type(v), val_value(v)
        if v == NULL:
            return None
        width = {T_BLOB8: 1, T_BLOB16: 2, T_BLOB32: 4}.get(t)
        if width is None:
            raise ValueError(f"not a blob: {v:#010x}")
        if x % width:
            raise ValueError(f"misaligned blob at {x:#x}")
        n = int.from_bytes(self._at(x, width), "little")
        return self._at(x + width, n)

    def slots(self, v, kind):
        if v == NULL:
            return []
        if val_type(v) != kind:
            raise ValueError(f"expected type {kind:#x}, got {v:#010x}")
        x = val_value(v)
        if x % 4:
            raise ValueError(f"misaligned object at {x:#x}")
        n = struct.unpack("<I", self._at(x, 4))[0]
        if n < 1:
            raise ValueError("object with no slot count")
        return list(struct.unpack(f"<{n - 1}I", self._at(x + 4, 4 * (n - 1))))

    def obj(self, v):
        """{field number: value word} of the non-null fields."""
        return {i: s for i, s in enumerate(self.slots(v, T_OBJECT), 1) if s != NULL}

    def arr(self, v):
        return self.slots(v, T_ARRAY)


def blocks(raw):
    """(type, payload) of each block after the file header."""
    pos = 8
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValueError("truncated block header")
        tag = struct.unpack_from("<I", raw, pos)[0]
        kind, size = tag >> 30, tag & 0x3FFFFFFF
        if size < 4 or pos + size > len(raw):
            raise ValueError(f"bad block size {size} at {pos}")
        yield kind, raw[pos + 4:pos + size]
        pos += size + (-size % BLOCK_ALIGN)
    if pos != len(raw):
        raise ValueError("padding runs past the end")


def read_package(data):
    """Parse a package file into a plain dict (info, paths, scripts, data),
    checking what apk checks when it installs: block order, data blocks in
    file order with the right size and SHA-256."""
    raw = decompress(data)
    magic, schema = struct.unpack_from("<II", raw, 0)
    if magic != FILE_MAGIC or schema != SCHEMA_PACKAGE:
        raise ValueError("not an ADB package")
    bl = list(blocks(raw))
    if not bl or bl[0][0] != BLOCK_ADB:
        raise ValueError("first block is not ADB")
    r = Reader(bl[0][1])
    pkg = r.obj(r.root)
    names = {v: k for k, v in PI_FIELDS.items()}
    info = {}
    for f, v in r.obj(pkg[PKG_INFO]).items():
        name = names[f]
        if name in ("depends", "provides", "replaces", "install-if", "recommends"):
            info[name] = [r.blob(r.obj(d)[DEP_NAME]).decode() for d in r.arr(v)]
        elif name == "hashes":
            info[name] = r.blob(v).hex()
        elif name in ("installed-size", "build-time", "file-size", "provider-priority"):
            info[name] = r.int(v)
        else:
            info[name] = r.blob(v).decode()
    paths = []
    expected = []
    for di, dv in enumerate(r.arr(pkg.get(PKG_PATHS, NULL)), 1):
        d = r.obj(dv)
        acl = r.obj(d[DI_ACL])
        dname = (r.blob(d.get(DI_NAME, NULL)) or b"").decode()
        paths.append({"path": dname, "mode": r.int(acl[ACL_MODE]),
                      "user": r.blob(acl[ACL_USER]).decode(),
                      "group": r.blob(acl[ACL_GROUP]).decode(), "dir": True})
        for fi, fv in enumerate(r.arr(d.get(DI_FILES, NULL)), 1):
            f = r.obj(fv)
            facl = r.obj(f[FI_ACL])
            name = r.blob(f[FI_NAME]).decode()
            size = r.int(f.get(FI_SIZE, NULL)) or 0
            entry = {"path": f"{dname}/{name}" if dname else name,
                     "mode": r.int(facl[ACL_MODE]),
                     "user": r.blob(facl[ACL_USER]).decode(),
                     "group": r.blob(facl[ACL_GROUP]).decode(),
                     "size": size, "mtime": r.int(f.get(FI_MTIME, NULL)),
                     "sha256": r.blob(f[FI_HASHES]).hex(), "dir": False}
            paths.append(entry)
            if size:
                expected.append((di, fi, entry))
    scripts = {}
    snames = {v: k for k, v in SCRIPTS.items()}
    for f, v in r.obj(pkg.get(PKG_SCRIPTS, NULL)).items():
        scripts[snames[f]] = r.blob(v).decode()
    contents = {}
    data_blocks = [p for k, p in bl[1:] if k == BLOCK_DATA]
    if any(k not in (BLOCK_SIG, BLOCK_DATA) for k, _ in bl[1:]):
        raise ValueError("unexpected block type")
    if len(data_blocks) != len(expected):
        raise ValueError(f"{len(data_blocks)} data blocks for {len(expected)} files")
    for payload, (di, fi, entry) in zip(data_blocks, expected):
        if struct.unpack_from("<II", payload) != (di, fi):
            raise ValueError(f"data block for {entry['path']} out of order")
        body = payload[8:]
        if len(body) != entry["size"] or hashlib.sha256(body).hexdigest() != entry["sha256"]:
            raise ValueError(f"{entry['path']}: size or hash mismatch")
        contents[entry["path"]] = body
    return {"info": info, "paths": paths, "scripts": scripts, "data": contents,
            "adb": bl[0][1]}
