#!/usr/bin/env python3
"""A STAND-IN for what serves LuCI on a router (uhttpd + rpcd + procd),
written for the tests: not OpenWrt's code.

- GET: the app's htdocs (/luci-static/...), the stand-in runtime (/standin/)
  and the page (/ = index.html).
- POST /ubus: rpcd's JSON-RPC `call [session, object, method, args]`, each
  call checked against the app's real ACL file (read and write grants, as
  rpcd does for a logged-in admin):
  - luci.re6st METHOD: the app's real plugin, /usr/libexec/rpcd/luci.re6st
    (its `exec` line re-pointed at the binary and config under test), run
    as rpcd runs it: `call METHOD` with the arguments on stdin;
  - uci get/set/commit on the config file (config node 'node'), uci get of
    the firewall file (--firewall);
  - file exec (the only command the views run: logread -e re6st) reads the
    node's log file;
  - service list and rc init: the test's service script (`SCRIPT list`
    prints procd's instances as JSON, `SCRIPT start|stop|restart` acts).

With --luci-runtime DIR (luci-base's htdocs/luci-static from a LuCI
checkout you provide; nothing is fetched or kept here) and --luci-theme DIR
(a theme's htdocs/luci-static/<theme>), /real?view=re6st/overview loads the
view in LuCI's own runtime instead, as its view.ut page does, and /ubus
also answers what that runtime asks on its own (the `list` probe, batched
calls, session access, features, preload, network devices for widgets).
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = pathlib.Path(__file__).resolve().parent
APP = HERE.parent.parent


def parse_sections(text):
    """Every section of a UCI file, as rpcd's `uci get` gives them."""
    out, cur, n = {}, None, 0
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        words = [a or b or c for a, b, c in re.findall(r"'([^']*)'|\"([^\"]*)\"|(\S+)", line)]
        if not words:
            continue
        if words[0] == "config":
            name = words[2] if len(words) > 2 else f"cfg{n:02x}"
            n += 1
            cur = out.setdefault(name, {".name": name, ".type": words[1], ".anonymous": len(words) < 3})
        elif cur is not None and words[0] == "option" and len(words) > 2:
            cur[words[1]] = words[2]
        elif cur is not None and words[0] == "list" and len(words) > 2:
            cur.setdefault(words[1], []).append(words[2])
    return out


def parse_uci(text):
    """The `config node` section of our UCI file: (name, {option: value or [list]})."""
    for name, sec in parse_sections(text).items():
        if sec[".type"] == "node":
            return name, {k: v for k, v in sec.items() if not k.startswith(".")}
    return "node", {}


def quote(v):
    return "'" + str(v).replace("'", "'\\''") + "'"


def write_uci(path, name, values):
    lines = [f"config node {quote(name)}"]
    for k, v in values.items():
        for item in (v if isinstance(v, list) else [v]):
            lines.append(f"\t{'list' if isinstance(v, list) else 'option'} {k} {quote(item)}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


class Stand:
    def __init__(self, a):
        self.a = a
        acl = json.loads((APP / "root/usr/share/rpcd/acl.d/luci-app-re6st.json").read_text())
        self.acl = acl["luci-app-re6st"]
        plugin = (APP / "root/usr/libexec/rpcd/luci.re6st").read_text()
        # The plugin as shipped, pointed at the binary and config under test.
        self.plugin = plugin.replace("/usr/sbin/re6st-lite", a.bin).replace("/etc/config/re6st", a.config)
        assert self.plugin != plugin, "the plugin's exec line changed"

    def exec(self, cmd, via):
        """The one command the views run (logread -e re6st: the node's log
        file), if the ACL grants it through `via` (file, or cgi-io)."""
        grants = {**self.acl["read"].get("file", {}), **self.acl.get("write", {}).get("file", {})}
        if "exec" not in grants.get(cmd, []):
            return None
        if via == "cgi-io" and "exec" not in self.acl["read"].get("cgi-io", []):
            return None
        text = pathlib.Path(self.a.log).read_text(errors="replace") if os.path.exists(self.a.log) else ""
        return text[-20000:]

    def allowed(self, object, method):
        for grant in ("read", "write"):
            methods = self.acl.get(grant, {}).get("ubus", {}).get(object, [])
            if method in methods or "*" in methods:
                return True
        return False

    def call(self, object, method, args):
        if object == "file" and method == "exec":
            text = self.exec(" ".join([args["command"]] + args.get("params", [])), "file")
            return (6, None) if text is None else (0, {"code": 0, "stdout": text})
        if object == "uci" and args.get("config") == "firewall" and method == "get":
            if "firewall" not in self.acl["read"].get("uci", []):
                return 6, None
            if not self.a.firewall or not os.path.exists(self.a.firewall):
                return 4, None  # UBUS_STATUS_NOT_FOUND
            return 0, {"values": parse_sections(pathlib.Path(self.a.firewall).read_text())}
        if object == "uci":
            if args.get("config") != "re6st" or "re6st" not in self.acl["read"].get("uci", []):
                return 6, None
            path = pathlib.Path(self.a.config)
            name, values = parse_uci(path.read_text())
            if method == "get":
                return 0, {"values": {name: {".name": name, ".type": "node", **values}}}
            if "re6st" not in self.acl.get("write", {}).get("uci", []):
                return 6, None
            if method == "set":
                write_uci(path, args["section"], args["values"])
                return 0, {}
            if method == "commit":
                return 0, {}
            return 3, None
        # What LuCI's own runtime asks, answered as a router with a LAN
        # bridge would (only in --luci-runtime mode).
        runtime = {
            ("session", "access"): {"access": True},
            ("luci", "getFeatures"): {},
            ("file", "list"): {"entries": []},
            ("luci-rpc", "getNetworkDevices"): {
                d: {"name": d, "up": True, "type": 1, "devtype": t, "mac": "02:00:00:00:00:0%d" % i,
                    "flags": {"up": True}, "stats": {}, "ipaddrs": [], "ip6addrs": []}
                for i, (d, t) in enumerate([("br-lan", "bridge"), ("eth0", "ethernet"), ("eth1", "ethernet")])},
            ("luci-rpc", "getWirelessDevices"): {},
            ("luci-rpc", "getBoardJSON"): {},
            ("luci-rpc", "getHostHints"): {},
            ("network.interface", "dump"): {"interface": []},
            ("network.device", "status"): {},
            ("network.wireless", "status"): {},
            ("luci", "getSwconfigFeatures"): {},
            ("network", "get_proto_handlers"): {},
        }
        if self.a.luci_runtime and (object, method) in runtime:
            return 0, runtime[(object, method)]
        if not self.allowed(object, method):
            sys.stderr.write(f"ubus {object}.{method}: denied or unknown\n")
            return 6, None  # UBUS_STATUS_PERMISSION_DENIED
        if object == "luci.re6st":
            r = subprocess.run(["sh", "-c", self.plugin, "luci.re6st", "call", method],
                               input=json.dumps(args).encode(), capture_output=True, timeout=30)
            if r.returncode != 0:
                sys.stderr.write(r.stderr.decode(errors="replace"))
                return 2, None
            return 0, json.loads(r.stdout)
        if object == "service" and method == "list":
            r = subprocess.run([self.a.service, "list"], capture_output=True, timeout=30)
            return 0, {"re6st": json.loads(r.stdout or b"{}")}
        if object == "rc" and method == "init" and args.get("name") == "re6st":
            subprocess.run([self.a.service, args["action"]], timeout=60)
            return 0, {}
        return 3, None  # UBUS_STATUS_METHOD_NOT_FOUND


def real_page(url):
    """LuCI's header.ut + view.ut for `?view=...` (no menu, no theme JS)."""
    from urllib.parse import parse_qs, urlparse
    view = parse_qs(urlparse(url).query).get("view", ["re6st/overview"])[0]
    env = {
        "media": "/luci-static/bootstrap", "resource": "/luci-static/resources",
        "scriptname": "/cgi-bin/luci", "pathinfo": "/admin/services/" + view.replace("re6st/", "re6st/"),
        "documentroot": "/www", "requestpath": ["admin", "services"] + view.split("/"),
        "dispatchpath": ["admin", "services"] + view.split("/"), "pollinterval": 5,
        "ubuspath": "/ubus/", "sessionid": "0" * 32, "token": "0" * 32,
        "nodespec": {"satisfied": True, "action": {"type": "view", "path": view}},
        "apply_rollback": 90, "apply_holdoff": 4, "apply_timeout": 5, "apply_display": 1.5,
        "rollback_token": None,
    }
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>re6st (LuCI runtime)</title>
<link rel="stylesheet" href="/luci-static/bootstrap/cascade.css">
<script src="/luci-static/resources/cbi.js"></script>
<script src="/luci-static/resources/promis.min.js"></script>
<script src="/luci-static/resources/luci.js"></script>
<script>sessionStorage.clear(); L = new LuCI({json.dumps(env)});</script>
</head><body><div id="maincontent" class="container"><div id="view">
<div class="spinning">Loading view…</div>
<script>L.require('ui').then(function(ui) {{ ui.instantiateView({json.dumps(view)}); }});</script>
</div></div></body></html>"""


def handler(stand):
    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def reply(self, code, body, ctype):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/real":
                return self.reply(200, real_page(self.path).encode(), "text/html")
            runtime = stand.a.luci_runtime
            if runtime and path.startswith("/luci-static/") and not path.startswith("/luci-static/resources/view/re6st/"):
                theme = stand.a.luci_theme
                f = (pathlib.Path(theme).parent / path[len("/luci-static/"):] if theme and
                     not path.startswith("/luci-static/resources/") else
                     pathlib.Path(runtime) / path[len("/luci-static/"):])
                if f.is_file():
                    ctype = {".js": "application/javascript", ".css": "text/css"}.get(f.suffix, "text/plain")
                    return self.reply(200, f.read_bytes(), ctype)
                return self.reply(404, b"", "text/plain")
            if path == "/":
                f = HERE / "index.html"
            elif path.startswith("/standin/"):
                f = HERE / path[len("/standin/"):]
            elif path.startswith("/luci-static/"):
                f = APP / "htdocs" / path.lstrip("/")
            else:
                return self.reply(404, b"", "text/plain")
            f = f.resolve()
            if not f.is_file() or not (str(f).startswith(str(HERE)) or str(f).startswith(str(APP / "htdocs"))):
                return self.reply(404, b"", "text/plain")
            ctype = {".js": "application/javascript", ".html": "text/html"}.get(f.suffix, "text/plain")
            self.reply(200, f.read_bytes(), ctype)

        def do_POST(self):
            path = self.path.split("?")[0]  # LuCI adds a cache-busting query
            if path == "/cgi-bin/cgi-exec":
                # cgi-io's exec, as LuCI's fs.exec_direct posts it.
                from urllib.parse import parse_qs
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                cmd = re.sub(r"\\(.)", r"\1", form["command"][0])
                text = stand.exec(cmd, "cgi-io")
                if text is None:
                    return self.reply(403, b"", "text/plain")
                return self.reply(200, text.encode(), "text/plain")
            if not path.startswith("/ubus"):
                return self.reply(404, b"", "text/plain")
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def one(r):
                if r.get("method") == "list":
                    return {"jsonrpc": "2.0", "id": r["id"], "result": {}}
                _, object, method, args = r["params"]
                status, data = stand.call(object, method, args or {})
                result = [status] if data is None else [status, data]
                return {"jsonrpc": "2.0", "id": r["id"], "result": result}
            out = [one(r) for r in req] if isinstance(req, list) else one(req)
            self.reply(200, json.dumps(out).encode(), "application/json")
    return H


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--firewall", help="the router's /etc/config/firewall")
    p.add_argument("--luci-runtime", help="luci-base's htdocs/luci-static (a LuCI checkout)")
    p.add_argument("--luci-theme", help="a theme's htdocs/luci-static/<theme>")
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), handler(Stand(a)))
    print(f"listening on {a.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
