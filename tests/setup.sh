#!/usr/bin/env bash
# Install everything the demo and the test suite need on a fresh Debian 12
# machine (run as root). Idempotent: a second run only checks.
#   tests/setup.sh           demo and tests: Debian packages, Rust, registry venv
#   tests/setup.sh --cross   also the cross-build toolchain (cross/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${RE6ST_VENV:-/opt/re6st-lite/venv}
PACKAGES=(ca-certificates curl git gcc libc6-dev python3 python3-venv openssl iproute2 iputils-ping
          babeld ndisc6 iperf3 tcpdump
          faketime  # wall clock offsets: certificate renewal (tests/tests/renewal.rs)
          busybox shellcheck  # OpenWrt package: init script under ash, shellcheck
          systemd  # Debian package: systemd-analyze verify/security on its unit
          stunnel4  # a TLS frontend in front of the registry (tests/tests/https.rs)
          nftables miniupnpd  # NAT routers and a real UPnP-IGD/NAT-PMP/PCP gateway (tests/tests/nat.rs)
          chromium)  # the LuCI app's views, headless (tests/tests/luci.rs)

die() { echo "tests/setup: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "run as root to install: ${missing[*]}"
    echo "tests/setup: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: rustup's stable toolchain (Debian 12's rustc is too old).
export PATH="$HOME/.cargo/bin:$PATH"
if ! have cargo; then
    echo "tests/setup: installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal -c rustfmt,clippy || die "rustup installation failed"
fi
for c in rustfmt clippy; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

# The real re6st registry (PyPI re6stnet 0.642). pyOpenSSL 26.3 removed
# X509Req, which the registry needs to issue certificates.
if ! "$VENV/bin/python" -c 'import re6st, OpenSSL.crypto as c; c.X509Req' 2>/dev/null ||
   [ ! -x "$VENV/bin/re6st-registry" ]; then
    echo "tests/setup: installing re6stnet 0.642 in $VENV"
    mkdir -p "$(dirname "$VENV")"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 're6stnet==0.642' 'pyOpenSSL<26.3' || die "pip install re6stnet failed"
fi

if [ "${1:-}" = --cross ]; then
    bash cross/setup.sh
fi
