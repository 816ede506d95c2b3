//! The end-to-end fault matrix (DESIGN.md), one module per check family; the harness is
//! `ecs_diag_matrix::matrix`. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod addr;
mod cloud;
mod crash;
mod dns;
mod firewall;
mod fix;
mod icmp;
mod link;
mod neigh;
mod net;
mod route;
mod sysctl;
mod trace;
mod watch;
