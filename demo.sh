#!/usr/bin/env bash
# The main job: a local demo mesh. Installs what is needed, builds the node,
# then starts the real re6st registry and 4 nodes, each in its own network
# namespace on one IPv4 bridge, prints a status table and a ping matrix, and
# cleans up. Needs root (network namespaces). `./demo.sh 6` runs 6 nodes.
set -euo pipefail
cd "$(dirname "$0")"
bash tests/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export RE6ST_VENV=${RE6ST_VENV:-/opt/re6st-lite/venv}
cargo build --locked --release -p node-lite
export RE6ST_LITE_BIN=$PWD/target/release/re6st-lite
"$RE6ST_LITE_BIN" selftest >/dev/null && echo "selftest: ok"
cargo run --locked --release -q -p re6st-integration --bin demo -- "${1:-4}"
