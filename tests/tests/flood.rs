//! A member floods a node with routes (issue 19, floods and full tables).
//! Node N runs with `max_routes 1024`. A member opens a real tunnel to it,
//! with the network's MAC keys, and relays 10,000 prefixes inside the
//! network from a second engine behind it, the way any node relays what its
//! neighbours announce. N's table stays within its cap, `status` counts what
//! it refused, the condition is logged once, and N's routes to its real
//! tunnel peers stay: N keeps pinging V throughout. Prints N's CPU and RSS.

use std::time::{Duration, Instant};

use node_lite::babel::wire::Prefix as BabelPrefix;
use re6st_integration::adversary::BabelMember;
use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

const FLOOD: usize = 10_000;
const MAX_ROUTES: u64 = 1024;

#[test]
fn a_route_flood_stays_within_the_table_and_spares_real_routes() {
    let mut m = Mesh::build(3, Options::default());
    let (n, v, x) = (0, 1, 2);
    m.nodes[n].options.push(format!("max_routes={MAX_ROUTES}"));
    let n_at = format!("{}:1194", m.nodes[n].ip);
    m.spawn(n, &[]);
    m.spawn(v, std::slice::from_ref(&n_at));
    assert!(
        wait_until(Duration::from_secs(30), || m.ping(n, v)).is_some(),
        "{}",
        m.logs()
    );
    let rss_before = m.rss_kib(n).unwrap_or(0);

    let mut member = BabelMember::connect(
        &m.nodes[x].ns,
        format!("{}:1194", m.nodes[x].ip).parse().unwrap(),
        &m.nodes[x].dir,
        n_at.parse().unwrap(),
        FLOOD + 64,
    );
    // 10,000 /64s of the network (2001:db8:42::/48), none inside a node's /68.
    let prefixes: Vec<BabelPrefix> = (1..=FLOOD as u16)
        .map(|i| BabelPrefix::from_addr(format!("2001:db8:42:{i:x}::").parse().unwrap(), 64))
        .collect();
    member.relay_from(2, &prefixes);

    // Ping V all along: the flood must not take N's real routes.
    let ping = m.pinger(n, v, 0.1, 30);
    let ticks0 = m.cpu_ticks(n);
    let t0 = Instant::now();
    let mut full_at = None;
    let pinger = std::thread::spawn(move || ping.loss());
    while t0.elapsed() < Duration::from_secs(28) {
        member.pump(Duration::from_millis(200));
        if full_at.is_none() && m.status_number(n, "\"table_full\":").unwrap_or(0) > 0 {
            full_at = Some(t0.elapsed());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let ticks = m.cpu_ticks(n) - ticks0;
    let (loss, summary) = pinger.join().unwrap();
    let json = m.status_json(n);
    let (Some(routes), Some(refused)) = (
        m.status_number(n, "\"stats\":{\"routes\":"),
        m.status_number(n, "\"table_full\":"),
    ) else {
        panic!(
            "no status from N (CPU {:.0} % over {secs:.0} s):\n{}",
            100.0 * ticks as f64 / 100.0 / secs,
            m.log_of(n)
        );
    };
    let rss_after = m.rss_kib(n).unwrap_or(0);
    let log = m.log_of(n);
    let warned = log.matches("table full").count();
    println!(
        "flood of {FLOOD} relayed routes, max_routes {MAX_ROUTES}: table full after {:.1} s; \
         {routes} routes held, {refused} entries refused, {warned} warning(s); \
         N's CPU {:.1} % of a core over {secs:.0} s; RSS {rss_before} -> {rss_after} KiB; ping N->V: {summary}",
        full_at.map_or(f64::NAN, |d| d.as_secs_f64()),
        100.0 * ticks as f64 / 100.0 / secs,
    );
    assert!(full_at.is_some(), "the table never filled:\n{json}");
    assert!(routes <= MAX_ROUTES, "{routes} routes held");
    assert_eq!(warned, 1, "the full table is logged once:\n{log}");
    assert!(
        json.contains(&format!(
            "{{\"prefix\":\"{}\",\"from\":\"::/0\"",
            m.nodes[v].prefix
        )),
        "V's route lost:\n{json}"
    );
    assert_eq!(loss, 0.0, "ping N->V during the flood: {summary}");
    assert!(m.ping(n, v));
}
