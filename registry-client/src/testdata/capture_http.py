#!/usr/bin/env python3
"""Capture raw HTTP replies of the real registry (src/testdata/http/), the
bytes `http::parse_reply` must handle. Requests are sent over a raw socket
exactly as `HttpTransport` sends them (HTTP/1.1, Host, User-Agent,
Re6stHMAC, Connection: close), and everything the registry writes up to its
close is saved as is.

Run with the re6stnet 0.642 venv's python:
    /opt/re6st-lite/venv/bin/python registry-client/src/testdata/capture_http.py
Everything stays on 127.0.0.1; the registry is stopped by PID.
"""
import base64, hashlib, hmac, os, shutil, socket, subprocess, sys, tempfile, time
import urllib.parse

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http")
VENV = os.environ.get("RE6ST_VENV", "/opt/re6st-lite/venv")
W = tempfile.mkdtemp(prefix="re6st-capture-http-")


def sh(*a):
    subprocess.run(a, check=True, cwd=W, stderr=subprocess.DEVNULL)


s = socket.socket(); s.bind(("127.0.0.1", 0)); PORT = s.getsockname()[1]; s.close()


def raw(path_query, headers=()):
    """GET as re6st-lite sends it; returns every byte of the reply."""
    c = socket.create_connection(("127.0.0.1", PORT), 30)
    req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: re6stnet/re6st-lite-capture\r\n" \
        % (path_query, PORT)
    req += "".join("%s: %s\r\n" % h for h in headers) + "Connection: close\r\n\r\n"
    c.sendall(req.encode())
    out = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        out += b
    c.close()
    return out


def status(reply):
    return int(reply.split(b" ", 2)[1])


def save(name, reply, expect):
    assert status(reply) == expect, (name, reply[:200])
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(reply)


os.makedirs(OUT, exist_ok=True)
sh("openssl", "genpkey", "-out", "ca.key", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048")
sh("openssl", "req", "-nodes", "-new", "-x509", "-key", "ca.key", "-set_serial", "0x120010db80042",
   "-days", "3650", "-subj", "/CN=re6st test CA/emailAddress=registry@example.invalid", "-out", "ca.crt")
sh("openssl", "dhparam", "-dsaparam", "-out", "dh.pem", "1024")
reg = subprocess.Popen([VENV + "/bin/re6st-registry", "--port", str(PORT),
    "-4", "127.0.0.1", "-6", "", "--db", W + "/registry.db", "--dh", W + "/dh.pem",
    "--ca", W + "/ca.crt", "--key", W + "/ca.key", "--mailhost", W + "/mbox",
    "--prefix-length", "16", "--anonymous-prefix-length", "20",
    "-l", W + "/registry.log", "-r", W, "-v", "3"], stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", PORT), 0.2).close(); break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("registry did not start")
    save("getCa.http", raw("/getCa"), 200)
    # Anonymous certificate for a node (the first one goes to the registry's own node).
    for name in "first", "node":
        sh("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
           "-subj", "/O=" + name, "-sha512", "-out", name + ".csr")
        csr = open(os.path.join(W, name + ".csr")).read()
        r = raw("/requestCertificate?" + urllib.parse.urlencode({"token": "", "req": csr}))
        assert status(r) == 200, r[:200]
    save("requestCertificate-badtoken.http", raw("/requestCertificate?" + urllib.parse.urlencode(
        {"token": "nosuchtk", "req": csr})), 204)
    # send_error replies: private method from elsewhere, bad request, unknown prefix.
    save("revoke-forbidden.http", raw("/revoke?cn_or_serial=1", [("X-Forwarded-For", "192.0.2.1")]), 403)
    save("nosuchmethod.http", raw("/nosuchmethod"), 400)
    save("hello-unknown.http", raw("/hello?client_prefix=1111&protocol=8"), 500)

    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from cryptography.hazmat.primitives.asymmetric import padding
    key = load_pem_private_key(open(os.path.join(W, "node.key"), "rb").read(), None)
    # The node's prefix: the second anonymous /20 is 1/20.
    prefix = bin(1)[2:].rjust(20, "0")
    h = raw("/hello?" + urllib.parse.urlencode({"client_prefix": prefix, "protocol": "8"}))
    assert status(h) == 200, h[:200]
    body = h.split(b"\r\n\r\n", 1)[1]
    k = key.decrypt(body[:len(body) // 2], padding.PKCS1v15())
    # getNetworkConfig (200, Re6stHMAC), then getBootstrapPeer (204 after
    # 3 s with no local node, Re6stHMAC of the empty body).
    for method, expect in ("getNetworkConfig", 200), ("getBootstrapPeer", 204):
        q = "/%s?cn=%s" % (method, prefix)
        sig = base64.b64encode(hmac.HMAC(k, q.encode(), hashlib.sha1).digest()).decode()
        save(method + ".http", raw(q, [("Re6stHMAC", sig)]), expect)
        k = hashlib.sha1(hashlib.sha1(k).digest()).digest()
finally:
    reg.terminate(); reg.wait()
    shutil.rmtree(W)
print("replies written to", OUT)
