"""OpenWrt packages of re6st-lite without the SDK: one .ipk (opkg, OpenWrt
24.10 and older) and one .apk (apk-tools v3, OpenWrt 25.12 and newer) per
package architecture of boards/*.toml, from the static binaries of
cross/build.

The package's contents and metadata come from the feed package
(openwrt/re6st-lite/Makefile and files/), so the SDK build and this one
install the same files; the version is node-lite's (Cargo.toml). The
layouts follow OpenWrt's include/package-pack.mk and scripts/ipkg-build:
- ipk: gzip'd GNU tar of ./debian-binary, ./data.tar.gz, ./control.tar.gz;
  inner GNU tars sorted by name, numeric owner 0/0, no PAX headers;
  control fields in package-pack.mk's order; Installed-Size is the size of
  the uncompressed data tar; conffiles resolved to the files shipped.
- apk: `apk mkpkg`'s ADB layout (see adb.py), with /lib/apk/packages/
  <name>.list, .conffiles and .conffiles_static in the payload.
Both carry /lib/upgrade/keep.d/<name> for the conffile entries that are not
shipped files (the state directory), as package-pack.mk does.

The LuCI app (luci-app-re6st/) is one architecture-independent package
(ipk arch `all`, apk arch `noarch`), laid out as luci.mk does: htdocs/ to
/www/, root/ to /, and luci.mk's default postinst (clear LuCI's caches,
reload rpcd for the new ACL and plugin).
"""

import gzip
import hashlib
import io
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import tomllib

from . import adb

OPENWRT = pathlib.Path(__file__).resolve().parent.parent
ROOT = OPENWRT.parent
FEED_PKG = OPENWRT / "re6st-lite"
FILES = FEED_PKG / "files"
LUCI_APP = ROOT / "luci-app-re6st"

sys.path.insert(0, str(ROOT / "cross"))
import boards as profiles  # noqa: E402

GZIP_LEVEL = 9
BOARD_OPTIONS = ("max_tunnels", "max_routes", "peer_cache", "packet_buffers")


# -- metadata -----------------------------------------------------------------

def cargo_version():
    """node-lite's version, following `version.workspace = true`."""
    with open(ROOT / "node-lite" / "Cargo.toml", "rb") as f:
        pkg = tomllib.load(f)["package"]
    v = pkg["version"]
    if isinstance(v, dict) and v.get("workspace"):
        with open(ROOT / "Cargo.toml", "rb") as f:
            v = tomllib.load(f)["workspace"]["package"]["version"]
    return v


def makefile_vars(path=FEED_PKG / "Makefile"):
    """`NAME:=value` assignments and `define X ... endef` blocks."""
    text = pathlib.Path(path).read_text()
    out = {}
    for m in re.finditer(r"^define (\S+)\n(.*?)^endef", text, re.S | re.M):
        out[m.group(1)] = m.group(2)
    body = re.sub(r"^define .*?^endef", "", text, flags=re.S | re.M)
    for m in re.finditer(r"^\s*([A-Z_]+):=(.*)$", body, re.M):
        out.setdefault(m.group(1), m.group(2).strip())
    for m in re.finditer(r"^\s+([A-Z]+):=(.*)$", out.get("Package/re6st-lite", ""), re.M):
        out["Package." + m.group(1)] = m.group(2).strip()
    return out


class Meta:
    """What the control file and the apk info say."""

    def __init__(self, release=None, epoch=None):
        mk = makefile_vars()
        self.name = mk["PKG_NAME"]
        self.upstream = cargo_version()
        if mk["PKG_VERSION"] != self.upstream:
            raise SystemExit(f"openwrt/re6st-lite/Makefile PKG_VERSION {mk['PKG_VERSION']} "
                             f"differs from node-lite's version {self.upstream}")
        self.release = int(release if release is not None else mk["PKG_RELEASE"])
        self.version = f"{self.upstream}-r{self.release}"
        self.maintainer = mk["PKG_MAINTAINER"]
        self.license = mk["PKG_LICENSE"]
        self.section = mk["Package.SECTION"]
        self.url = mk["Package.URL"]
        self.source = f"feeds/re6st/{self.name}"
        deps = mk["Package.DEPENDS"].split()
        # package-pack.mk: +pkg are dependencies, @SYMBOL only menu conditions;
        # libc comes first for every non-kmod package.
        self.depends = ["libc"] + [d[1:] for d in deps if d.startswith("+")]
        self.description = mk["Package/re6st-lite/description"].strip("\n").splitlines()
        self.conffiles = mk["Package/re6st-lite/conffiles"].split()
        self.epoch = int(epoch if epoch is not None else source_date_epoch())

    @property
    def description_line(self):
        return " ".join(" ".join(self.description).split())


def source_date_epoch():
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def board_defaults(boards=None):
    """/usr/share/re6st/board-defaults: one line per board profile, smallest
    RAM first, read by the init script."""
    boards = profiles.load_boards() if boards is None else boards
    lines = [
        "# Memory-dependent defaults of re6st-lite per board (boards/*.toml),",
        "# generated by `openwrt/build-packages --board-defaults`. /etc/init.d/re6st",
        "# passes them as -o NAME=VALUE for options /etc/config/re6st leaves unset,",
        "# from the line of DISTRIB_TARGET, or else the first line of DISTRIB_ARCH.",
        "# target/subtarget arch ram_mb " + " ".join(BOARD_OPTIONS),
    ]
    for b in sorted(boards, key=lambda b: (b["hardware"]["ram_mb"], b["name"])):
        o = b["openwrt"]
        values = " ".join(str(b["node"][k]) for k in BOARD_OPTIONS)
        lines.append(f"{o['target']}/{o['subtarget']} {o['arch']} "
                     f"{b['hardware']['ram_mb']} {values}")
    return "\n".join(lines) + "\n"


# -- payload ------------------------------------------------------------------

class Item:
    def __init__(self, path, mode, data=None):
        self.path, self.mode, self.data = path, mode, data

    @property
    def is_dir(self):
        return self.data is None


def scripts(meta):
    """Maintainer scripts exactly as package-pack.mk generates them (the
    package has no postinst/prerm of its own: the uci-defaults file and the
    init script are handled by default_postinst / default_prerm)."""
    guard_script = '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0\n'
    functions = "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n" \
                ". ${IPKG_INSTROOT}/lib/functions.sh\n"
    apk_env = f'export root="${{IPKG_INSTROOT}}"\nexport pkgname="{meta.name}"\n'
    ipk = {
        "postinst": "#!/bin/sh\n" + guard_script + functions + "default_postinst $0 $@\n",
        "prerm": "#!/bin/sh\n" + functions + "default_prerm $0 $@\n",
    }
    post_install = ("#!/bin/sh\n" + guard_script + functions + apk_env
                    + "add_group_and_user\ndefault_postinst\n")
    apk = {
        "post-install": post_install,
        "post-upgrade": "#!/bin/sh\nexport PKG_UPGRADE=1\n"
                        + post_install.split("\n", 1)[1],
        "pre-deinstall": "#!/bin/sh\n" + functions + apk_env + "default_prerm\n",
    }
    return ipk, apk


def payload(meta, binary, arch, boards):
    """The installed files (Package/re6st-lite/install), directories first."""
    files = {
        "usr/sbin/re6st-lite": (0o755, binary),
        "etc/init.d/re6st": (0o755, (FILES / "re6st.init").read_bytes()),
        "etc/config/re6st": (0o600, (FILES / "re6st.config").read_bytes()),
        "etc/uci-defaults/90-re6st-lite": (0o755, (FILES / "re6st.uci-defaults").read_bytes()),
        "usr/share/re6st/board-defaults": (
            0o644, board_defaults([b for b in boards if b["openwrt"]["arch"] == arch]).encode()),
    }
    dirs = {"etc/re6st": 0o700}
    # package-pack.mk: conffiles that are not shipped files go to keep.d.
    keep = [c for c in meta.conffiles if c.strip("/") not in files]
    if keep:
        files[f"lib/upgrade/keep.d/{meta.name}"] = (0o644, "".join(k + "\n" for k in keep).encode())
    return files, dirs


def tree(files, dirs):
    """Items for every file and every directory above it, sorted by path."""
    all_dirs = dict(dirs)
    for p in list(files) + list(dirs):
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            all_dirs.setdefault("/".join(parts[:i]), 0o755)
    items = [Item(d, m) for d, m in all_dirs.items()]
    items += [Item(p, m, data) for p, (m, data) in files.items()]
    return sorted(items, key=lambda i: i.path.split("/"))


# -- ipk ----------------------------------------------------------------------

def gz(data):
    """gzip -n -9: no name, mtime 0."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def tar(items, mtime):
    """GNU tar like `tar --format=gnu --numeric-owner --sort=name -c .`."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.GNU_FORMAT) as t:
        for it in [Item("", 0o755)] + [i for i in items if i.path]:
            name = "./" + it.path + ("/" if it.is_dir and it.path else "")
            ti = tarfile.TarInfo(name if it.path else "./")
            ti.mode, ti.mtime = it.mode, mtime
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            if it.is_dir:
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = len(it.data)
                t.addfile(ti, io.BytesIO(it.data))
    return bio.getvalue()


def control_text(meta, arch, installed_size):
    fields = [
        ("Package", meta.name),
        ("Version", meta.version),
        ("Depends", ", ".join(meta.depends)),
        ("Source", meta.source),
        ("SourceName", meta.name),
        ("License", meta.license),
        ("Section", meta.section),
        ("SourceDateEpoch", str(meta.epoch)),
        ("URL", meta.url),
        ("Maintainer", meta.maintainer),
        ("Architecture", arch),
        ("Installed-Size", str(installed_size)),
    ]
    text = "".join(f"{k}: {v}\n" for k, v in fields)
    # package-pack.mk: `printf "Description: "; echo "$DESCRIPTION" | sed 's,^[[:space:]]*, ,g'`
    desc = [" " + line.lstrip() for line in meta.description]
    return text + "Description: " + "\n".join(desc) + "\n"


def build_ipk(meta, arch, binary, boards):
    files, dirs = payload(meta, binary, arch, boards)
    return ipk(meta, arch, files, dirs, scripts(meta)[0])


def ipk(meta, arch, files, dirs, ipk_scripts):
    items = tree(files, dirs)
    data_tar = tar(items, meta.epoch)
    conffiles = sorted(c for c in meta.conffiles if c.strip("/") in files)
    control = {"control": (0o644, control_text(meta, arch, len(data_tar)).encode())}
    for name, text in ipk_scripts.items():
        control[name] = (0o755, text.encode())
    if conffiles:
        control["conffiles"] = (0o644, "".join(c + "\n" for c in conffiles).encode())
    control_tar = tar(tree(control, {}), meta.epoch)
    outer = [
        Item("debian-binary", 0o644, b"2.0\n"),
        Item("data.tar.gz", 0o644, gz(data_tar)),
        Item("control.tar.gz", 0o644, gz(control_tar)),
    ]
    # ipkg-build names the three members explicitly, in this order (no "./").
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.GNU_FORMAT) as t:
        for it in outer:
            ti = tarfile.TarInfo("./" + it.path)
            ti.mode, ti.mtime, ti.size = it.mode, meta.epoch, len(it.data)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            t.addfile(ti, io.BytesIO(it.data))
    return gz(bio.getvalue())


def ipk_name(meta, arch):
    return f"{meta.name}_{meta.version}_{arch}.ipk"


# -- apk ----------------------------------------------------------------------

def build_apk(meta, arch, binary, boards):
    files, dirs = payload(meta, binary, arch, boards)
    return apk(meta, arch, files, dirs, scripts(meta)[1])


def apk(meta, arch, files, dirs, apk_scripts):
    pkgdir = "lib/apk/packages"
    # package-pack.mk: the list is every file and symlink (sorted) before the
    # conffiles lists are added; .conffiles is the Makefile's list as is;
    # .conffiles_static has "path sha256" of each conffile that is a file.
    listing = sorted("/" + p for p in list(files))
    files[f"{pkgdir}/{meta.name}.list"] = (0o644, "".join(p + "\n" for p in listing).encode())
    if meta.conffiles:
        files[f"{pkgdir}/{meta.name}.conffiles"] = (
            0o644, "".join(c + "\n" for c in meta.conffiles).encode())
    static = [f"{c} {hashlib.sha256(files[c.strip('/')][1]).hexdigest()}\n"
              for c in meta.conffiles if c.strip("/") in files]
    if static:
        files[f"{pkgdir}/{meta.name}.conffiles_static"] = (0o644, "".join(static).encode())
    entries = [adb.Entry(i.path, i.mode, i.data, mtime=meta.epoch) for i in tree(files, dirs)]
    info = {
        "name": meta.name,
        "version": meta.version,
        "description": meta.description_line,
        "arch": arch,
        "license": meta.license,
        "origin": meta.source,
        "url": meta.url,
        "maintainer": meta.maintainer,
        "depends": " ".join(meta.depends),
    }
    return adb.compress(adb.package(info, entries, apk_scripts))


def apk_name(meta):
    return f"{meta.name}-{meta.version}.apk"


# -- the LuCI app -------------------------------------------------------------

class LuciMeta:
    """luci-app-re6st's metadata, from its Makefile as luci.mk reads it."""

    def __init__(self, epoch=None):
        mk = makefile_vars(LUCI_APP / "Makefile")
        core = makefile_vars()
        self.name = LUCI_APP.name
        self.version = f"{mk['PKG_VERSION']}-r{mk['PKG_RELEASE']}"
        if mk["PKG_VERSION"] != cargo_version():
            raise SystemExit(f"{self.name}/Makefile PKG_VERSION {mk['PKG_VERSION']} "
                             f"differs from node-lite's version {cargo_version()}")
        self.maintainer = core["PKG_MAINTAINER"]
        self.license = mk["PKG_LICENSE"]
        self.section = "luci"
        self.url = core["Package.URL"]
        self.source = f"feeds/re6st/{self.name}"
        self.depends = ["libc"] + [d[1:] for d in mk["LUCI_DEPENDS"].split() if d.startswith("+")]
        self.description = [mk["LUCI_TITLE"]]
        self.description_line = mk["LUCI_TITLE"]
        self.conffiles = []
        self.epoch = int(epoch if epoch is not None else source_date_epoch())


def luci_payload():
    """htdocs/ to /www/, root/ to /, modes kept (the rpcd plugin runs)."""
    files = {}
    for base, dest in ((LUCI_APP / "htdocs", "www/"), (LUCI_APP / "root", "")):
        for f in sorted(base.rglob("*")):
            if f.is_file():
                mode = 0o755 if os.access(f, os.X_OK) else 0o644
                files[dest + str(f.relative_to(base))] = (mode, f.read_bytes())
    return files, {}


def luci_scripts(meta):
    """luci.mk's default postinst (the app has no uci-defaults of its own)."""
    body = ('[ -n "${IPKG_INSTROOT}" ] || {\n'
            '\trm -f /tmp/luci-indexcache*\n'
            '\trm -rf /tmp/luci-modulecache/\n'
            '\tkillall -HUP rpcd 2>/dev/null\n'
            '\texit 0\n'
            '}\n')
    return ({"postinst": "#!/bin/sh\n" + body},
            {"post-install": "#!/bin/sh\n" + body, "post-upgrade": "#!/bin/sh\n" + body})


def build_luci(meta):
    """(ipk name, ipk bytes, apk name, apk bytes)."""
    files, dirs = luci_payload()
    ipk_scripts, apk_scripts = luci_scripts(meta)
    return (f"{meta.name}_{meta.version}_all.ipk", ipk(meta, "all", files, dirs, ipk_scripts),
            f"{meta.name}-{meta.version}.apk",
            apk(meta, "noarch", dict(files), dirs, apk_scripts))
