//! The registry's node, and joining with nothing but the registry URL and a
//! token. The real registry runs in a namespace next to a re6st-lite node
//! with `registry_node 1` (its first registered node, the network's
//! `registry_prefix`): the registry sends its requests to that node on
//! [::1]:326 and reads Babel's state from its control socket. Five more
//! nodes, each in its own namespace, get a token from the registry, run
//! `register --token`, then `run` with no `peer` option and an empty peer
//! cache: each finds its first peer through the registry's
//! `getBootstrapPeer`, and everyone reaches everyone. The registry's own
//! `versions` and `topology` list them, and a revocation's new network
//! version reaches every node through the registry's node.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::{wait_until, Netns};
use re6st_integration::registry::{identity, node_bin, run_ok, Options, Registry};

/// Nodes besides the registry's.
const N: usize = 5;

/// `re6st-lite register --token` inside `ns`, with a token the registry
/// made for `email`.
fn register(registry: &Registry, ns: &Netns, dir: &Path, email: &str) {
    let (code, body) = registry.get(&format!(
        "/requestToken?email={}",
        email.replace('@', "%40")
    ));
    assert_eq!(
        code,
        204,
        "requestToken: {}",
        String::from_utf8_lossy(&body)
    );
    let token = registry.last_token().expect("a token in the mbox");
    let url = registry.url();
    let out = run_ok(
        ns.command(node_bin())
            .args(["register", "--registry", &url, "--token", &token, "--dir"])
            .arg(dir)
            .stdin(Stdio::null()),
        "re6st-lite register --token",
    );
    assert!(dir.join("cert.crt").is_file(), "{out}");
}

/// The JSON list under `key` in a flat JSON object of lists (the
/// registry's `topology`), as its raw text.
fn list_of<'a>(json: &'a str, key: &str) -> &'a str {
    let k = format!("\"{key}\": [");
    let Some(i) = json.find(&k) else { return "" };
    let rest = &json[i + k.len()..];
    &rest[..rest.find(']').unwrap_or(rest.len())]
}

#[test]
fn bootstrap_through_the_registry_node() {
    let reg_ns = Netns::new("reg");
    let extra = ["--hello", "2", "--client-count", "2", "--max-clients", "6"];
    let mut m = Mesh::build(
        0,
        Options {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            // The registry's node is node 0, at 198.51.100.1.
            netns: Some((reg_ns.name.clone(), "198.51.100.1".into())),
            ..Options::default()
        },
    );
    let url = m.registry.url();
    let socket = m.registry.dir.path().join("run/babeld.sock");

    // The registry's node registers first: its prefix is the network's
    // registry_prefix.
    let i = m.wire_node(reg_ns, |r, ns, dir| {
        register(r, ns, dir, "registry-node@example.invalid")
    });
    m.nodes[0].options.extend([
        format!("registry={url}"),
        "registry_node=1".to_string(),
        format!("babel_socket={}", socket.display()),
    ]);
    assert_eq!(i, 0);
    for k in 1..=N {
        let email = format!("node{k}@example.invalid");
        let i = m.wire_node(Netns::new(&format!("n{k}")), |r, ns, dir| {
            register(r, ns, dir, &email)
        });
        m.nodes[i].options.push(format!("registry={url}"));
    }
    let started = Instant::now();
    for i in 0..=N {
        // No `peer` option, no peer cache.
        assert!(!m.nodes[i].dir.join("peers.cache").exists());
        m.spawn(i, &[]);
    }
    let all: Vec<usize> = (0..=N).collect();
    let full = wait_until(Duration::from_secs(150), || m.all_ping(&all));
    assert!(
        full.is_some(),
        "unreachable: {:?}\n{}\n{}",
        m.unreachable_pairs(&all),
        m.logs(),
        m.registry.log()
    );
    println!(
        "full mesh of {} nodes that knew only the registry: {:.1} s after `run`",
        N + 1,
        started.elapsed().as_secs_f64()
    );
    for i in 1..=N {
        assert!(
            m.log_of(i).contains("registry: bootstrap peer"),
            "node {i} got no bootstrap peer\n{}",
            m.log_of(i)
        );
    }

    // The registry's private methods, from its own namespace.
    let ids: Vec<_> = (0..=N).map(|i| identity(&m.nodes[i].dir)).collect();
    let (code, versions) = m.registry.get("/versions");
    let versions = String::from_utf8_lossy(&versions).into_owned();
    println!("versions: {versions}");
    assert_eq!(code, 200, "{versions}");
    for id in &ids {
        let entry = format!("\"{}\": \"re6st-lite ", id.subnet.node.to_bits());
        assert!(versions.contains(&entry), "no {entry} in {versions}");
    }
    let (code, topology) = m.registry.get("/topology");
    let topology = String::from_utf8_lossy(&topology).into_owned();
    println!("topology: {topology}");
    assert_eq!(code, 200, "{topology}");
    let answered = list_of(&topology, "");
    for id in &ids {
        let cn = format!("\"{}\"", id.subnet.node.to_cn());
        assert!(answered.contains(&cn), "{cn} not crawled: {topology}");
    }
    // (Not getIPv4Information: on 0.642 it answers 204 whatever the
    // routes, its `for ... else: return` breaks out of the inner loop only.)

    // A revocation: the registry tells its node (code 0 on [::1]:326), which
    // fetches the new network config; its version spreads over the tunnels
    // and every node fetches it. The revoked node drops out.
    let version = |i: usize| m.status_number(i, "\"network_config_version\":");
    let before: Vec<_> = (0..N).map(version).collect();
    let cn = ids[N].subnet.node.to_cn().replace('/', "%2F");
    let (code, _) = m.registry.get(&format!("/revoke?cn_or_serial={cn}"));
    assert_eq!(code, 204);
    let revoked = Instant::now();
    let spread = wait_until(Duration::from_secs(60), || {
        (0..N).all(|i| version(i) > before[i])
    });
    assert!(
        spread.is_some(),
        "versions {before:?} -> {:?}\n{}",
        (0..N).map(version).collect::<Vec<_>>(),
        m.logs()
    );
    assert!(m.log_of(0).contains("registry: new network config"));
    println!(
        "new network version at every node {:.1} s after the revocation",
        revoked.elapsed().as_secs_f64()
    );
    let rest: Vec<usize> = (0..N).collect();
    assert!(
        wait_until(Duration::from_secs(30), || !m.ping(0, N)).is_some(),
        "the revoked node is still reached"
    );
    assert!(m.all_ping(&rest), "{:?}", m.unreachable_pairs(&rest));

    // The control socket goes with the node.
    let mut p = m.nodes[0].proc.take().expect("running");
    assert_eq!(p.terminate(Duration::from_secs(5)), Some(0), "{}", m.logs());
    assert!(!socket.exists(), "control socket left behind");
}
