//! The README's main command (`./demo.sh`): a small re6st network on this
//! machine. It starts the real registry, registers 4 nodes, runs each in
//! its own network namespace on one IPv4 bridge, waits for the mesh, then
//! prints a node's status and a ping matrix, and removes everything.
//! Needs root (namespaces); set RE6ST_LITE_BIN to pick the node binary.

use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4);
    let extra = ["--hello", "4", "--client-count", "2", "--max-clients", "4"];
    let opts = Options {
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    };
    println!("Starting the re6st registry and {n} nodes (one network namespace each) ...");
    let m = Mesh::start(n, opts);
    let start = Instant::now();
    let all: Vec<usize> = (0..n).collect();
    let ok = wait_until(Duration::from_secs(60), || {
        m.unreachable_pairs(&all).is_empty()
    });
    match ok {
        Some(_) => println!(
            "Every node reaches every other {:.1} s after start.\n",
            start.elapsed().as_secs_f64()
        ),
        None => println!("Not every pair reaches the other after 60 s; the matrix shows which.\n"),
    }
    for (i, node) in m.nodes.iter().enumerate() {
        println!("node {i}: {} underlay {}", node.prefix, node.ip);
    }
    println!("\n$ re6st-lite status   (node 0)\n{}", m.status_text(0));
    print!("ping matrix (row pings column):\n      ");
    for j in 0..n {
        print!("{j:>4}");
    }
    println!();
    for i in 0..n {
        print!("{i:>6}");
        for j in 0..n {
            let cell = if i == j {
                "-"
            } else if m.ping(i, j) {
                "ok"
            } else {
                "X"
            };
            print!("{cell:>4}");
        }
        println!();
    }
    println!("\nCleaning up (nodes, namespaces, registry).");
    drop(m);
    if ok.is_none() {
        std::process::exit(1);
    }
}
