//! Shared harness for the integration tests in `tests/tests/`.

pub mod adversary;
pub mod forward;
pub mod mesh;
pub mod nat;
pub mod netns;
pub mod registry;
pub mod sim;
