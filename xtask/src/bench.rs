//! `cargo xtask bench`: measured in one run, as ratios against a baseline in the same run.
use std::path::Path;

pub fn run(_bondctl: &Path) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
