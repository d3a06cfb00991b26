//! The Debian package (`node-lite/debian/`), installed by the real dpkg into
//! a scratch root (`dpkg --root --force-script-chrootless`: the maintainer
//! scripts run with `DPKG_ROOT`), checked by systemd's own tools offline
//! (`systemd-analyze verify` and `security --offline`), then run as its unit
//! would run it: the installed binary with the installed config and only
//! the unit's `CapabilityBoundingSet` (through `setpriv`, with
//! `NoNewPrivileges`), two nodes and a LAN host that gets IPv6 from its
//! node's router advertisements and pings the other node. A node without
//! `CAP_NET_ADMIN` must fail, or the capability check proves nothing.
//! Then remove (the config and the node's state stay) and purge (all gone).
//!
//! What this cannot test here: systemd as PID 1 starting the unit (this
//! machine has no running systemd), so the unit's sandboxing directives
//! (ProtectSystem, DeviceAllow, SystemCallFilter...) are checked by
//! `systemd-analyze`, not enforced on a running node.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{node_bin, run_ok, Options, TempDir};

const UNIT: &str = "re6st-lite.service";

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    eprintln!(
        "$ {program} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(program: &str, args: &[&str]) -> String {
    run_ok(
        Command::new(program).args(args),
        &format!("{program} {args:?}"),
    )
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A root that looks enough like a Debian system for dpkg and
/// systemd-analyze: an empty dpkg database, merged /usr, the `kill` the
/// unit's ExecReload names, and systemd's own targets.
fn scratch_root(dir: &Path) -> PathBuf {
    let r = dir.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "usr/bin"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
    fs::copy("/usr/bin/kill", r.join("usr/bin/kill")).unwrap();
    let units = r.join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for e in fs::read_dir("/usr/lib/systemd/system").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".target") || name.ends_with(".slice") {
            let _ = fs::copy(e.path(), units.join(&name));
        }
    }
    r
}

/// The unit's CapabilityBoundingSet as setpriv's `-all,+net_admin,...`.
fn bounding_set(unit: &str) -> String {
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds capabilities");
    let mut set = String::from("-all");
    for c in caps.split_whitespace() {
        set += &format!(",+{}", c.trim_start_matches("CAP_").to_lowercase());
    }
    set
}

#[test]
fn debian_package_installs_and_runs_with_the_units_capabilities() {
    let tmp = TempDir::new("debian");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node-lite/debian");
    let scripts: Vec<String> = ["build", "postinst", "prerm", "postrm"]
        .iter()
        .map(|s| here.join(s).display().to_string())
        .collect();
    let scripts: Vec<&str> = scripts.iter().map(String::as_str).collect();
    ok("shellcheck", &scripts);
    let arch = ok("dpkg", &["--print-architecture"]);
    let build = here.join("build");
    let bin = node_bin();
    let out = tmp.path().join("out");
    let deb = ok(
        build.to_str().unwrap(),
        &[
            "--binary",
            bin.to_str().unwrap(),
            "--arch",
            arch.trim(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let deb = deb.trim();
    let r = scratch_root(tmp.path());
    let root = r.to_str().unwrap();
    // Maintainer scripts run outside the root, with DPKG_ROOT set.
    let dpkg = |args: &[&str]| {
        let common = [
            "--root",
            root,
            "--force-script-chrootless",
            "--log=/dev/null",
        ];
        ok("dpkg", &[&common[..], args].concat())
    };
    // --force-depends: the scratch root has no libc6 package (the tested
    // binary is the glibc debug build; the shipped one is static musl).
    dpkg(&["--force-depends", "-i", deb]);
    let status = ok("dpkg", &["--root", root, "-s", "re6st-lite"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains("/etc/re6st-lite.conf"),
        "conffile: {status}"
    );

    // Files, modes, and the unit enabled by postinst.
    let sbin = r.join("usr/sbin/re6st-lite");
    let conf = r.join("etc/re6st-lite.conf");
    let unit_path = r.join("usr/lib/systemd/system").join(UNIT);
    assert_eq!(mode(&sbin), 0o755);
    assert_eq!(mode(&conf), 0o644);
    assert_eq!(mode(&r.join("etc/re6st")), 0o700, "state_dir");
    assert_eq!(mode(&unit_path), 0o644);
    let wants = r
        .join("etc/systemd/system/multi-user.target.wants")
        .join(UNIT);
    assert_eq!(
        fs::read_link(&wants).expect("enabled"),
        Path::new("/usr/lib/systemd/system").join(UNIT)
    );
    ok(
        sbin.to_str().unwrap(),
        &["config", "-c", conf.to_str().unwrap()],
    );

    // systemd's own checks, offline.
    let verify = run("systemd-analyze", &["verify", "--root", root, UNIT]);
    assert!(verify.status.success(), "systemd-analyze verify");
    assert!(verify.stderr.is_empty(), "verify warnings");
    let security = run(
        "systemd-analyze",
        &["security", "--offline=yes", "--root", root, UNIT],
    );
    let text = String::from_utf8_lossy(&security.stdout).into_owned()
        + &String::from_utf8_lossy(&security.stderr);
    let exposure: f64 = text
        .split("Overall exposure level for re6st-lite.service:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("an exposure level");
    println!("systemd-analyze security: exposure {exposure} (0 best, 10 worst)");
    assert!(exposure <= 3.0, "exposure {exposure}");

    // The installed node, as the unit runs it. /64s so that the LAN gets SLAAC.
    let unit = fs::read_to_string(&unit_path).unwrap();
    let caps = bounding_set(&unit);
    assert!(unit.contains("NoNewPrivileges=yes"));
    let mut m = Mesh::build(
        3,
        Options {
            anonymous_prefix_length: Some(16),
            extra: ["--hello", "2"].iter().map(|s| s.to_string()).collect(),
            ..Options::default()
        },
    );
    let host = m.add_lan_host(0);
    let launcher = |caps: &str| -> Vec<String> {
        [
            "setpriv",
            "--no-new-privs",
            "--bounding-set",
            caps,
            sbin.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    for i in 0..2 {
        m.nodes[i].launcher = launcher(&caps);
        m.nodes[i].config = Some(conf.clone());
    }
    let without_admin = caps.replace(",+net_admin", "");
    assert_ne!(without_admin, caps);
    m.nodes[2].launcher = launcher(&without_admin);
    m.nodes[2].config = Some(conf.clone());
    let peer = format!("{}:1194", m.nodes[0].ip);
    m.spawn(0, &[]);
    m.spawn(1, std::slice::from_ref(&peer));
    m.spawn(2, &[peer]);

    let p0 = m.nodes[0].prefix.clone();
    let to = m.nodes[1].address.clone();
    let reached = wait_until(Duration::from_secs(60), || {
        m.hosts[host]
            .slaac_address(&p0)
            .is_some_and(|_| m.hosts[host].ns.ping6(&to))
    });
    assert!(
        reached.is_some(),
        "LAN host behind node 0 never reached node 1\n{}",
        m.logs()
    );
    println!("LAN host reached node 1 through the installed nodes in {reached:?}");
    assert!(m.ping(1, 0), "node 1 -> node 0");
    // Without CAP_NET_ADMIN the node cannot make its TUN device: it fails.
    let failed = wait_until(Duration::from_secs(10), || {
        !m.nodes[2].proc.as_mut().is_some_and(|p| p.running())
    });
    assert!(
        failed.is_some(),
        "a node without CAP_NET_ADMIN kept running"
    );
    let log2 = m.log_of(2);
    assert!(
        log2.to_lowercase().contains("permitted") || log2.contains("EPERM"),
        "why node 2 stopped: {log2}"
    );
    println!(
        "without CAP_NET_ADMIN: {}",
        log2.lines().last().unwrap_or_default()
    );
    drop(m);

    // remove keeps the config and the node's identity; purge takes both.
    fs::write(r.join("etc/re6st/cert.crt"), "stand-in").unwrap();
    dpkg(&["-r", "re6st-lite"]);
    assert!(!sbin.exists() && !unit_path.exists());
    assert!(conf.exists() && r.join("etc/re6st/cert.crt").exists());
    dpkg(&["-P", "re6st-lite"]);
    assert!(!conf.exists() && !r.join("etc/re6st").exists() && !wants.exists());
}
