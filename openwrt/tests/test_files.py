"""The feed package's files agree with the daemon and the board profiles,
and every shell file passes shellcheck.

The UCI file is checked with the node's own binary (RE6ST_LITE, else
$CARGO_TARGET_DIR/debug/re6st-lite or target/debug/re6st-lite: build it with
`cargo build -p node-lite`)."""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import unittest

OPENWRT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(OPENWRT))
from pkgtools import build  # noqa: E402

FILES = OPENWRT / "re6st-lite" / "files"
SHELL_FILES = [
    FILES / "re6st.init",
    FILES / "re6st.uci-defaults",
    *sorted(p for p in (OPENWRT / "tests" / "standin").rglob("*") if p.is_file()),
]


def node_binary():
    if os.environ.get("RE6ST_LITE"):
        return pathlib.Path(os.environ["RE6ST_LITE"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", build.ROOT / "target"))
    return target / "debug" / "re6st-lite"


class ConfigFile(unittest.TestCase):
    def setUp(self):
        self.bin = node_binary()
        if not self.bin.is_file():
            self.fail(f"{self.bin} missing: run `cargo build -p node-lite` (or set RE6ST_LITE)")

    def run_node(self, *args):
        r = subprocess.run([str(self.bin), *args], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_shipped_config_is_the_daemons_defaults(self):
        self.assertEqual((FILES / "re6st.config").read_text(), self.run_node("config", "--defaults"),
                         "regenerate: re6st-lite config --defaults > "
                         "openwrt/re6st-lite/files/re6st.config")

    def test_shipped_config_parses(self):
        out = self.run_node("config", "-c", str(FILES / "re6st.config"))
        self.assertIn('state_dir: "/etc/re6st"', out)

    def test_init_script_defaults_are_the_daemons(self):
        # The init script reads port and interface itself (firewall, netifd).
        defaults = self.run_node("config", "--defaults")
        init = (FILES / "re6st.init").read_text()
        for name in ("port", "interface"):
            value = re.search(rf"#option {name} '([^']*)'", defaults).group(1)
            self.assertIn(f'config_get {name} "$NODE" {name} {value}\n', init)
        self.assertIn("dev:-" + re.search(r"#option interface '([^']*)'", defaults).group(1),
                      (FILES / "re6st.uci-defaults").read_text())

    def test_every_option_the_scripts_read_exists(self):
        defaults = self.run_node("config", "--defaults")
        known = set(re.findall(r"#(?:option|list) (\w+) ", defaults))
        init = (FILES / "re6st.init").read_text()
        used = set(re.findall(r'config_get(?:_bool)? \w+ "\$NODE" (\w+)', init))
        used |= set(re.search(r'BOARD_OPTIONS="([^"]*)"', init).group(1).split())
        used |= set(re.findall(r"re6st\.\$node\.(\w+)", (FILES / "re6st.uci-defaults").read_text()))
        self.assertTrue(used)
        self.assertLessEqual(used, known)
        self.assertEqual(set(build.BOARD_OPTIONS), set(re.search(
            r'BOARD_OPTIONS="([^"]*)"', init).group(1).split()))


class Generated(unittest.TestCase):
    def test_board_defaults_file_is_current(self):
        self.assertEqual((FILES / "board-defaults").read_text(), build.board_defaults(),
                         "regenerate: openwrt/build-packages --board-defaults > "
                         "openwrt/re6st-lite/files/board-defaults")

    def test_makefile_version_and_install(self):
        mk = build.makefile_vars()
        self.assertEqual(mk["PKG_VERSION"], build.cargo_version())
        self.assertRegex(mk["PKG_RELEASE"], r"^[0-9]+$")
        deps = mk["Package.DEPENDS"].split()
        self.assertEqual(deps[0], "$(RUST_ARCH_DEPENDS)")
        self.assertIn("@IPV6", deps)
        self.assertIn("+kmod-tun", deps)
        install = mk["Package/re6st-lite/install"]
        for src, dst in [("re6st.init", "/etc/init.d/re6st"), ("re6st.config", "/etc/config/re6st"),
                         ("re6st.uci-defaults", "/etc/uci-defaults/90-re6st-lite"),
                         ("board-defaults", "/usr/share/re6st/board-defaults")]:
            self.assertRegex(install, rf"\./files/{re.escape(src)} \$\(1\){re.escape(dst)}")
        self.assertIn("$(1)/usr/sbin/", install)
        self.assertEqual(mk["Package/re6st-lite/conffiles"].split(), ["/etc/config/re6st", "/etc/re6st/"])
        text = (OPENWRT / "re6st-lite" / "Makefile").read_text()
        self.assertIn("rust-package.mk", text)
        self.assertIn("$(eval $(call RustBinPackage,re6st-lite))", text)
        self.assertIn("$(eval $(call BuildPackage,re6st-lite))", text)

    def test_scripts_are_executable(self):
        for f in ("re6st.init", "re6st.uci-defaults"):
            self.assertTrue(os.access(FILES / f, os.X_OK), f)


class Shellcheck(unittest.TestCase):
    def test_every_shell_file(self):
        sc = shutil.which("shellcheck")
        if not sc:
            self.fail("shellcheck is not installed (apt-get install shellcheck)")
        self.assertGreater(len(SHELL_FILES), 8)
        for f in SHELL_FILES:
            with self.subTest(file=str(f.relative_to(OPENWRT))):
                # OpenWrt's /bin/sh is busybox ash; dash is the closest
                # dialect shellcheck knows (POSIX plus `local`).
                r = subprocess.run([sc, "-s", "dash", str(f)], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stdout)

    def test_generated_maintainer_scripts(self):
        # OpenWrt's own postinst/prerm text: shellcheck would flag its
        # unquoted $@, so they are checked for syntax under busybox ash.
        ipk, apk = build.scripts(build.Meta())
        for name, text in {**ipk, **apk}.items():
            with self.subTest(script=name):
                sh = shutil.which("busybox")
                cmd = [sh, "ash", "-n"] if sh else ["sh", "-n"]
                r = subprocess.run(cmd, input=text, text=True, capture_output=True)
                self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
