#!/usr/bin/env bash
# The main job: install what is needed, build the node and run it.
# Until the node runs a mesh (the "whole node" issue), this builds the release
# binary, shows its help and runs its self-test; the command stays the same.
set -euo pipefail
cd "$(dirname "$0")"
bash tests/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p node-lite
bin=target/release/re6st-lite
"$bin" --help
echo
"$bin" selftest
