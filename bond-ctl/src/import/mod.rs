//! `bondctl import`: an existing bond's definition (netplan, ifupdown, NetworkManager keyfiles,
//! systemd-networkd units, a running bond's sysfs directory or `/proc/net/bonding` file) as this
//! project's YAML configuration.
//!
//! The parsers are pure: each takes files' paths and texts (sysfs: a map of file name to
//! content) and returns the bonds found, their options under bonding.ko's names ([`RawBond`]);
//! [`convert`] checks every value against the option table and writes the YAML, naming in a
//! `# not imported` comment (and a warning) every option without an equivalent here. Only
//! [`run`] reads files. Errors are [`ConfigError`]s naming the file, the line and the key.

pub mod convert;
pub mod ifupdown;
pub mod ini;
pub mod netplan;
pub mod networkd;
pub mod nm;
pub mod proc;
pub mod sysfs;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::Context;

pub use crate::config::ConfigError;

/// Where a definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// netplan YAML (`network.bonds`).
    Netplan,
    /// `/etc/network/interfaces` (ifenslave's `bond-*` options).
    Ifupdown,
    /// NetworkManager keyfiles (`*.nmconnection`): the bond's and its ports'.
    Networkmanager,
    /// systemd-networkd units: the bond's `.netdev`, the members' and the bond's `.network`.
    Networkd,
    /// A running bond's `/sys/class/net/BOND/bonding` directory.
    Sysfs,
    /// A running bond's `/proc/net/bonding/BOND`.
    Proc,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Netplan => "netplan",
            Source::Ifupdown => "ifupdown",
            Source::Networkmanager => "NetworkManager",
            Source::Networkd => "systemd-networkd",
            Source::Sysfs => "sysfs",
            Source::Proc => "/proc/net/bonding",
        }
    }
}

/// A file's (or a sysfs directory's) content.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    /// File name -> content (sysfs).
    Files(BTreeMap<String, String>),
}

#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub content: Content,
}

/// A place in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl Loc {
    pub fn new(file: &Path, line: impl Into<Option<usize>>) -> Loc {
        Loc { file: file.to_path_buf(), line: line.into() }
    }

    /// An error at this place.
    pub fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError { file: self.file.clone(), line: self.line, key: key.into(), reason: reason.into() }
    }

    /// `FILE:LINE`.
    pub fn show(&self) -> String {
        format!("{}{}", self.file.display(), self.line.map(|l| format!(":{l}")).unwrap_or_default())
    }
}

/// A bond as a source defines it, options under bonding.ko's names, not yet checked.
#[derive(Debug, Clone)]
pub struct RawBond {
    pub name: String,
    pub at: Loc,
    /// How the source gives members, for the error when there are none.
    pub members_key: &'static str,
    pub links: Vec<(String, Loc)>,
    /// `ADDR/PREFIX`.
    pub addresses: Vec<(String, Loc)>,
    pub options: Vec<RawOpt>,
    /// What the source gives without an equivalent here.
    pub skipped: Vec<Skip>,
    /// A running bond's state (sysfs, /proc): every option is shown, set or not, so those
    /// at bonding's defaults and those of other modes are left out without a comment.
    pub kernel_state: bool,
}

impl RawBond {
    pub fn new(name: &str, at: Loc, members_key: &'static str) -> RawBond {
        RawBond {
            name: name.to_string(),
            at,
            members_key,
            links: Vec::new(),
            addresses: Vec::new(),
            options: Vec::new(),
            skipped: Vec::new(),
            kernel_state: false,
        }
    }

    /// Option `key` (bonding.ko's name) as the source wrote it under `src_key`.
    pub fn opt(&mut self, key: &str, value: impl Into<String>, src_key: &str, at: &Loc) {
        self.options.push(RawOpt { key: key.to_string(), value: value.into(), src_key: src_key.to_string(), at: at.clone() });
    }

    pub fn skip(&mut self, src_key: &str, value: &str, reason: impl Into<String>, at: &Loc) {
        self.skipped.push(Skip { at: at.clone(), key: src_key.to_string(), value: value.to_string(), reason: reason.into() });
    }

    /// The source's MTU (the bond's `mtu`: members get it as they join).
    pub fn mtu(&mut self, src_key: &str, value: &str, at: &Loc) {
        self.opt("mtu", value.trim(), src_key, at);
    }
}

/// One option, under bonding.ko's name (`miimon`), with the value as text (durations already
/// in the option's unit; lists comma-separated; per-member values `LINK:N`).
#[derive(Debug, Clone)]
pub struct RawOpt {
    pub key: String,
    pub value: String,
    /// As the source spells it (`bond-miimon`, `MIIMonitorSec`), for messages.
    pub src_key: String,
    pub at: Loc,
}

/// Something the source gives that is not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub at: Loc,
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// The result: the YAML and the warnings (`FILE:LINE: KEY: not imported: REASON`).
#[derive(Debug, Clone)]
pub struct Imported {
    pub yaml: String,
    pub warnings: Vec<String>,
}

/// Which source an input is, from its path and content.
pub fn detect(input: &Input) -> Option<Source> {
    let text = match &input.content {
        Content::Files(_) => return Some(Source::Sysfs),
        Content::Text(t) => t,
    };
    let p = input.path.to_string_lossy();
    let ext = input.path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let lines = || text.lines().map(str::trim);
    if p.contains("/proc/net/bonding/") || lines().any(|l| l.starts_with("Bonding Mode:")) {
        Some(Source::Proc)
    } else if ["netdev", "network", "link"].contains(&ext) || lines().any(|l| l == "[NetDev]" || l == "[Match]") {
        Some(Source::Networkd)
    } else if ext == "nmconnection" || lines().any(|l| l == "[connection]") {
        Some(Source::Networkmanager)
    } else if lines().any(|l| l.starts_with("iface ") || l.starts_with("auto ") || l.starts_with("allow-")) {
        Some(Source::Ifupdown)
    } else if lines().any(|l| l.starts_with("network:")) {
        Some(Source::Netplan)
    } else {
        None
    }
}

/// Converts the inputs (all of one source: `from`, or detected) into the configuration.
pub fn import(from: Option<Source>, inputs: &[Input]) -> Result<Imported, ConfigError> {
    let first = inputs.first().ok_or_else(|| Loc::new(Path::new("(import)"), None).err("(file)", "no input"))?;
    let source = match from {
        Some(s) => s,
        None => {
            let s = detect(first)
                .ok_or_else(|| Loc::new(&first.path, None).err("(file)", "cannot tell which kind of definition this is: give --from"))?;
            for i in &inputs[1..] {
                if let Some(other) = detect(i).filter(|o| *o != s) {
                    return Err(Loc::new(&i.path, None).err(
                        "(file)",
                        format!("looks like {} while {} is {}: import one kind at a time", other.name(), first.path.display(), s.name()),
                    ));
                }
            }
            s
        }
    };
    let texts = || -> Result<Vec<(&Path, &str)>, ConfigError> {
        inputs
            .iter()
            .map(|i| match &i.content {
                Content::Text(t) => Ok((i.path.as_path(), t.as_str())),
                Content::Files(_) => Err(Loc::new(&i.path, None).err("(file)", format!("a directory: {} reads files", source.name()))),
            })
            .collect()
    };
    let bonds = match source {
        Source::Netplan => netplan::parse(&texts()?)?,
        Source::Ifupdown => ifupdown::parse(&texts()?)?,
        Source::Networkmanager => nm::parse(&texts()?)?,
        Source::Networkd => networkd::parse(&texts()?)?,
        Source::Proc => texts()?.into_iter().map(|(p, t)| proc::parse(p, t)).collect::<Result<_, _>>()?,
        Source::Sysfs => inputs
            .iter()
            .map(|i| match &i.content {
                Content::Files(f) => sysfs::parse(&i.path, f),
                Content::Text(_) => Err(Loc::new(&i.path, None).err("(file)", "sysfs: give the bond's bonding directory")),
            })
            .collect::<Result<_, _>>()?,
    };
    let files: Vec<String> = inputs.iter().map(|i| i.path.display().to_string()).collect();
    convert::convert(source, &files, bonds)
}

/// Milliseconds of a time span as netplan and systemd write it: `100`, `100ms`, `1s`, `1.5s`,
/// `1min 30s`, `2h`. A bare number is in `bare_ms` milliseconds (1 for netplan, 1000 for
/// systemd, whose bare numbers are seconds).
pub fn duration_ms(text: &str, bare_ms: u64) -> Result<u64, String> {
    let bad = |why: &str| format!("\"{text}\" is not a time span ({why})");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut total_us: u128 = 0;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, after) = rest.split_at(n);
        let u = after.find(|c: char| c.is_ascii_digit() || c.is_whitespace()).unwrap_or(after.len());
        let (unit, after) = after.split_at(u);
        let unit_us: u128 = match unit {
            "" => u128::from(bare_ms) * 1000,
            "us" | "usec" | "µs" => 1,
            "ms" | "msec" => 1000,
            "s" | "sec" | "second" | "seconds" => 1_000_000,
            "m" | "min" | "minute" | "minutes" => 60_000_000,
            "h" | "hr" | "hour" | "hours" => 3_600_000_000,
            "d" | "day" | "days" => 86_400_000_000,
            _ => return Err(bad(&format!("unknown unit \"{unit}\""))),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 9 {
            return Err(bad("a number with a unit: 100ms, 1s"));
        }
        let int: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad("too large"))? };
        let frac_us = if frac.is_empty() { 0 } else { frac.parse::<u128>().unwrap_or(0) * unit_us / 10u128.pow(frac.len() as u32) };
        total_us = total_us.saturating_add(int.saturating_mul(unit_us)).saturating_add(frac_us);
        rest = after.trim_start();
    }
    if !total_us.is_multiple_of(1000) {
        return Err(bad("not a whole number of milliseconds"));
    }
    u64::try_from(total_us / 1000).map_err(|_| bad("too large"))
}

/// Whole seconds of a time span (`lp_interval`).
pub fn duration_s(text: &str, bare_ms: u64) -> Result<u64, String> {
    let ms = duration_ms(text, bare_ms)?;
    if !ms.is_multiple_of(1000) {
        return Err(format!("\"{text}\" is not a whole number of seconds"));
    }
    Ok(ms / 1000)
}

/// A boolean as systemd, netplan and NetworkManager write them, as bonding's 1 or 0.
pub fn bool_01(text: &str) -> Result<&'static str, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Ok("1"),
        "0" | "no" | "n" | "false" | "f" | "off" => Ok("0"),
        _ => Err(format!("\"{text}\" is not a boolean (yes/no, true/false, 1/0)")),
    }
}

/// The error for an unknown key, with the closest known one when it is close.
pub fn unknown_key<S: AsRef<str>>(at: &Loc, key: &str, section: &str, known: &[S]) -> ConfigError {
    // The last segment of a dotted key is the one misspelt.
    let last = key.rsplit('.').next().unwrap_or(key);
    let closest = known
        .iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(&last.to_lowercase(), &k.as_ref().to_lowercase()), k.as_ref()))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score >= 0.7);
    let hint = closest.map(|(_, k)| format!("; did you mean `{k}`?")).unwrap_or_default();
    at.err(key, format!("unknown key in {section}{hint}"))
}

/// `bondctl import`: reads the paths (a directory: its files; a sysfs directory: the bond's
/// `bonding` files), converts, prints the warnings and writes the YAML (nothing on error).
pub fn run(from: Option<Source>, output: Option<&Path>, paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    for p in paths {
        if !p.is_dir() {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
            inputs.push(Input { path: p.clone(), content: Content::Text(text) });
            continue;
        }
        let bonding = if p.join("bonding").is_dir() { p.join("bonding") } else { p.clone() };
        if from == Some(Source::Sysfs) || bonding.join("slaves").exists() {
            let mut files = BTreeMap::new();
            for e in std::fs::read_dir(&bonding).with_context(|| format!("{}: cannot read", bonding.display()))? {
                let e = e?;
                // Write-only or vanished files say nothing.
                if let (Ok(text), Some(name)) = (std::fs::read_to_string(e.path()), e.file_name().to_str()) {
                    files.insert(name.to_string(), text);
                }
            }
            if let Some(dev) = bonding.parent()
                && let Ok(mtu) = std::fs::read_to_string(dev.join("mtu"))
            {
                files.insert("../mtu".to_string(), mtu);
            }
            inputs.push(Input { path: bonding, content: Content::Files(files) });
        } else {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot read", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).with_context(|| format!("{}: cannot read", f.display()))?;
                inputs.push(Input { path: f, content: Content::Text(text) });
            }
        }
    }
    let out = import(from, &inputs)?;
    for w in &out.warnings {
        eprintln!("bondctl import: {w}");
    }
    match output {
        Some(f) => std::fs::write(f, &out.yaml).with_context(|| format!("{}: cannot write", f.display()))?,
        None => print!("{}", out.yaml),
    }
    Ok(())
}
