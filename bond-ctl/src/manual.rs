//! The manual outside `--help`: man pages (`bondctl(8)` and `bondctl-SUBCOMMAND(8)`) and shell
//! completions, both generated from the clap definitions in [`crate::cli`], so they cannot
//! drift from the command line. `cargo xtask dist` writes them into the package.

use std::{io::Write, path::Path};

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;

/// The shells completions are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "bondctl", out);
    Ok(())
}

/// Writes `bondctl.8` and a `bondctl-NAME.8` for each visible subcommand into `dir`; returns
/// the pages written.
pub fn man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, page) in pages()? {
        let path = dir.join(&name);
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Every page as (file name, roff text). Section 8: bondctl administers the system's network.
fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let cmd = Cli::command().name("bondctl");
    let mut pages = vec![("bondctl.8".to_string(), render(&cmd)?)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("bondctl-{}", sub.get_name());
        // The page's title names the whole command; `bondctl up` is run as such.
        let sub = sub.clone().name(name.clone()).display_name(name.clone()).bin_name(format!("bondctl {}", sub.get_name()));
        pages.push((format!("{name}.8"), render(&sub)?));
    }
    Ok(pages)
}

fn render(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Manager's Manual")
        .source(concat!("bondctl ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_for_the_command_and_each_subcommand_naming_its_options() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for expected in
            ["bondctl.8", "bondctl-up.8", "bondctl-status.8", "bondctl-set-policy.8", "bondctl-check.8", "bondctl-completions.8"]
        {
            assert!(names.contains(&expected), "{names:?}");
        }
        assert!(!names.contains(&"bondctl-man-pages.8"), "hidden");
        let up = String::from_utf8(pages.iter().find(|(n, _)| n == "bondctl-up.8").unwrap().1.clone()).unwrap();
        assert!(up.starts_with(".ie") || up.contains(".TH bondctl-up 8"), "{}", &up[..200]);
        assert!(up.contains("persist"), "options are listed");
        let main = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(main.contains("set\\-policy") || main.contains("set-policy"), "subcommands listed");
    }

    #[test]
    fn completions_name_every_subcommand_for_each_shell() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            for sub in ["up", "status", "set-policy", "add-link", "check"] {
                assert!(text.contains(sub), "{shell:?} lacks {sub}");
            }
        }
    }
}
