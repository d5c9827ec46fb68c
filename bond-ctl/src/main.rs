use clap::Parser;

use bond_ctl::{cli::Cli, sys};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BONDCTL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Some(ns) = &cli.netns
        && let Err(e) = sys::enter_netns(ns)
    {
        eprintln!("bondctl: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    match cli.command.execute() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bondctl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
