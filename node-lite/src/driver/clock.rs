//! The clocks the driver reads and hands to the state machines.

use crate::time::Instant;

/// The monotonic clock the state machines run on: CLOCK_BOOTTIME keeps
/// counting across suspend, so timers stay honest on battery gateways.
pub fn now() -> Instant {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .expect("CLOCK_BOOTTIME is available on Linux");
    Instant::from_millis(t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
}

/// The wall clock, Unix seconds (certificate dates); 0 before 1970.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
