#!/usr/bin/env bash
# Install what cross/build needs, idempotently: rustup targets, the nightly
# toolchain's rust-src (for -Zbuild-std) and llvm-tools (llvm-objcopy),
# cargo-zigbuild, zig (PyPI ziglang, in the project venv) and qemu-user-static.
# Fast when everything is present.
set -euo pipefail

VENV=${RE6ST_VENV:-/opt/re6st-lite/venv}
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1

die() { echo "cross/setup: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

have cargo && have rustup || die "cargo and rustup are required (https://rustup.rs); see README"

apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] && have apt-get || die "missing Debian packages: ${missing[*]} (install them as root)"
    echo "cross/setup: apt-get install ${missing[*]}"
    [ -n "$(find /var/lib/apt/lists -name '*Packages*' -print -quit 2>/dev/null)" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
        die "apt-get could not install ${missing[*]}"
}
apt_install qemu-user-static python3-venv

# Tier-2 targets whose std rustup can fetch.
installed=$(rustup target list --installed)
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t" || die "rustup target add $t failed"
done

# MIPS (tier 3) and armv7 build std from source on nightly.
rustup toolchain list | grep -q '^nightly' ||
    rustup toolchain install nightly --profile minimal || die "cannot install the nightly toolchain"
rustup component list --toolchain nightly --installed | grep -q '^rust-src' ||
    rustup component add rust-src --toolchain nightly || die "cannot add rust-src to nightly"
# llvm-objcopy, for the sections targets.toml removes after linking.
rustup component list --toolchain nightly --installed | grep -q '^llvm-tools' ||
    rustup component add llvm-tools --toolchain nightly || die "cannot add llvm-tools to nightly"

have cargo-zigbuild || cargo install --locked "cargo-zigbuild@$ZIGBUILD_VERSION" ||
    die "cargo install cargo-zigbuild failed"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "cannot create the venv $VENV (python3-venv)"
"$VENV/bin/python" -m ziglang version >/dev/null 2>&1 ||
    "$VENV/bin/pip" install -q "ziglang==$ZIGLANG_VERSION" || die "pip install ziglang failed"
