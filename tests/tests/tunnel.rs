//! Two nodes, each registered with the real re6st registry, in their own
//! network namespaces joined only by an IPv4 veth: the tunnel comes up, IPv6
//! flows between their overlay addresses (ping, iperf3), and a node stopped
//! with SIGTERM removes what it added to the kernel. Twice: both nodes with
//! TUN and UDP offloads (TCP super-packets cut and merged, UDP GSO/GRO), and
//! B without (RE6ST_LITE_OFFLOAD=0: one packet per syscall, as on kernels
//! that refuse them), talking to A with.

use std::path::Path;
use std::time::Duration;

use re6st_integration::netns::{veth, wait_until, Netns};
use re6st_integration::registry::{
    identity, node_bin, register_anonymous, Options, Registry, TempDir,
};

#[test]
fn two_nodes_over_an_ipv4_veth() {
    two_nodes(true);
}

#[test]
fn a_node_without_offloads_and_one_with() {
    two_nodes(false);
}

fn two_nodes(offload_b: bool) {
    let reg = Registry::start(Options::default());
    let tmp = TempDir::new("tunnel");
    let (dir_a, dir_b) = (tmp.sub("a"), tmp.sub("b"));
    register_anonymous(&reg.url(), &dir_a);
    register_anonymous(&reg.url(), &dir_b);
    let addr_a = identity(&dir_a).subnet.address().to_string();
    let addr_b = identity(&dir_b).subnet.address().to_string();

    let a = Netns::new("a");
    let b = Netns::new("b");
    veth(&a, "192.0.2.1/24", &b, "192.0.2.2/24");
    let bin = node_bin();
    // RE6ST_LITE_OFFLOAD=0 as on kernels that refuse offloads.
    let node = |ns: &Netns, dir: &Path, extra: &[&str], log: &str, offload: bool| {
        let state = format!("state_dir={}", dir.display());
        let run = format!("run_dir={}", dir.display());
        let bin = bin.to_string_lossy();
        let env = if offload {
            "RE6ST_LITE_OFFLOAD=1"
        } else {
            "RE6ST_LITE_OFFLOAD=0"
        };
        let mut args = vec![
            env,
            &bin,
            "--log-level",
            "debug",
            "run",
            "-o",
            &state,
            "-o",
            &run,
        ];
        args.extend_from_slice(extra);
        ns.spawn("env", &args, &tmp.path().join(log))
    };
    let mut node_a = node(&a, &dir_a, &[], "a.log", true);
    // B knows A's underlay address; A learns B's from B's handshake.
    let mut node_b = node(
        &b,
        &dir_b,
        &["-o", "peer=192.0.2.1:1194"],
        "b.log",
        offload_b,
    );
    let logs = || {
        format!(
            "--- a.log\n{}\n--- b.log\n{}",
            std::fs::read_to_string(tmp.path().join("a.log")).unwrap_or_default(),
            std::fs::read_to_string(tmp.path().join("b.log")).unwrap_or_default()
        )
    };

    let up = wait_until(Duration::from_secs(20), || b.ping6(&addr_a));
    let up = up.unwrap_or_else(|| panic!("no ping from B to A\n{}", logs()));
    println!("tunnel up and first ping answered after {up:?}");
    let offloads = |log: &str| {
        let text = std::fs::read_to_string(tmp.path().join(log)).unwrap_or_default();
        text.contains("offloads: TUN true, UDP true")
    };
    assert!(offloads("a.log"), "A has offloads\n{}", logs());
    assert_eq!(offloads("b.log"), offload_b, "{}", logs());
    assert!(a.ping6(&addr_b), "A reaches B too\n{}", logs());
    // The overlay device is up with room for the tunnel headers: 1500 on
    // the veth, minus IPv4 (20), UDP (8) and our data header and tag (32).
    let link = a.ip("-o link show re6st0");
    assert!(
        link.contains(" mtu 1440 ") && link.contains(",UP"),
        "{link}"
    );

    let ping = b.output(
        "ping",
        &["-6", "-n", "-c", "20", "-i", "0.05", "-q", &addr_a],
    );
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(text.contains(" 0% packet loss"), "{text}\n{}", logs());
    println!("{}", text.lines().last().unwrap_or(""));

    // A full-size TCP stream exercises MTU and the data path under load.
    let mut server = a.spawn(
        "iperf3",
        &["-s", "-1", "-B", &addr_a],
        &tmp.path().join("iperf3-server.log"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let iperf = b.output("iperf3", &["-c", &addr_a, "-t", "3", "-f", "m"]);
    let report = String::from_utf8_lossy(&iperf.stdout);
    assert!(iperf.status.success(), "iperf3: {report}\n{}", logs());
    let receiver = report
        .lines()
        .find(|l| l.contains("receiver"))
        .unwrap_or("");
    println!("iperf3 through the tunnel: {receiver}");
    let _ = server.terminate(Duration::from_secs(2));

    // SIGTERM: a clean exit that takes the node's routes and address along.
    assert_eq!(
        node_b.terminate(Duration::from_secs(5)),
        Some(0),
        "{}",
        logs()
    );
    assert_eq!(b.ip("-6 route show proto 114"), "", "routes left behind");
    assert!(!b.ip("-6 addr").contains(&addr_b), "address left behind");
    // A notices B closing (kill message) and drops its route.
    let gone = wait_until(Duration::from_secs(5), || !a.ping6(&addr_b));
    assert!(gone.is_some(), "{}", logs());
    assert!(node_a.running(), "A keeps running\n{}", logs());
    assert!(logs().contains("closed"), "{}", logs());
}
