//! `cargo xtask`: setup, build, run (and the demo), test, fuzz, bench.

use clap::{Parser, Subcommand};

mod bench;
mod bench_aggregation;
mod bench_controller;
mod bench_emulator;
mod bench_failover;
mod bench_ovs;
mod bench_scale;
mod bench_stages;
mod bench_table;
mod book;
mod build;
mod demo;
mod dist;
mod fuzz;
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
    /// Build the manual (mdBook, docs/ into docs/book/) and check every link of it and of the
    /// README offline.
    Book,
    /// Build the Debian package (target/dist/bondctl_VERSION_ARCH.deb): bondctl, its systemd
    /// unit, the example configuration, man pages and bash/zsh/fish completions. With
    /// `--install-test`, install it here, check it (`bondctl --version`, `man -w bondctl`,
    /// `systemd-analyze verify`) and purge it again.
    Dist {
        #[arg(long)]
        install_test: bool,
    },
    /// Set up, build, and run `bondctl ARGS`; without ARGS, run the demo: two namespaces joined
    /// by three links, a bond on each side, traffic and live status, then everything removed.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, and run a demo: without options the one `run` shows; `--wan`: two
    /// sites bonded over three emulated WAN paths (VXLAN tunnels), balance-aware by measured
    /// quality, while one path slows, another loses frames, and a third is cut and restored.
    Demo {
        #[arg(long)]
        wan: bool,
    },
    /// Set up, build, and run every test: unit tests, then the namespace integration tests, the
    /// book built with its links checked, the Debian package installed and checked, `bench --quick`, then a bounded run of the fuzzers
    /// (the configuration parser, the frame parsers).
    Test {
        /// Only integration tests whose name contains this.
        filter: Option<String>,
        /// Seconds to fuzz after the tests (plus the fuzz build), split between the targets; 0
        /// skips it. Default 60, or 0 when FILTER is given.
        #[arg(long, value_name = "N")]
        fuzz_seconds: Option<u64>,
    },
    /// Fuzz (cargo-fuzz, installed if missing, with the pinned nightly) every target for
    /// SECONDS split between them, or one target (0: until it crashes or Ctrl-C); a crash fails
    /// with the saved input.
    Fuzz {
        #[arg(default_value_t = 60)]
        seconds: u64,
        /// Only this target: `config` (the configuration parser) or `frames` (packet headers,
        /// LACPDUs, markers, probe events).
        #[arg(long, value_parser = fuzz::TARGETS.map(|t| t.name))]
        target: Option<String>,
    },
    /// Set up, build, and measure: packet rate through the bond vs a plain veth path, the
    /// programs' cost per packet, and failover time (carrier loss, silent loss, and silent
    /// loss while status, flows and metrics are asked in a loop).
    Bench {
        /// Only this part: `rate` (packet rate, program cost, the table per policy and Open
        /// vSwitch's bond), `aggregation` (goodput over rate-limited members), `scale` (by
        /// members and flows), `controller` (CPU and memory of the daemon), `failover`,
        /// `stages` (what each stage of the transmit program costs; part of `rate`), `loop`
        /// (the programs in the kernel's test runner, in seconds: part of `stages`), or
        /// `emulator` (the lab's link emulator: what rate it carries faithfully; not part of a
        /// full run).
        #[arg(value_parser = ["rate", "aggregation", "scale", "controller", "failover", "stages", "loop", "emulator"])]
        only: Option<String>,
        /// One short round of each (checks that the bench works; `cargo xtask test` runs it).
        #[arg(long)]
        quick: bool,
        /// Only the fault suite, each fault kept up for a minute (3 s with --quick): flapping
        /// links, random loss, every member down, a member deleted, the daemon killed during
        /// operations, malformed frames through every policy.
        #[arg(long, conflicts_with = "only")]
        faults: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::all(),
        Command::Build => build::all().map(drop),
        Command::Book => book::run(),
        Command::Dist { install_test } => {
            setup::all()?;
            let deb = dist::run(&build::all()?)?;
            if install_test { dist::package_test(&deb) } else { Ok(()) }
        }
        Command::Run { args } => {
            setup::all()?;
            let bondctl = build::all()?;
            if args.is_empty() { demo::run(&bondctl) } else { util::exec(std::process::Command::new(&bondctl).args(&args)) }
        }
        Command::Demo { wan } => {
            setup::all()?;
            let bondctl = build::all()?;
            if wan { demo::wan(&bondctl) } else { demo::run(&bondctl) }
        }
        Command::Test { filter, fuzz_seconds } => {
            setup::all()?;
            let bondctl = build::all()?;
            build::test(filter.as_deref())?;
            if filter.is_none() {
                book::run().map_err(|e| e.context("cargo xtask book"))?;
                // The package, installed and checked as a user would (then purged).
                dist::package_test(&dist::run(&bondctl)?).map_err(|e| e.context("cargo xtask dist --install-test"))?;
                // The bench still works (its numbers, from one short round, mean little here).
                bench::run(&bondctl, bench::Plan::QUICK)
                    .and_then(|()| bench_controller::run(true))
                    .and_then(|()| bench_failover::run(1))
                    .map_err(|e| e.context("cargo xtask bench --quick"))?;
            }
            match fuzz_seconds.unwrap_or(if filter.is_some() { 0 } else { 60 }) {
                0 => Ok(()),
                seconds => fuzz::run(seconds, None),
            }
        }
        Command::Fuzz { seconds, target } => {
            setup::nightly()?;
            fuzz::run(seconds, target.as_deref())
        }
        Command::Bench { only, quick, faults } => {
            setup::all()?;
            let bondctl = build::all()?;
            if faults {
                return build::faults(if quick { 3 } else { 60 });
            }
            let (plan, rounds) = if quick { (bench::Plan::QUICK, 1) } else { (bench::Plan::FULL, 7) };
            match only.as_deref() {
                Some("emulator") => bench_emulator::run(&bondctl),
                Some("rate") => bench::run(&bondctl, plan),
                Some("stages") => bench_stages::run(&bondctl, plan),
                Some("loop") => bench_stages::run_loop(&bondctl, 3 * plan.rounds),
                Some("controller") => bench_controller::run(quick),
                Some("aggregation") => bench_aggregation::run(quick),
                Some("scale") => bench_scale::run(quick),
                Some(_) => bench_failover::run(rounds),
                None => bench::run(&bondctl, plan)
                    .and_then(|()| bench_aggregation::run(quick))
                    .and_then(|()| bench_scale::run(quick))
                    .and_then(|()| bench_controller::run(quick))
                    .and_then(|()| bench_failover::run(rounds)),
            }
        }
    }
}
