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
  - uci get/set/commit on the config file (config node 'node');
  - file exec (the only command the views run: logread -e re6st) reads the
    node's log file;
  - service list and rc init: the test's service script (`SCRIPT list`
    prints procd's instances as JSON, `SCRIPT start|stop|restart` acts).
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


def parse_uci(text):
    """The `config node` section of our UCI file: {option: value or [list]}."""
    values, name = {}, "node"
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        words = [a or b or c for a, b, c in re.findall(r"'([^']*)'|\"([^\"]*)\"|(\S+)", line)]
        if not words:
            continue
        if words[0] == "config" and len(words) > 2:
            name = words[2]
        elif words[0] == "option" and len(words) > 2:
            values[words[1]] = words[2]
        elif words[0] == "list" and len(words) > 2:
            values.setdefault(words[1], []).append(words[2])
    return name, values


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

    def allowed(self, object, method):
        for grant in ("read", "write"):
            methods = self.acl.get(grant, {}).get("ubus", {}).get(object, [])
            if method in methods or "*" in methods:
                return True
        return False

    def call(self, object, method, args):
        if object == "file" and method == "exec":
            cmd = " ".join([args["command"]] + args.get("params", []))
            files = {**self.acl["read"].get("file", {}), **self.acl.get("write", {}).get("file", {})}
            if "exec" not in files.get(cmd, []):
                return 6, None
            text = pathlib.Path(self.a.log).read_text(errors="replace") if os.path.exists(self.a.log) else ""
            return 0, {"code": 0, "stdout": text[-20000:]}
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
        if not self.allowed(object, method):
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
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            _, object, method, args = req["params"]
            status, data = stand.call(object, method, args)
            result = [status] if data is None else [status, data]
            body = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result}).encode()
            self.reply(200, body, "application/json")
    return H


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--service", required=True)
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), handler(Stand(a)))
    print(f"listening on {a.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
