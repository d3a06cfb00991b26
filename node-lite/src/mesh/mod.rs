//! The random mesh: which peers to keep tunnels to (re6st's tunnel manager),
//! the peer cache that survives restarts, the control messages between
//! nodes and the network config version they pass on.

pub mod beacon;
pub mod cache;
pub mod ctl;
pub mod manager;
pub mod version;
