"""Tests for the board profile loader: every shipped profile parses and maps to
a target cross/build builds, and broken profiles are refused with a reason."""

import copy
import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import boards as profiles  # noqa: E402


class ShippedProfiles(unittest.TestCase):
    def test_every_profile_is_buildable(self):
        targets = profiles.load_targets()
        boards = profiles.load_boards(targets=targets)
        for b in boards:
            self.assertIn(b["rust"]["target"], targets, b["name"])
        archs = profiles.package_archs(boards)
        # The five package architectures the project ships.
        self.assertEqual(set(archs), {"mips_24kc", "mipsel_24kc", "arm_cortex-a7_neon-vfpv4",
                                      "aarch64_cortex-a53", "x86_64"})

    def test_smaller_boards_get_smaller_defaults(self):
        boards = profiles.load_boards()
        by_ram = sorted(boards, key=lambda b: b["hardware"]["ram_mb"])
        for small, big in zip(by_ram, by_ram[1:]):
            for key in ("max_tunnels", "max_routes", "packet_buffers"):
                self.assertLessEqual(small["node"][key], big["node"][key],
                                     f"{key}: {small['name']} vs {big['name']}")


class Mapping(unittest.TestCase):
    def test_openwrt_arch_to_rust_target(self):
        cases = {
            "mips_24kc": "mips-unknown-linux-musl",
            "mipsel_24kc": "mipsel-unknown-linux-musl",
            "mipsel_74kc": "mipsel-unknown-linux-musl",
            "arm_cortex-a7_neon-vfpv4": "armv7-unknown-linux-musleabihf",
            "arm_cortex-a9": "armv7-unknown-linux-musleabi",
            "arm_cortex-a15_neon-vfpv4": "armv7-unknown-linux-musleabihf",
            "aarch64_cortex-a53": "aarch64-unknown-linux-musl",
            "aarch64_generic": "aarch64-unknown-linux-musl",
            "x86_64": "x86_64-unknown-linux-musl",
            "powerpc_8548": None,
        }
        for arch, triple in cases.items():
            self.assertEqual(profiles.rust_target_for_arch(arch), triple, arch)


class BrokenProfiles(unittest.TestCase):
    def setUp(self):
        self.targets = profiles.load_targets()
        self.good = profiles.load_boards(targets=self.targets)[0]

    def refused(self, board, reason):
        with self.assertRaises(profiles.ProfileError) as cm:
            profiles.validate(board, self.targets, board.get("name"))
        self.assertIn(reason, str(cm.exception))

    def test_missing_field(self):
        b = copy.deepcopy(self.good)
        del b["hardware"]["ram_mb"]
        self.refused(b, "missing 'ram_mb'")

    def test_wrong_type(self):
        b = copy.deepcopy(self.good)
        b["node"]["max_routes"] = "many"
        self.refused(b, "'max_routes' must be a int")
        b["node"]["max_routes"] = True
        self.refused(b, "'max_routes' must be a int")

    def test_arch_and_target_disagree(self):
        b = copy.deepcopy(self.good)
        b["openwrt"]["arch"] = "mips_24kc"
        b["rust"]["target"] = "mipsel-unknown-linux-musl"
        self.refused(b, "maps to mips-unknown-linux-musl")

    def test_target_not_built(self):
        b = copy.deepcopy(self.good)
        b["openwrt"]["arch"] = "arm_cortex-a9"
        b["rust"]["target"] = "armv7-unknown-linux-musleabi"
        self.refused(b, "does not build armv7-unknown-linux-musleabi")

    def test_defaults_over_ram_budget(self):
        b = copy.deepcopy(self.good)
        b["hardware"]["ram_mb"] = 32
        b["node"]["max_routes"] = 100_000
        self.refused(b, "over 1/8 of 32 MB RAM")

    def test_file_name_must_match(self):
        with tempfile.TemporaryDirectory() as d:
            src = profiles.BOARDS_DIR / f"{self.good['name']}.toml"
            (pathlib.Path(d) / "renamed.toml").write_bytes(src.read_bytes())
            with self.assertRaisesRegex(profiles.ProfileError, "differs from the file name"):
                profiles.load_boards(d, self.targets)

    def test_bad_toml(self):
        with tempfile.TemporaryDirectory() as d:
            (pathlib.Path(d) / "x.toml").write_text("name = \n")
            with self.assertRaisesRegex(profiles.ProfileError, "x.toml"):
                profiles.load_boards(d, self.targets)


if __name__ == "__main__":
    unittest.main()
