//! re6st-lite node: a re6st overlay node in one binary.
//!
//! Layers, top down:
//! - [`cli`]: argument parsing and subcommand dispatch (the only place that exits).
//! - protocol state machines (tunnels, Babel, mesh, RA) are sans-IO: fed bytes and an
//!   injected instant, they return what to send and when to wake.
//! - one thin driver layer owns sockets, TUN, netlink and the clock.
//! - [`selftest`]: known-answer checks run on the target, so a miscompiled or
//!   wrong-endian cross build fails loudly.

#![warn(unreachable_pub)]

pub mod babel;
pub mod cli;
pub mod config;
pub mod driver;
pub mod failure;
pub mod fib;
pub mod info;
pub mod ip;
pub mod json;
pub mod lan;
pub mod logger;
pub mod mesh;
pub mod nat;
pub mod net;
pub mod node;
pub mod offload;
pub mod register;
pub mod rng;
pub mod rpcd;
pub mod selftest;
pub mod time;
pub mod tunnel;
pub mod uci;
