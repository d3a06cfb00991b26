"""Structural checks of the .ipk and .apk packages.

With RE6ST_PACKAGES=DIR (set by `openwrt/build-packages --test`), the
packages in DIR/<arch>/ built from the real cross binaries are checked;
otherwise packages are built into a temporary directory from stand-in
binaries, so the checks run without cross/build.
"""

import gzip
import hashlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import unittest

OPENWRT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(OPENWRT))
from pkgtools import adb, build  # noqa: E402

FILES = OPENWRT / "re6st-lite" / "files"
CONTROL_ORDER = ["Package", "Version", "Depends", "Source", "SourceName", "License",
                 "Section", "SourceDateEpoch", "URL", "Maintainer", "Architecture",
                 "Installed-Size", "Description"]
# path: (mode, content file or None)
DATA = {
    "usr/sbin/re6st-lite": 0o755,
    "etc/init.d/re6st": 0o755,
    "etc/config/re6st": 0o600,
    "etc/uci-defaults/90-re6st-lite": 0o755,
    "usr/share/re6st/board-defaults": 0o644,
    "lib/upgrade/keep.d/re6st-lite": 0o644,
}
DIRS = {"etc/re6st": 0o700}
IPK_POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
IPK_PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""
APK_POST_INSTALL = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="re6st-lite"
add_group_and_user
default_postinst
"""
APK_PRE_DEINSTALL = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="re6st-lite"
default_prerm
"""


def setUpModule():
    global OUT, ARCHS, BINARIES, BOARDS, META, TMP
    BOARDS = build.profiles.load_boards()
    META = build.Meta()
    TMP = None
    if os.environ.get("RE6ST_PACKAGES"):
        OUT = pathlib.Path(os.environ["RE6ST_PACKAGES"])
        ARCHS = os.environ.get("RE6ST_PACKAGE_ARCHS", "").split() or list(
            build.profiles.package_archs(BOARDS))
        bins = pathlib.Path(os.environ.get("RE6ST_BIN_DIR", build.ROOT / "target" / "cross"))
        BINARIES = {a: (bins / a / "re6st-lite").read_bytes() for a in ARCHS}
        return
    TMP = tempfile.TemporaryDirectory()
    OUT = pathlib.Path(TMP.name)
    ARCHS = list(build.profiles.package_archs(BOARDS))
    BINARIES = {}
    for a in ARCHS:
        BINARIES[a] = b"\x7fELF stand-in for " + a.encode() + bytes(5000)
        (OUT / a).mkdir()
        (OUT / a / build.ipk_name(META, a)).write_bytes(build.build_ipk(META, a, BINARIES[a], BOARDS))
        (OUT / a / build.apk_name(META)).write_bytes(build.build_apk(META, a, BINARIES[a], BOARDS))


def tearDownModule():
    if TMP:
        TMP.cleanup()


def members(tar_bytes):
    """(member, contents) with member.name as written in its header (tarfile
    drops the trailing slash of directories when reading)."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as t:
        for m in t.getmembers():
            m.name = tar_bytes[m.offset:m.offset + 100].rstrip(b"\0").decode()
            out.append((m, t.extractfile(m).read() if m.isfile() else None))
    return out


def gunzip_checked(test, data, what):
    test.assertEqual(data[:3], b"\x1f\x8b\x08", f"{what}: not gzip")
    test.assertEqual(data[4:8], bytes(4), f"{what}: gzip mtime set (not gzip -n)")
    test.assertEqual(data[8], 2, f"{what}: not compressed at level 9")
    test.assertEqual(data[3] & 0x08, 0, f"{what}: gzip header carries a name")
    return gzip.decompress(data)


def check_tar_headers(test, tar_bytes, what):
    """GNU/ustar headers, no PAX extended headers, owner 0/0, no names."""
    for off in range(0, len(tar_bytes), 512):
        block = tar_bytes[off:off + 512]
        if block[257:263] in (b"ustar ", b"ustar\x00"):
            test.assertNotIn(block[156:157], (b"x", b"g"), f"{what}: PAX header")
    for m, _ in members(tar_bytes):
        test.assertEqual((m.uid, m.gid, m.uname, m.gname), (0, 0, "", ""), f"{what}: {m.name}")


def sh_syntax(test, script, what):
    r = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
    test.assertEqual(r.returncode, 0, f"{what}: {r.stderr}")


class Ipk(unittest.TestCase):
    def test_each_arch(self):
        for arch in ARCHS:
            with self.subTest(arch=arch):
                self.check(arch)

    def check(self, arch):
        path = OUT / arch / f"re6st-lite_{META.version}_{arch}.ipk"
        self.assertTrue(path.is_file(), path)
        outer = gunzip_checked(self, path.read_bytes(), "ipk")
        check_tar_headers(self, outer, "outer tar")
        m = members(outer)
        self.assertEqual([x.name for x, _ in m],
                         ["./debian-binary", "./data.tar.gz", "./control.tar.gz"])
        files = {x.name: d for x, d in m}
        self.assertEqual(files["./debian-binary"], b"2.0\n")

        control_tar = gunzip_checked(self, files["./control.tar.gz"], "control.tar.gz")
        check_tar_headers(self, control_tar, "control.tar")
        cm = {x.name: (x, d) for x, d in members(control_tar)}
        self.assertEqual(sorted(cm), ["./", "./conffiles", "./control", "./postinst", "./prerm"])
        self.assertEqual(cm["./postinst"][0].mode, 0o755)
        self.assertEqual(cm["./prerm"][0].mode, 0o755)
        self.assertEqual(cm["./control"][0].mode, 0o644)
        self.assertEqual(cm["./postinst"][1].decode(), IPK_POSTINST)
        self.assertEqual(cm["./prerm"][1].decode(), IPK_PRERM)
        sh_syntax(self, IPK_POSTINST, "postinst")
        self.assertEqual(cm["./conffiles"][1], b"/etc/config/re6st\n")

        data_tar = gunzip_checked(self, files["./data.tar.gz"], "data.tar.gz")
        check_tar_headers(self, data_tar, "data.tar")
        control = cm["./control"][1].decode()
        lines = control.splitlines()
        keys = [ln.split(":", 1)[0] for ln in lines if not ln.startswith(" ")]
        self.assertEqual(keys, CONTROL_ORDER)
        fields = {ln.split(":", 1)[0]: ln.split(":", 1)[1][1:] for ln in lines if not ln.startswith(" ")}
        self.assertEqual(fields["Package"], "re6st-lite")
        self.assertEqual(fields["Version"], f"{build.cargo_version()}-r{META.release}")
        self.assertEqual(fields["Depends"], "libc, kmod-tun, ca-bundle")
        self.assertEqual(fields["Architecture"], arch)
        self.assertEqual(fields["Section"], "net")
        self.assertEqual(fields["Installed-Size"], str(len(data_tar)))
        self.assertTrue(fields["Description"].startswith(" A compact node"), "two spaces")
        self.assertTrue(all(ln.startswith(" ") for ln in lines[len(keys):]))

        dm = members(data_tar)
        names = [x.name for x, _ in dm]
        self.assertEqual(names[0], "./")
        # tar --sort=name: depth first, each directory's entries by name.
        self.assertEqual(names, sorted(names, key=lambda n: n.rstrip("/").split("/")))
        entries = {x.name.strip("./").rstrip("/") if x.name != "./" else "": (x, d) for x, d in dm}
        self.check_payload(arch, {p: (x.mode, d) for p, (x, d) in entries.items()})
        for p, (x, _) in entries.items():
            if x.isdir():
                self.assertEqual(x.name[-1], "/", p)

        size = path.stat().st_size
        self.assertLess(size, len(BINARIES[arch]) + 64 * 1024)

    def check_payload(self, arch, entries):
        check_payload(self, arch, entries)


def check_payload(test, arch, entries, extra=()):
    """entries: {path: (mode, bytes or None)} of everything in the package."""
    dirs = {p for p, (_, d) in entries.items() if d is None}
    files = {p: (m, d) for p, (m, d) in entries.items() if d is not None}
    test.assertEqual(set(files), set(DATA) | set(extra))
    for p, mode in DATA.items():
        test.assertEqual(files[p][0] & 0o7777, mode, p)
    for p, mode in DIRS.items():
        test.assertEqual(entries[p][0] & 0o7777, mode, p)
    for d in dirs - set(DIRS):
        test.assertEqual(entries[d][0] & 0o7777, 0o755, d)
    for p in files:  # every parent directory is there
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            test.assertIn("/".join(parts[:i]), dirs, p)
    test.assertEqual(files["usr/sbin/re6st-lite"][1], BINARIES[arch])
    test.assertEqual(files["etc/config/re6st"][1], (FILES / "re6st.config").read_bytes())
    test.assertEqual(files["etc/init.d/re6st"][1], (FILES / "re6st.init").read_bytes())
    test.assertEqual(files["etc/uci-defaults/90-re6st-lite"][1],
                     (FILES / "re6st.uci-defaults").read_bytes())
    test.assertEqual(files["lib/upgrade/keep.d/re6st-lite"][1], b"/etc/re6st/\n")
    boards = files["usr/share/re6st/board-defaults"][1].decode().splitlines()
    rows = [ln.split() for ln in boards if not ln.startswith("#")]
    expected = [b for b in BOARDS if b["openwrt"]["arch"] == arch]
    test.assertEqual(len(rows), len(expected))
    test.assertTrue(all(r[1] == arch for r in rows))
    test.assertEqual([int(r[2]) for r in rows], sorted(int(r[2]) for r in rows))
    for b in expected:
        row = next(r for r in rows if r[0] == f"{b['openwrt']['target']}/{b['openwrt']['subtarget']}")
        test.assertEqual([int(x) for x in row[3:]], [b["node"][k] for k in build.BOARD_OPTIONS])


class Apk(unittest.TestCase):
    def test_each_arch(self):
        for arch in ARCHS:
            with self.subTest(arch=arch):
                self.check(arch)

    def check(self, arch):
        path = OUT / arch / f"re6st-lite-{META.version}.apk"
        data = path.read_bytes()
        self.assertEqual(data[:4], b"ADBd")
        p = adb.read_package(data)
        info = p["info"]
        self.assertEqual(info["name"], "re6st-lite")
        self.assertEqual(info["version"], META.version)
        self.assertEqual(info["arch"], arch)
        self.assertEqual(info["depends"], ["ca-bundle", "kmod-tun", "libc"])
        self.assertEqual(info["origin"], "feeds/re6st/re6st-lite")
        self.assertEqual(info["license"], "GPL-2.0-or-later")
        self.assertNotIn("\n", info["description"])
        self.assertTrue(info["description"].startswith("A compact node"))
        self.assertEqual(len(info["hashes"]), 40)
        sizes = sum(e["size"] for e in p["paths"] if not e["dir"])
        self.assertEqual(info["installed-size"], sizes)
        self.assertEqual(set(p["scripts"]), {"post-install", "post-upgrade", "pre-deinstall"})
        self.assertEqual(p["scripts"]["post-install"], APK_POST_INSTALL)
        self.assertEqual(p["scripts"]["post-upgrade"],
                         "#!/bin/sh\nexport PKG_UPGRADE=1\n" + APK_POST_INSTALL.split("\n", 1)[1])
        self.assertEqual(p["scripts"]["pre-deinstall"], APK_PRE_DEINSTALL)
        for name, text in p["scripts"].items():
            sh_syntax(self, text, name)
        for e in p["paths"]:
            self.assertEqual((e["user"], e["group"]), ("root", "root"), e["path"])
            if not e["dir"]:
                self.assertEqual(e["mtime"], META.epoch)
        entries = {e["path"]: (e["mode"], None if e["dir"] else p["data"].get(e["path"], b""))
                   for e in p["paths"]}
        meta_files = {f"lib/apk/packages/re6st-lite.{x}" for x in ("list", "conffiles", "conffiles_static")}
        check_payload(self, arch, entries, extra=meta_files)
        listing = entries["lib/apk/packages/re6st-lite.list"][1].decode().splitlines()
        self.assertEqual(listing, sorted("/" + f for f in DATA))
        self.assertEqual(entries["lib/apk/packages/re6st-lite.conffiles"][1],
                         b"/etc/config/re6st\n/etc/re6st/\n")
        config_sum = hashlib.sha256((FILES / "re6st.config").read_bytes()).hexdigest()
        self.assertEqual(entries["lib/apk/packages/re6st-lite.conffiles_static"][1].decode(),
                         f"/etc/config/re6st {config_sum}\n")
        self.assertLess(path.stat().st_size, len(BINARIES[arch]) + 64 * 1024)


class Luci(unittest.TestCase):
    """luci-app-re6st: one package for every architecture."""

    def setUp(self):
        self.meta = build.LuciMeta()
        self.ipk_name, self.ipk, self.apk_name, self.apk = build.build_luci(self.meta)
        app = build.LUCI_APP
        self.expected = {"www/" + str(f.relative_to(app / "htdocs")): f
                         for f in (app / "htdocs").rglob("*") if f.is_file()}
        self.expected.update({str(f.relative_to(app / "root")): f
                              for f in (app / "root").rglob("*") if f.is_file()})

    def test_ipk(self):
        self.assertEqual(self.ipk_name, f"luci-app-re6st_{build.cargo_version()}-r1_all.ipk")
        outer = {x.name: d for x, d in members(gunzip_checked(self, self.ipk, "ipk"))}
        control = {x.name: d for x, d in members(gzip.decompress(outer["./control.tar.gz"]))}
        self.assertEqual(sorted(control), ["./", "./control", "./postinst"])
        fields = dict(ln.split(": ", 1) for ln in control["./control"].decode().splitlines()
                      if not ln.startswith(" "))
        self.assertEqual(fields["Architecture"], "all")
        self.assertEqual(fields["Depends"], "libc, re6st-lite, luci-base")
        self.assertEqual(fields["Section"], "luci")
        sh_syntax(self, control["./postinst"].decode(), "postinst")
        self.assertIn("killall -HUP rpcd", control["./postinst"].decode())
        data = {x.name[2:]: (x.mode, d) for x, d in members(gzip.decompress(outer["./data.tar.gz"]))
                if d is not None}
        self.assertEqual(set(data), set(self.expected))
        for path, f in self.expected.items():
            self.assertEqual(data[path][1], f.read_bytes(), path)
        self.assertEqual(data["usr/libexec/rpcd/luci.re6st"][0], 0o755)
        self.assertEqual(data["www/luci-static/resources/view/re6st/overview.js"][0], 0o644)

    def test_apk(self):
        self.assertEqual(self.apk_name, f"luci-app-re6st-{build.cargo_version()}-r1.apk")
        p = adb.read_package(self.apk)
        self.assertEqual(p["info"]["arch"], "noarch")
        self.assertEqual(p["info"]["depends"], ["libc", "luci-base", "re6st-lite"])
        self.assertEqual(set(p["scripts"]), {"post-install", "post-upgrade"})
        files = {e["path"] for e in p["paths"] if not e["dir"]}
        self.assertEqual(files, set(self.expected) | {"lib/apk/packages/luci-app-re6st.list"})

    def test_json_files_and_plugin(self):
        """The menu and ACL as LuCI and rpcd read them; the ACL grants only
        methods the plugin lists, and the views call only granted ones."""
        import json
        import re
        app = build.LUCI_APP
        menu = json.loads((app / "root/usr/share/luci/menu.d/luci-app-re6st.json").read_text())
        acl = json.loads((app / "root/usr/share/rpcd/acl.d/luci-app-re6st.json").read_text())
        self.assertEqual(list(acl), ["luci-app-re6st"])
        for path, entry in menu.items():
            self.assertTrue(path.startswith("admin/services/re6st"), path)
            action = entry["action"]
            if action["type"] == "view":
                self.assertTrue((app / "htdocs/luci-static/resources/view" / (action["path"] + ".js")).is_file())
        self.assertEqual(menu["admin/services/re6st"]["depends"]["acl"], ["luci-app-re6st"])
        granted = {}
        for mode in ("read", "write"):
            for obj, methods in acl["luci-app-re6st"][mode].get("ubus", {}).items():
                granted.setdefault(obj, set()).update(methods)
        views = "".join(f.read_text() for f in (app / "htdocs").rglob("*.js"))
        called = set(re.findall(r"object: '([\w.]+)', method: '(\w+)'", views))
        self.assertGreaterEqual(len(called), 6, called)
        for obj, method in called:
            self.assertIn(method, granted.get(obj, ()), f"{obj}.{method} not granted")
        plugin = (app / "root/usr/libexec/rpcd/luci.re6st").read_text()
        self.assertTrue(plugin.startswith("#!/bin/sh"))
        self.assertIn("re6st-lite rpcd", plugin)
        # The methods the ACL grants are the plugin's own (rpcd's `list`).
        binary = build.ROOT / "target/debug/re6st-lite"
        if binary.is_file():  # the step builds it first; standalone runs may not
            out = subprocess.run([str(binary), "rpcd", "list"], capture_output=True, text=True,
                                 check=True).stdout
            self.assertLessEqual(granted["luci.re6st"], set(json.loads(out)))


class Names(unittest.TestCase):
    def test_file_names(self):
        self.assertEqual(build.ipk_name(META, "mipsel_24kc"),
                         f"re6st-lite_{build.cargo_version()}-r{META.release}_mipsel_24kc.ipk")
        self.assertEqual(build.apk_name(META), f"re6st-lite-{build.cargo_version()}-r{META.release}.apk")

    def test_reproducible(self):
        arch = ARCHS[0]
        one = build.build_ipk(META, arch, BINARIES[arch], BOARDS)
        two = build.build_ipk(META, arch, BINARIES[arch], BOARDS)
        self.assertEqual(one, two)
        self.assertEqual(build.build_apk(META, arch, BINARIES[arch], BOARDS),
                         build.build_apk(META, arch, BINARIES[arch], BOARDS))


if __name__ == "__main__":
    unittest.main()
