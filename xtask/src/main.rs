//! `cargo xtask`: setup, build, run (and the demo), test, bench.

use clap::{Parser, Subcommand};

mod bench;
mod bench_failover;
mod build;
mod demo;
mod setup;
mod util;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and benchmark the eBPF bond")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what is missing: the pinned nightly with rust-src, bpf-linker, Debian tools
    /// (iproute2, nftables, bpftool, ...), and mount the BPF filesystem.
    Setup,
    /// Build the eBPF object and bondctl (release).
    Build,
    /// Set up, build, and run `bondctl ARGS`; without ARGS, run the demo: two namespaces joined
    /// by three links, a bond on each side, traffic and live status, then everything removed.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, and run every test: unit tests, then the namespace integration tests.
    Test {
        /// Only integration tests whose name contains this.
        filter: Option<String>,
    },
    /// Set up, build, and measure: packet rate through the bond vs a plain veth path, the
    /// programs' cost per packet, and failover time (carrier loss, silent loss).
    Bench,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::all(),
        Command::Build => build::all().map(drop),
        Command::Run { args } => {
            setup::all()?;
            let bondctl = build::all()?;
            if args.is_empty() { demo::run(&bondctl) } else { util::exec(std::process::Command::new(&bondctl).args(&args)) }
        }
        Command::Test { filter } => {
            setup::all()?;
            build::all()?;
            build::test(filter.as_deref())
        }
        Command::Bench => {
            setup::all()?;
            let bondctl = build::all()?;
            bench::run(&bondctl)?;
            bench_failover::run()
        }
    }
}
