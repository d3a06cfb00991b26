//! The whole-network simulator's benchmark (not in CI):
//!
//!     cargo run --profile sim -p re6st-integration --bin sim -- 100 1000
//!
//! For each network size: the virtual time until 99 %, 99.9 % and all pairs
//! of nodes reach each other at one check (sampled pairs beyond 141 nodes),
//! Babel routes and neighbours per node, memory per node, control traffic per
//! node, path stretch, and the run's wall time, events and memory. Progress
//! goes to stderr. Options: `--minutes M` (virtual time allowed to converge,
//! 30; fractions allowed), `--steady S` (virtual seconds of steady state over
//! which traffic is measured, 300), `--max-routes N` (the nodes' `max_routes`;
//! the daemon's default, 4096, as on ramips-mt7621; x86-64 boards have 65,536).
//! See `tests/BENCH.md`.

use std::time::Instant as WallClock;

use re6st_integration::sim::{rss_bytes, Path, Pki, Sim};

/// Pairs checked for reachability and stretch (all of them below this).
const SAMPLE: usize = 20_000;

struct Opts {
    sizes: Vec<usize>,
    minutes: f64,
    steady_s: u64,
    max_routes: Option<u32>,
}

fn opts() -> Opts {
    let mut o = Opts {
        sizes: Vec::new(),
        minutes: 30.0,
        steady_s: 300,
        max_routes: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || -> f64 { args.next().and_then(|v| v.parse().ok()).expect("a number") };
        match a.as_str() {
            "--minutes" => o.minutes = value(),
            "--steady" => o.steady_s = value() as u64,
            "--max-routes" => o.max_routes = Some(value() as u32),
            n => o.sizes.push(n.parse().expect("a network size")),
        }
    }
    if o.sizes.is_empty() {
        o.sizes.push(100);
    }
    o
}

fn main() {
    let o = opts();
    println!(
        "| nodes | 99 % of pairs (virtual s) | 99.9 % | all pairs at one check | reached at the end | Babel routes/node (selected) | \
         neighbours/node | memory KB/node | control B/s/node | stretch median | stretch p90 | \
         wall s | events | RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &o.sizes {
        run(n, &o);
    }
}

fn run(n: usize, o: &Opts) {
    let wall = WallClock::now();
    let rss0 = rss_bytes();
    let pki = Pki::new(1);
    let mut sim = Sim::new(&pki, n, 7, 10_000);
    if let Some(m) = o.max_routes {
        sim.config.max_routes = m;
    }
    let pairs = sim.pairs(SAMPLE);
    // Every node starts within 10 s; reachability checked every 10 s.
    let deadline = (o.minutes * 60_000.0) as u64;
    let mut full = None;
    let (mut p99, mut p999) = (None, None);
    while sim.now < deadline {
        sim.run_until(sim.now + 10_000);
        let reached = sim.reached(&pairs);
        let [routes, _, neighbours] = tables(&sim, n, false);
        eprintln!(
            "{n} nodes: {:>5} s virtual, {reached}/{} pairs, {routes:.0} routes and {neighbours:.1} \
             neighbours per node, {:.0} s wall, {} MB",
            sim.now / 1000,
            pairs.len(),
            wall.elapsed().as_secs_f64(),
            rss_bytes() / 1_000_000
        );
        if reached * 100 >= pairs.len() * 99 {
            p99 = p99.or(Some(sim.now));
        }
        if reached * 1000 >= pairs.len() * 999 {
            p999 = p999.or(Some(sim.now));
        }
        if reached == pairs.len() {
            full = Some(sim.now);
            break;
        }
    }
    // Steady state: traffic over 5 more minutes (one tunnel refresh).
    let (b0, _) = sim.sent();
    let t0 = sim.now;
    sim.run_until(t0 + o.steady_s * 1000);
    let (b1, _) = sim.sent();
    let control = (b1 - b0) as f64 / n as f64 / ((sim.now - t0).max(1) as f64 / 1000.0);
    let [routes, selected, neighbours] = tables(&sim, n, true);
    let check = sim.pairs(SAMPLE);
    let mut stretch: Vec<f64> = Vec::new();
    let mut reached = 0;
    for &(a, b) in &check {
        let (
            Path::Reached {
                latency_ms: there, ..
            },
            Path::Reached {
                latency_ms: back, ..
            },
        ) = (sim.path(a, b), sim.path(b, a))
        else {
            continue;
        };
        reached += 1;
        // Best with at most one relay: O(n) per pair, so fewer pairs for
        // large networks.
        if stretch.len() < 2_000 {
            stretch.push((there + back) / sim.underlay.best_rtt(a, b));
        }
    }
    stretch.sort_by(f64::total_cmp);
    let q = |f: f64| {
        stretch
            .get(((stretch.len() as f64 - 1.0) * f) as usize)
            .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
    };
    let rss = rss_bytes();
    let when = |t: Option<u64>| {
        t.map_or_else(
            || format!("not within {} s", deadline / 1000),
            |ms| format!("{}", ms / 1000),
        )
    };
    println!(
        "| {n} | {} | {} | {} | {reached}/{} | {:.0} ({:.0}) | {:.1} | {:.0} | {control:.0} | {} | {} | {:.0} | {} | {} |",
        when(p99),
        when(p999),
        when(full),
        check.len(),
        routes,
        selected,
        neighbours,
        rss.saturating_sub(rss0) as f64 / n as f64 / 1024.0,
        q(0.5),
        q(0.9),
        wall.elapsed().as_secs_f64(),
        sim.events,
        rss / 1_000_000,
    );
}

/// Babel routes, selected routes (0 unless `selected`: that takes a whole
/// status report per node) and neighbours, per live node.
fn tables(sim: &Sim, n: usize, selected: bool) -> [f64; 3] {
    let t = node_lite::time::Instant::from_millis(sim.now);
    let (mut sum, mut live) = ([0usize; 3], 0);
    for node in (0..n).filter_map(|i| sim.node(i)) {
        let (routes, neighbours) = node.table_sizes(t);
        let chosen = if selected {
            node.status(t).routes.len()
        } else {
            0
        };
        sum = [sum[0] + routes, sum[1] + chosen, sum[2] + neighbours];
        live += 1;
    }
    sum.map(|x| x as f64 / live.max(1) as f64)
}
