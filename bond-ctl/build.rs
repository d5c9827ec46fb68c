//! Embeds the eBPF object (`$OUT_DIR/bond`).
//!
//! - `BOND_EBPF_OBJ=/path/to/bond`: use that object (what `cargo xtask` does: it builds the
//!   object itself with the pinned nightly).
//! - `BOND_EBPF_SKIP=1`: embed an empty placeholder, for `cargo check`/`clippy` without the eBPF
//!   toolchain; the resulting binary cannot load a bond.
//! - Otherwise build `bond-ebpf` with aya-build and the pinned nightly.
use std::{env, fs, path::PathBuf};

use anyhow::{Context, anyhow};

/// Must match xtask's pin (see the manual's Toolchain page).
const NIGHTLY: &str = "nightly-2026-05-20";

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?).join("bond");
    println!("cargo::rerun-if-env-changed=BOND_EBPF_OBJ");
    println!("cargo::rerun-if-env-changed=BOND_EBPF_SKIP");
    if let Some(obj) = env::var_os("BOND_EBPF_OBJ") {
        println!("cargo::rerun-if-changed={}", obj.to_string_lossy());
        fs::copy(&obj, &out).with_context(|| format!("copying {obj:?}"))?;
        return Ok(());
    }
    if env::var_os("BOND_EBPF_SKIP").is_some_and(|v| v == "1") {
        fs::write(&out, [])?;
        return Ok(());
    }
    let meta = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let pkg = meta.packages.into_iter().find(|p| p.name.as_str() == "bond-ebpf").ok_or_else(|| anyhow!("bond-ebpf package not found"))?;
    let root = pkg.manifest_path.parent().ok_or_else(|| anyhow!("no parent"))?.to_string();
    println!("cargo::rerun-if-changed={}/../bond-common/src", root);
    aya_build::build_ebpf(
        [aya_build::Package { name: "bond-ebpf", root_dir: &root, ..Default::default() }],
        aya_build::Toolchain::Custom(NIGHTLY),
    )
}
