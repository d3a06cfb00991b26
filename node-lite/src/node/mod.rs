//! The node's core, sans-IO: what ties the tunnels, Babel and the mesh
//! manager together, apart from the driver that moves bytes (issue 13 moves
//! the rest of `driver/run.rs` here).

pub mod netconf;
pub mod renewal;
pub mod routing;
pub mod settings;
pub mod status;
