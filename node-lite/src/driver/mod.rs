//! The driver layer: the only code that touches the operating system
//! (TUN device, netlink, sockets, clock). Protocol state machines never
//! call into it; the driver feeds them and carries out what they return.

pub mod clock;
pub mod iface;
pub mod lan;
pub mod lan_babel;
mod nat;
pub mod netlink;
mod os;
mod privileges;
mod registry;
mod registry_node;
pub mod run;
pub mod status;
pub mod tun;
pub mod udp;
