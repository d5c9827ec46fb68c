//! The bond's controller: configuration, planning, the data plane's maps, the daemon and the
//! `bondctl` command line. `plan` and `alloc` are pure policy logic; `dataplane`, `netdev`,
//! `control` and `sys` do the I/O.

pub mod alb;
pub mod alloc;
pub mod bond;
pub mod carrier;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod frames;
pub mod health;
pub mod lacp;
pub mod member;
pub mod neighbours;
pub mod netdev;
pub mod placement;
pub mod plan;
pub mod prometheus;
pub mod rawsock;
pub mod runstate;
pub mod status;
pub mod sys;
