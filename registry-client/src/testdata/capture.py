#!/usr/bin/env python3
"""Capture the registry replies used as unit-test fixtures (src/testdata/).

Run with the re6stnet 0.642 venv's python, as root (it binds [::1]:326 to
stand in for the registry's local node, so getBootstrapPeer answers):
    /opt/re6st-lite/venv/bin/python registry-client/src/testdata/capture.py
Everything stays on 127.0.0.1 / ::1; the registry is stopped by PID.
"""
import base64, hashlib, hmac, os, shutil, socket, subprocess, sys, tempfile
import threading, time, urllib.parse, urllib.request, urllib.error

OUT = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get("RE6ST_VENV", "/opt/re6st-lite/venv")
W = tempfile.mkdtemp(prefix="re6st-capture-")

def sh(*a, **kw):
    subprocess.run(a, check=True, cwd=W, **kw)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

PORT = free_port()
REG = "http://127.0.0.1:%d" % PORT

def get(path, headers={}):
    req = urllib.request.Request(REG + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()

def start():
    p = subprocess.Popen([VENV + "/bin/re6st-registry", "--port", str(PORT),
        "-4", "127.0.0.1", "-6", "", "--db", W + "/registry.db", "--dh", W + "/dh.pem",
        "--ca", W + "/ca.crt", "--key", W + "/ca.key", "--mailhost", W + "/mbox",
        "--prefix-length", "16", "--anonymous-prefix-length", "20",
        "--hello", "20", "--client-count", "5", "--max-clients", "9",
        "--tunnel-refresh", "200", "--encrypt", "--ipv4", "10.42.0.0/16", "8",
        "--min-protocol", "2", "-l", W + "/registry.log", "-r", W, "-v", "3"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", PORT), 0.2).close(); return p
        except OSError:
            time.sleep(0.1)
    sys.exit("registry did not start")

def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)

sh("openssl", "genpkey", "-out", "ca.key", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048")
sh("openssl", "req", "-nodes", "-new", "-x509", "-key", "ca.key", "-set_serial", "0x120010db80042",
   "-days", "3650", "-subj", "/CN=re6st test CA/emailAddress=registry@example.invalid", "-out", "ca.crt")
sh("openssl", "dhparam", "-dsaparam", "-out", "dh.pem", "1024", stderr=subprocess.DEVNULL)
reg = start()
try:
    # First certificate: the registry's own node (registry_prefix).
    for name in "first", "node":
        sh("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
           "-subj", "/O=" + name, "-sha512", "-out", name + ".csr", stderr=subprocess.DEVNULL)
        csr = open(os.path.join(W, name + ".csr")).read()
        st, _, crt = get("/requestCertificate?" + urllib.parse.urlencode({"token": "", "req": csr}))
        assert st == 200, st
        open(os.path.join(W, name + ".crt"), "wb").write(crt)
    st, _, ca = get("/getCa"); assert st == 200
    save("ca.crt", ca)
    save("node.crt", open(os.path.join(W, "node.crt"), "rb").read())
    save("node.key", open(os.path.join(W, "node.key"), "rb").read())
    save("node.csr", open(os.path.join(W, "node.csr"), "rb").read())
    # Revoke the first certificate by serial (it is serial 1): crl = [1].
    st, _, _ = get("/revoke?cn_or_serial=1"); assert st == 204, st
    # Two babel HMAC keys (sign + accept); 0.642 needs a restart after updateHMAC.
    st, _, _ = get("/updateHMAC"); assert st == 204, st
    reg.terminate(); reg.wait(); reg = start()

    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography import x509
    key = load_pem_private_key(open(os.path.join(W, "node.key"), "rb").read(), None)
    cn = x509.load_pem_x509_certificate(open(os.path.join(W, "node.crt"), "rb").read()) \
        .subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    p, l = cn.split("/"); prefix = bin(int(p))[2:].rjust(int(l), "0")
    st, _, h = get("/hello?" + urllib.parse.urlencode({"client_prefix": prefix, "protocol": "8"}))
    assert st == 200, st
    save("hello.bin", h)
    k = key.decrypt(h[:len(h) // 2], padding.PKCS1v15())
    lines = ["prefix " + prefix, "k0 " + k.hex()]
    # Bootstrap peer: stand in for the local node on [::1]:326.
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 326))
    def node():
        data, addr = u.recvfrom(1 << 16)
        peer, code = data.split(b"\0", 1)
        u.sendto(peer + b"\0" + code[:1] + b"198.51.100.7,1194,udp,FR;2001:db8::7,1194,tcp6,FR", addr)
    threading.Thread(target=node, daemon=True).start()
    for i, method in enumerate(("getNetworkConfig", "getBootstrapPeer", "renewCertificate")):
        q = "/%s?cn=%s" % (method, prefix)
        sig = base64.b64encode(hmac.HMAC(k, q.encode(), hashlib.sha1).digest()).decode()
        st, hdr, body = get(q, {"Re6stHMAC": sig})
        assert st == 200, (method, st)
        k1 = hashlib.sha1(k).digest()
        assert base64.b64decode(hdr["Re6stHMAC"]) == hmac.HMAC(k1, body, hashlib.sha1).digest()
        save(method + ".bin", body)
        lines += ["%s.request %s" % (method, sig), "%s.reply %s" % (method, hdr["Re6stHMAC"])]
        k = hashlib.sha1(k1).digest()
    u.close()
    save("chain.txt", ("\n".join(lines) + "\n").encode())
finally:
    reg.terminate(); reg.wait()
    shutil.rmtree(W)
print("fixtures written to", OUT)
