//! Configuration: the file format ([`file`]), its validated form ([`model`]) and loading.
//!
//! Loading is all-or-nothing: a file is parsed and validated completely before anything uses
//! it, and any problem is a [`ConfigError`] naming the file, the key and the reason.

mod classes;
pub mod file;
#[cfg(test)]
mod fixtures;
mod kernel;
pub mod live;
pub mod model;
pub mod options;
mod resolve;
mod suggest;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use kernel::bond_yaml;
pub use model::{BondSpec, ClassPolicy, Config, LacpSpec, LinkSpec, Peer, PeerPolicy, PolicySpec, TlbSpec};
pub use resolve::{IMPLICIT_BOND, check_ifname, check_policy_links};

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {key}: {reason}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted path of the key, e.g. `bonds.bond0.policy` (or `(file)` for the file as a whole).
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { file: file.to_path_buf(), line: None, key: key.into(), reason: reason.into() }
    }
}

/// Reads and validates a configuration file (YAML, or JSON for `.json` files).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, "(file)", format!("cannot read: {e}")))?;
    parse(path, &text)
}

/// Parses and validates configuration text; `path` is only used in error messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw = file::parse(path, text)?;
    resolve::resolve(path, raw).map_err(|e| ConfigError { line: e.line.or_else(|| key_line(text, &e.key)), ..e })
}

/// The line where `key` (`settings.policies.p.links.eth0.failoverInterval`) is written: each
/// segment looked up as a key (`name:` or `"name":`) after the previous one and within its
/// block (before the next line indented no deeper than the previous segment's line). None when
/// a segment is not found as written (a bond made implicitly, a key with dots in it).
fn key_line(text: &str, key: &str) -> Option<usize> {
    let (mut start, mut end) = (0, text.len());
    let mut found_at = None;
    for segment in key.split('.') {
        let name = segment.split('[').next().unwrap_or(segment);
        if name.is_empty() || name.starts_with('(') {
            return None;
        }
        let i = text[start..end].match_indices(name).map(|(i, _)| start + i).find(|&i| {
            let before = text[..i].chars().next_back();
            let after = text[i + name.len()..].trim_start_matches(['"', '\'']).chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-') && after == Some(':')
        })?;
        start = i + name.len();
        end = block_end(text, i);
        found_at = Some(i);
    }
    found_at.map(|i| text[..i].lines().count().max(1) + usize::from(text[..i].ends_with('\n')))
}

/// Where the block of the line holding byte `i` ends: the first following line, not blank, that
/// is indented no deeper.
fn block_end(text: &str, i: usize) -> usize {
    let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
    let indent = |l: &str| l.len() - l.trim_start().len();
    let own = indent(&text[line_start..]);
    let mut pos = text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
    for line in text[pos..].split_inclusive('\n') {
        if !line.trim().is_empty() && indent(line) <= own {
            return pos;
        }
        pos += line.len();
    }
    text.len()
}
