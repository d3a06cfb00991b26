//! A wrong wall clock at boot ([issue 15]): routers without a real-time
//! clock start in the past, where every certificate looks not yet valid, and
//! NTP steps the clock later. The nodes connect once it is stepped, without
//! a restart; a clock stepped back later does not take working tunnels down.
//! Timers run on the monotonic clock, which libfaketime leaves alone here.

use std::time::{Duration, Instant};

use re6st_integration::mesh::{Clock, Mesh};
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

#[test]
fn nodes_booted_in_the_past_connect_once_the_clock_is_stepped() {
    let mut m = Mesh::build(2, Options::default());
    let clock = m.tmp.path().join("clock");
    // About 25 years back: the year 2001.
    std::fs::write(&clock, "-9000d\n").unwrap();
    for n in &mut m.nodes {
        n.clock = Some(Clock::File(clock.clone()));
    }
    m.spawn_all();
    let all = [0, 1];
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !m.all_ping(&all),
        "connected with a 2001 clock\n{}",
        m.logs()
    );

    let stepped = Instant::now();
    std::fs::write(&clock, "+0\n").unwrap();
    let up = wait_until(Duration::from_secs(120), || m.all_ping(&all));
    assert!(up.is_some(), "no tunnel after the step\n{}", m.logs());
    println!(
        "tunnel up {:.1} s after the clock was stepped to now",
        stepped.elapsed().as_secs_f64()
    );

    std::fs::write(&clock, "-9000d\n").unwrap();
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        m.all_ping(&all),
        "a clock stepped back broke the tunnel\n{}",
        m.logs()
    );
}
