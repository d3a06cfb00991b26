//! The random mesh: which peers to keep tunnels to (re6st's tunnel manager),
//! and the peer cache that survives restarts.

pub mod beacon;
pub mod cache;
pub mod ctl;
pub mod manager;
