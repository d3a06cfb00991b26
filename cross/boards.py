"""Board profiles (boards/*.toml) and cross targets (cross/targets.toml).

The single loader used by cross/build and the OpenWrt package builder, so a
board's package architecture, Rust target and node defaults are read in one
place. Standard library only (tomllib, Python 3.11+).
"""

import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
BOARDS_DIR = ROOT / "boards"
TARGETS_FILE = ROOT / "cross" / "targets.toml"

# Node memory budget per item, in bytes, used to check that a board's defaults
# fit its RAM: a tunnel (session, replay window, queues), a route (Babel route
# + source + forwarding entry), a packet buffer (MTU + headroom).
TUNNEL_BYTES = 64 * 1024
ROUTE_BYTES = 256
PACKET_BUFFER_BYTES = 2048
# The node may claim at most this fraction of a board's RAM at its defaults.
RAM_SHARE = 1 / 8

SCHEMA = {
    "name": str,
    "description": str,
    "openwrt": {"target": str, "subtarget": str, "arch": str},
    "rust": {"target": str},
    "hardware": {"ram_mb": int, "flash_mb": int, "cpu_mhz": int},
    "node": {"max_tunnels": int, "max_routes": int, "peer_cache": int, "packet_buffers": int},
}


class ProfileError(ValueError):
    pass


def rust_target_for_arch(arch):
    """The Rust triple OpenWrt's rust-values.mk derives for a package arch."""
    if re.fullmatch(r"mips_[0-9a-z]+", arch):
        return "mips-unknown-linux-musl"
    if re.fullmatch(r"mipsel_[0-9a-z]+", arch):
        return "mipsel-unknown-linux-musl"
    if re.fullmatch(r"aarch64_[0-9a-z_-]+", arch):
        return "aarch64-unknown-linux-musl"
    if arch == "x86_64":
        return "x86_64-unknown-linux-musl"
    m = re.fullmatch(r"arm_(cortex-a[0-9]+|arm1176jzf-s)(_[a-z0-9_-]+)?", arch)
    if m:
        # v6 and older are armv5te/arm in OpenWrt; a VFP suffix means hard-float.
        hard = bool(m.group(2) and ("vfp" in m.group(2) or "neon" in m.group(2)))
        isa = "armv7" if m.group(1).startswith("cortex-a") else "arm"
        return f"{isa}-unknown-linux-musleabi{'hf' if hard else ''}"
    return None


def _check(schema, data, where):
    for key, kind in schema.items():
        if key not in data:
            raise ProfileError(f"{where}: missing {key!r}")
        value = data[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise ProfileError(f"{where}: {key!r} must be a table")
            _check(kind, value, f"{where}.{key}")
        elif not isinstance(value, kind) or isinstance(value, bool):
            raise ProfileError(f"{where}: {key!r} must be a {kind.__name__}")
        elif kind is int and value <= 0:
            raise ProfileError(f"{where}: {key!r} must be positive")


def validate(board, targets, stem=None):
    """Raise ProfileError unless `board` is a complete, buildable profile."""
    where = stem or board.get("name", "?")
    _check(SCHEMA, board, where)
    if stem is not None and board["name"] != stem:
        raise ProfileError(f"{where}: name {board['name']!r} differs from the file name")
    arch, triple = board["openwrt"]["arch"], board["rust"]["target"]
    expected = rust_target_for_arch(arch)
    if expected != triple:
        raise ProfileError(f"{where}: OpenWrt arch {arch} maps to {expected}, not {triple}")
    if triple not in targets:
        raise ProfileError(f"{where}: cross/targets.toml does not build {triple}")
    node = board["node"]
    need = (node["max_tunnels"] * TUNNEL_BYTES + node["max_routes"] * ROUTE_BYTES
            + node["packet_buffers"] * PACKET_BUFFER_BYTES)
    budget = board["hardware"]["ram_mb"] * 1024 * 1024 * RAM_SHARE
    if need > budget:
        raise ProfileError(f"{where}: node defaults need {need >> 10} KiB, "
                           f"over 1/{int(1 / RAM_SHARE)} of {board['hardware']['ram_mb']} MB RAM")


def load_targets(path=TARGETS_FILE):
    with open(path, "rb") as f:
        targets = tomllib.load(f)["targets"]
    for triple, t in targets.items():
        if t.get("toolchain") not in ("stable", "nightly"):
            raise ProfileError(f"{triple}: toolchain must be stable or nightly")
        if not isinstance(t.get("rustflags"), list) or not isinstance(t.get("qemu"), str):
            raise ProfileError(f"{triple}: rustflags (list) and qemu (string) are required")
        sections = t.setdefault("remove_sections", [])
        if not isinstance(sections, list) or not all(
                isinstance(x, str) and x.startswith(".") for x in sections):
            raise ProfileError(f"{triple}: remove_sections must be a list of section names")
    return targets


def load_boards(directory=BOARDS_DIR, targets=None):
    """All board profiles, validated, sorted by name."""
    targets = load_targets() if targets is None else targets
    boards = []
    for path in sorted(pathlib.Path(directory).glob("*.toml")):
        try:
            with open(path, "rb") as f:
                board = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ProfileError(f"{path.name}: {e}") from None
        validate(board, targets, path.stem)
        boards.append(board)
    if not boards:
        raise ProfileError(f"no board profiles in {directory}")
    return boards


def package_archs(boards):
    """{OpenWrt package arch: Rust target}, one entry per architecture."""
    archs = {}
    for b in boards:
        archs.setdefault(b["openwrt"]["arch"], b["rust"]["target"])
    return archs
