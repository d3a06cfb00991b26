"""Off-device tests of the OpenWrt service: NOT a real OpenWrt.

No OpenWrt runtime is available here. This harness runs the package's
shell files (/etc/init.d/re6st, the uci-defaults, the ipk maintainer
scripts) under busybox ash, as OpenWrt does, in a chroot holding busybox and
stand-ins written for these tests (openwrt/tests/standin/): rc.common,
/lib/functions.sh (UCI reading, default_postinst/default_prerm),
/lib/functions/procd.sh, uci, ubus, logger and re6st-lite. The stand-ins
record every call in /harness/calls; the tests assert on the procd instances
(command line, respawn, files, triggers), on the UCI files and on the calls
made. What this cannot show: procd's own behaviour (restarts, respawn
timing), netifd, fw4 and odhcpd acting on the configuration written.
"""

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tarfile
import io
import tempfile
import unittest

OPENWRT = pathlib.Path(__file__).resolve().parent.parent
STANDIN = OPENWRT / "tests" / "standin"
FILES = OPENWRT / "re6st-lite" / "files"
sys.path.insert(0, str(OPENWRT))
from pkgtools import build  # noqa: E402

BUSYBOX = shutil.which("busybox")
# OpenWrt's busybox has flock; Debian's has not: util-linux's goes in.
FLOCK = shutil.which("flock")
OWN_TOOLS = {"uci", "ubus", "logger"}

NETWORK = """config interface 'loopback'
	option device 'lo'
	option proto 'static'

config interface 'lan'
	option device 'br-lan'
	option proto 'static'
	option ipaddr '192.168.1.1'
	option netmask '255.255.255.0'
	option ip6assign '60'

config interface 'wan'
	option device 'eth1'
	option proto 'dhcp'
"""
FIREWALL = """config defaults
	option input 'REJECT'

config zone
	option name 'lan'
	list network 'lan'

config zone
	option name 'wan'
	list network 'wan'
"""
REGISTERED = """state_dir=/etc/re6st
registered=1
state=registered
prefix=2001:db8:42:1::/64
address=2001:db8:42:1::1
network=2001:db8:42::/48
cn=1/16
expires='2027-11-21 19:35:17 UTC'
expired=0
"""
UNREGISTERED = "state_dir=/etc/re6st\nregistered=0\nstate=none\n"


def libraries(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                libs.append(p)
                break
    return libs


class Root:
    """A chroot with busybox, the stand-ins and the package's files."""

    def __init__(self, config="config node 'node'\n", target="ramips/mt76x8",
                 arch="mipsel_24kc", info=REGISTERED):
        self.tmp = tempfile.TemporaryDirectory(prefix="re6st-openwrt-standin-")
        self.path = pathlib.Path(self.tmp.name)
        r = self.path
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/config", "etc/rc.d", "etc/init.d",
                  "etc/uci-defaults", "usr/share/re6st", "harness", "tmp", "var/run", "var/lock",
                  "usr/lib/opkg/info"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "dev").mkdir()
        if os.getuid() == 0:
            os.mknod(r / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        else:
            (r / "dev/null").write_text("")
        shutil.copy2(BUSYBOX, r / "bin" / "busybox")
        for lib in libraries(BUSYBOX):
            dst = r / lib.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib, dst)
        applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True,
                                 text=True).stdout.split()
        for a in applets:
            dst = r / a
            if dst.name in OWN_TOOLS or dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to("/bin/busybox")
        shutil.copy2(FLOCK, r / "usr/bin/flock")
        for lib in libraries(FLOCK):
            dst = r / lib.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib, dst)
        if not (r / "bin" / "sh").exists():
            (r / "bin" / "sh").symlink_to("/bin/busybox")
        shutil.copytree(STANDIN, r, dirs_exist_ok=True, symlinks=True)
        shutil.copy2(FILES / "re6st.init", r / "etc/init.d/re6st")
        shutil.copy2(FILES / "re6st.uci-defaults", r / "etc/uci-defaults/90-re6st-lite")
        for f in ("etc/init.d/re6st", "etc/uci-defaults/90-re6st-lite"):
            (r / f).chmod(0o755)
        (r / "usr/share/re6st/board-defaults").write_text(build.board_defaults())
        (r / "etc/config/re6st").write_text(config)
        (r / "etc/config/network").write_text(NETWORK)
        (r / "etc/config/firewall").write_text(FIREWALL)
        (r / "etc/openwrt_release").write_text(
            f"DISTRIB_ID='OpenWrt'\nDISTRIB_TARGET='{target}'\nDISTRIB_ARCH='{arch}'\n")
        (r / "harness/calls").write_text("")
        self.set_info(info)

    def set_info(self, text, after_register=None, register_rc=0):
        (self.path / "harness/info").write_text(text)
        if after_register is not None:
            (self.path / "harness/info.registered").write_text(after_register)
        (self.path / "harness/register-rc").write_text(str(register_rc))

    def cleanup(self):
        self.tmp.cleanup()

    def sh(self, command, check=True):
        """Run `command` under busybox ash inside the root; returns the calls
        recorded during it."""
        before = len(self.read("harness/calls").splitlines())
        chroot = ["chroot", str(self.path), "/bin/sh", "-c", command]
        if os.getuid() != 0:
            chroot = ["unshare", "--map-root-user"] + chroot
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp"}
        r = subprocess.run(chroot, env=env, capture_output=True, text=True, timeout=60)
        self.last = r
        if check and r.returncode != 0:
            raise AssertionError(f"{command}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return Calls(self.read("harness/calls").splitlines()[before:])

    def read(self, path):
        return (self.path / path).read_text()

    def uci(self, key):
        r = self.sh(f"uci -q get '{key}'", check=False)
        return self.last.stdout.strip() if self.last.returncode == 0 else None


class Calls:
    """The recorded calls, and the procd service they describe."""

    def __init__(self, lines):
        self.lines = [ln.split("\t") for ln in lines]
        self.instances = {}
        self.triggers = []
        self.services = 0
        for c in self.lines:
            if c[0] == "service_open":
                self.services += 1
                self.instances = {}
            elif c[0] == "instance_open":
                self.instances[c[1]] = {}
            elif c[0] in ("param", "append"):
                inst = self.instances[c[1]]
                if c[0] == "param":
                    inst[c[2]] = c[3:]
                else:
                    inst.setdefault(c[2], []).extend(c[3:])
            elif c[0] == "reload_trigger":
                self.triggers.append(c[1:])

    def of(self, tool):
        return [c[1:] for c in self.lines if c[0] == tool]

    def logged(self, text):
        return any(text in " ".join(c) for c in self.of("logger"))


def needs_harness(cls):
    if not BUSYBOX:
        return unittest.skip("busybox is not installed (apt-get install busybox)")(cls)
    if os.getuid() != 0 and not shutil.which("unshare"):
        return unittest.skip("needs root or unshare for chroot")(cls)
    return cls


@needs_harness
class InitScript(unittest.TestCase):
    def root(self, **kw):
        r = Root(**kw)
        self.addCleanup(r.cleanup)
        return r

    def test_registered_small_board(self):
        r = self.root()
        calls = r.sh("/etc/init.d/re6st start")
        self.assertEqual(calls.services, 1)
        self.assertEqual(list(calls.instances), ["node"])
        node = calls.instances["node"]
        self.assertEqual(node["command"], [
            "/usr/sbin/re6st-lite", "--syslog", "run", "-c", "/etc/config/re6st",
            "-o", "max_tunnels=16", "-o", "max_routes=1024",
            "-o", "peer_cache=100", "-o", "packet_buffers=64"])
        self.assertEqual(node["respawn"], [])
        self.assertEqual(node["stdout"], ["1"])
        self.assertEqual(node["stderr"], ["1"])
        self.assertEqual(node["file"], ["/etc/config/re6st", "/usr/sbin/re6st-lite"])
        self.assertEqual(calls.triggers, [["re6st"]])
        self.assertIn(["info", "-c", "/etc/config/re6st"], calls.of("re6st-lite"))

    def test_expired_certificate_starts_the_node_which_renews_it(self):
        expired = REGISTERED.replace("registered=1\nstate=registered", "registered=0\nstate=expired")
        r = self.root(info=expired)
        calls = r.sh("/etc/init.d/re6st start")
        self.assertEqual(list(calls.instances), ["node"])
        self.assertTrue(calls.logged("the node renews it"))
        # The register instance, had it been running, hands over to the node.
        calls = r.sh("/etc/init.d/re6st register")
        self.assertNotIn("register", [c[1] for c in calls.of("re6st-lite") if len(c) > 1])

    def test_bigger_board_and_options_set_in_the_config(self):
        r = self.root(config="config node 'node'\n\toption max_tunnels '10'\n",
                      target="ramips/mt7621")
        node = r.sh("/etc/init.d/re6st start").instances["node"]
        self.assertEqual(node["command"][5:], [
            "-o", "max_routes=4096", "-o", "peer_cache=200", "-o", "packet_buffers=128"])

    def test_unknown_board_takes_the_smallest_of_its_arch(self):
        r = self.root(target="ramips/mt7620-unknown", arch="mipsel_24kc")
        self.assertIn("max_tunnels=16", r.sh("/etc/init.d/re6st start").instances["node"]["command"])
        r = self.root(target="x86/64", arch="x86_64")
        self.assertIn("max_routes=65536", r.sh("/etc/init.d/re6st start").instances["node"]["command"])
        r = self.root(target="sunxi/cortexa7", arch="arm_cortex-a7_neon-vfpv4-unknown")
        self.assertEqual(r.sh("/etc/init.d/re6st start").instances["node"]["command"],
                         ["/usr/sbin/re6st-lite", "--syslog", "run", "-c", "/etc/config/re6st"])

    def test_anonymous_section_is_found(self):
        r = self.root(config="config node\n\toption port '1200'\n")
        r.sh("sh /etc/uci-defaults/90-re6st-lite")
        self.assertEqual(r.uci("firewall.re6st_tunnel.dest_port"), "1200")
        self.assertIn("node", r.sh("/etc/init.d/re6st start").instances)

    def test_token_registration_then_node(self):
        cfg = ("config node 'node'\n\toption registry 'http://re6st.example/'\n"
               "\toption token 'T0k3n'\n\toption fingerprint 'sha256:" + "ab" * 32 + "'\n")
        r = self.root(config=cfg, info=UNREGISTERED)
        calls = r.sh("/etc/init.d/re6st start")
        self.assertEqual(list(calls.instances), ["register"])
        reg = calls.instances["register"]
        self.assertEqual(reg["command"], ["/etc/init.d/re6st", "register"])
        self.assertEqual(reg["respawn"], ["3600", "300", "0"])
        self.assertEqual(reg["file"], ["/etc/config/re6st"])
        self.assertNotIn("T0k3n", " ".join(reg["command"]))  # not in procd's instance data

        r.set_info(UNREGISTERED, after_register=REGISTERED, register_rc=0)
        calls = r.sh("/etc/init.d/re6st register")
        registers = [c for c in calls.of("re6st-lite") if c[:2] == ["--syslog", "register"]]
        self.assertEqual(registers, [[
            "--syslog", "register", "-c", "/etc/config/re6st",
            "--progress", "/var/run/re6st/registration.json"]])
        self.assertEqual(calls.services, 1)  # the reload
        self.assertEqual(list(calls.instances), ["node"])

    def test_failed_registration_exits_for_a_retry(self):
        cfg = "config node 'node'\n\toption registry 'http://r/'\n\toption anonymous '1'\n"
        r = self.root(config=cfg, info=UNREGISTERED)
        r.set_info(UNREGISTERED, register_rc=10)
        calls = r.sh("/etc/init.d/re6st register", check=False)
        self.assertEqual(r.last.returncode, 10)
        self.assertIn(["--syslog", "register", "-c", "/etc/config/re6st",
                       "--progress", "/var/run/re6st/registration.json"],
                      calls.of("re6st-lite"))
        self.assertEqual(calls.services, 0)
        self.assertTrue(calls.logged("registration failed (exit 10)"))

    def test_registration_does_not_hold_the_service_lock(self):
        cfg = "config node 'node'\n\toption registry 'http://r/'\n\toption anonymous '1'\n"
        r = self.root(config=cfg, info=UNREGISTERED)
        r.set_info(UNREGISTERED, register_rc=10)
        r.sh("/etc/init.d/re6st register", check=False)
        self.assertEqual(r.read("harness/register-lock").strip(), "free")

    def test_refused_registration_waits_for_a_config_change(self):
        for rc in (13, 16, 17):
            with self.subTest(rc=rc):
                cfg = "config node 'node'\n\toption registry 'http://r/'\n\toption token 'bad'\n"
                r = self.root(config=cfg, info=UNREGISTERED)
                r.set_info(UNREGISTERED, register_rc=rc)
                calls = r.sh("/etc/init.d/re6st register")  # exit 0: procd's respawn is moot
                self.assertTrue(calls.logged(f"registration refused (exit {rc})"))
                self.assertEqual(calls.services, 1)  # the reload
                self.assertEqual(calls.instances, {})  # no register instance any more
                calls = r.sh("/etc/init.d/re6st start")
                self.assertEqual(calls.instances, {})
                self.assertTrue(calls.logged("change /etc/config/re6st to try again"))
                # A new token: registration again.
                (r.path / "etc/config/re6st").write_text(cfg.replace("bad", "good"))
                self.assertIn("register", r.sh("/etc/init.d/re6st start").instances)

    def test_email_asks_once_then_waits_for_the_token(self):
        cfg = "config node 'node'\n\toption registry 'http://r/'\n\toption email 'me@example.org'\n"
        r = self.root(config=cfg, info=UNREGISTERED)
        self.assertIn("register", r.sh("/etc/init.d/re6st start").instances)
        r.set_info(UNREGISTERED, register_rc=2)  # token mailed, none on stdin
        calls = r.sh("/etc/init.d/re6st register")
        self.assertIn(["--syslog", "register", "-c", "/etc/config/re6st",
                       "--progress", "/var/run/re6st/registration.json"], calls.of("re6st-lite"))
        self.assertEqual(r.read("etc/re6st/token-requested"), "me@example.org\n")
        self.assertEqual(calls.services, 1)
        self.assertEqual(calls.instances, {})  # no new request at each reload
        self.assertTrue(calls.logged("put it in option token"))

    def test_nothing_to_do_without_registry(self):
        r = self.root(info=UNREGISTERED)
        calls = r.sh("/etc/init.d/re6st start")
        self.assertEqual(calls.instances, {})
        self.assertTrue(calls.logged("not registered"))

    def test_bad_config_starts_nothing(self):
        r = self.root()
        (r.path / "harness/info-rc").write_text("2")
        calls = r.sh("/etc/init.d/re6st start", check=False)
        self.assertEqual(calls.instances, {})
        self.assertTrue(calls.logged("check /etc/config/re6st"))

    def test_prefix_to_netifd_and_port_to_firewall(self):
        r = self.root(config="config node 'node'\n\toption port '1300'\n"
                             "\toption interface 'ovl0'\n")
        r.sh("sh /etc/uci-defaults/90-re6st-lite")
        self.assertEqual(r.uci("network.re6st.device"), "ovl0")
        self.assertIsNone(r.uci("network.re6st.ip6prefix"))
        (r.path / "etc/config/re6st").write_text(
            "config node 'node'\n\toption port '1301'\n\toption interface 'ovl0'\n")
        calls = r.sh("/etc/init.d/re6st start")
        self.assertEqual(calls.instances["node"]["command"][-2:], ["-o", "ra=0"])
        self.assertEqual(r.uci("network.re6st.ip6prefix"), "2001:db8:42:1::/64")
        self.assertEqual(r.uci("network.re6st.ip6addr"), "2001:db8:42:1::1/128")
        self.assertEqual(r.uci("firewall.re6st_tunnel.dest_port"), "1301")
        self.assertIn(["commit", "network"], [c[-2:] for c in calls.of("uci")])
        events = [c[-1] for c in calls.of("ubus") if c[:3] == ["call", "service", "event"]]
        self.assertIn('{"type":"config.change","data":{"package":"network"}}', events)
        self.assertIn('{"type":"config.change","data":{"package":"firewall"}}', events)
        # Nothing changed: nothing committed or reloaded on the next start.
        calls = r.sh("/etc/init.d/re6st start")
        self.assertEqual([c for c in calls.of("uci") if "commit" in c], [])
        self.assertEqual(calls.of("ubus"), [])

    def test_long_prefix_is_not_delegated(self):
        r = self.root(info=REGISTERED.replace("1::/64", "0:1000::/68"))
        r.sh("sh /etc/uci-defaults/90-re6st-lite")
        calls = r.sh("/etc/init.d/re6st start")
        self.assertIsNone(r.uci("network.re6st.ip6prefix"))
        self.assertTrue(calls.logged("longer than /64"))
        self.assertIn("node", calls.instances)

    def test_opt_out_by_deleting_the_interface(self):
        r = self.root()
        calls = r.sh("/etc/init.d/re6st start")  # no uci-defaults: no network.re6st
        self.assertIsNone(r.uci("network.re6st"))
        self.assertEqual([c for c in calls.of("uci") if c[0] in ("set", "-q") and "set" in c], [])

    def test_stop_reload_enable(self):
        r = self.root()
        calls = r.sh("/etc/init.d/re6st stop")
        self.assertIn(["re6st", ""], [c[:2] for c in calls.of("kill")])
        calls = r.sh("/etc/init.d/re6st reload")
        self.assertEqual(calls.services, 1)
        self.assertIn("node", calls.instances)
        r.sh("/etc/init.d/re6st enable")
        self.assertEqual(os.readlink(r.path / "etc/rc.d/S90re6st"), "../init.d/re6st")
        self.assertEqual(os.readlink(r.path / "etc/rc.d/K10re6st"), "../init.d/re6st")
        r.sh("/etc/init.d/re6st disable")
        self.assertFalse((r.path / "etc/rc.d/S90re6st").exists())


@needs_harness
class UciDefaults(unittest.TestCase):
    def test_firewall_network_and_node(self):
        r = Root()
        self.addCleanup(r.cleanup)
        r.sh("sh /etc/uci-defaults/90-re6st-lite")
        self.assertEqual(r.uci("network.re6st"), "interface")
        self.assertEqual(r.uci("network.re6st.proto"), "static")
        self.assertEqual(r.uci("network.re6st.device"), "re6st0")
        self.assertEqual(r.uci("network.lan.ip6assign"), "64")
        self.assertEqual(r.uci("firewall.re6st"), "zone")
        self.assertEqual(r.uci("firewall.re6st.name"), "re6st")
        self.assertEqual(r.uci("firewall.re6st.network"), "re6st")
        self.assertEqual(r.uci("firewall.re6st.input"), "REJECT")
        self.assertEqual(r.uci("firewall.re6st.forward"), "REJECT")
        fw = {(r.uci(f"firewall.{s}.src"), r.uci(f"firewall.{s}.dest"))
              for s in ("re6st_lan", "lan_re6st")}
        self.assertEqual(fw, {("re6st", "lan"), ("lan", "re6st")})
        self.assertEqual(r.uci("firewall.re6st_tunnel"), "rule")
        self.assertEqual([r.uci(f"firewall.re6st_tunnel.{o}") for o in ("src", "proto", "dest_port", "target")],
                         ["wan", "udp", "1194", "ACCEPT"])
        self.assertEqual(r.uci("firewall.re6st_icmp.family"), "ipv6")
        # The documented /etc/config/re6st is left as it is.
        self.assertEqual(r.read("etc/config/re6st"), "config node 'node'\n")
        # The existing zones are untouched.
        self.assertEqual(r.uci("firewall.@zone[1].name"), "wan")
        # A second run changes nothing.
        files = {f: r.read(f"etc/config/{f}") for f in ("network", "firewall", "re6st")}
        calls = r.sh("sh /etc/uci-defaults/90-re6st-lite")
        self.assertEqual(files, {f: r.read(f"etc/config/{f}") for f in files})
        self.assertEqual(calls.of("ubus"), [])

    def test_an_upgrade_keeps_what_the_admin_changed(self):
        """Every upgrade runs the uci-defaults again (default_postinst): the
        admin's deletion of network.re6st and of the tunnel rule, and their
        ip6assign, stay; nothing is announced."""
        r = Root()
        self.addCleanup(r.cleanup)
        calls = r.sh("sh /etc/uci-defaults/90-re6st-lite")
        self.assertEqual(len(calls.of("ubus")), 2)
        r.sh("uci delete network.re6st && uci set network.lan.ip6assign=60 && "
             "uci delete firewall.re6st_tunnel && uci commit network && uci commit firewall")
        files = {f: r.read(f"etc/config/{f}") for f in ("network", "firewall")}
        calls = r.sh("sh /etc/uci-defaults/90-re6st-lite")  # the upgrade's run
        self.assertEqual(files, {f: r.read(f"etc/config/{f}") for f in files})
        self.assertIsNone(r.uci("network.re6st"))
        self.assertEqual(calls.of("ubus"), [])

    def test_only_what_changed_is_announced(self):
        r = Root()
        self.addCleanup(r.cleanup)
        net = NETWORK.replace("option ip6assign '60'", "option ip6assign '64'")
        net += "\nconfig interface 're6st'\n\toption proto 'static'\n\toption device 're6st0'\n"
        (r.path / "etc/config/network").write_text(net)
        calls = r.sh("sh /etc/uci-defaults/90-re6st-lite")
        events = " ".join(" ".join(c) for c in calls.of("ubus"))
        self.assertIn('"package":"firewall"', events)
        self.assertNotIn('"package":"network"', events)

    def test_user_choices_are_kept(self):
        r = Root(config="config node 'node'\n\toption ra '1'\n")
        self.addCleanup(r.cleanup)
        net = NETWORK.replace("option ip6assign '60'", "option ip6assign '64'")
        (r.path / "etc/config/network").write_text(net)
        r.sh("sh /etc/uci-defaults/90-re6st-lite")
        self.assertEqual(r.uci("network.lan.ip6assign"), "64")
        # ra set in the config: the node keeps sending its own advertisements.
        self.assertNotIn("ra=0", r.sh("/etc/init.d/re6st start").instances["node"]["command"])


@needs_harness
class IpkScripts(unittest.TestCase):
    """The ipk's postinst and prerm, with the package's files installed from
    its data.tar.gz, against the stand-in default_postinst/default_prerm."""

    def test_postinst_runs_uci_defaults_enables_and_starts(self):
        meta = build.Meta()
        boards = build.profiles.load_boards()
        ipk = build.build_ipk(meta, "x86_64", b"binary", boards)
        r = Root()
        self.addCleanup(r.cleanup)
        os.remove(r.path / "etc/uci-defaults/90-re6st-lite")
        os.remove(r.path / "etc/init.d/re6st")
        stub = (r.path / "usr/sbin/re6st-lite").read_bytes()
        with tarfile.open(fileobj=io.BytesIO(ipk), mode="r:gz") as outer:
            data = outer.extractfile("./data.tar.gz").read()
            control = outer.extractfile("./control.tar.gz").read()
        listing = []
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
            for m in t.getmembers():
                if not m.isfile():
                    continue
                listing.append(m.name[1:])
                if m.name != "./etc/config/re6st":  # keep the test's config
                    dst = r.path / m.name[2:]
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(t.extractfile(m).read())
                    dst.chmod(m.mode)
        (r.path / "usr/sbin/re6st-lite").write_bytes(stub)
        info = r.path / "usr/lib/opkg/info"
        (info / "re6st-lite.list").write_text("".join(p + "\n" for p in listing))
        with tarfile.open(fileobj=io.BytesIO(control), mode="r:gz") as t:
            for name in ("postinst", "prerm"):
                (info / f"re6st-lite.{name}").write_bytes(t.extractfile(f"./{name}").read())
                (info / f"re6st-lite.{name}").chmod(0o755)
        calls = r.sh("/usr/lib/opkg/info/re6st-lite.postinst configure")
        self.assertFalse((r.path / "etc/uci-defaults/90-re6st-lite").exists())  # ran, deleted
        self.assertEqual(r.uci("firewall.re6st"), "zone")
        self.assertTrue((r.path / "etc/rc.d/S90re6st").is_symlink())
        self.assertEqual(calls.services, 1)
        self.assertIn("node", calls.instances)
        calls = r.sh("/usr/lib/opkg/info/re6st-lite.prerm remove")
        self.assertFalse((r.path / "etc/rc.d/S90re6st").exists())
        self.assertTrue(calls.of("kill"))
        # IPKG_NO_SCRIPT=1 skips the postinst.
        calls = r.sh("IPKG_NO_SCRIPT=1 /usr/lib/opkg/info/re6st-lite.postinst configure")
        self.assertEqual(calls.services, 0)


if __name__ == "__main__":
    unittest.main()
