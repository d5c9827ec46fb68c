//! INI-style files as NetworkManager's keyfiles and systemd's units write them: `[Section]`
//! headers, `Key=Value` lines, `#` and `;` comments, a trailing `\` continuing a line (systemd).
//!
//! A small parser of its own rather than a crate: errors must name the line of each key, and
//! both formats allow a key more than once (systemd's `Address=`), which map-based INI crates
//! (rust-ini, configparser) fold away; the formats are line-based, so this is short.

use std::path::Path;

use super::{ConfigError, Loc};

/// `Key=Value` in a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// The sections of the file, in order (a section written twice appears twice).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Section>, ConfigError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut pending: Option<(String, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (mut line, start) = match pending.take() {
            Some((mut acc, start)) => {
                acc.push(' ');
                acc.push_str(raw.trim());
                (acc, start)
            }
            None => (raw.trim().to_string(), n),
        };
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            line = stripped.trim_end().to_string();
            pending = Some((line, start));
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name =
                name.strip_suffix(']').ok_or_else(|| Loc::new(path, n).err("(file)", format!("\"{line}\" is not a [section] header")))?;
            sections.push(Section { name: name.trim().to_string(), line: n, entries: Vec::new() });
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Loc::new(path, start).err("(file)", format!("\"{line}\" is neither a [section] nor KEY=VALUE")));
        };
        let Some(section) = sections.last_mut() else {
            return Err(Loc::new(path, start).err(k.trim(), "a key before any [section]"));
        };
        section.entries.push(Entry { key: k.trim().to_string(), value: v.trim().to_string(), line: start });
    }
    Ok(sections)
}

/// The last value of `key` in the sections named `section`.
pub fn get<'a>(sections: &'a [Section], section: &str, key: &str) -> Option<&'a Entry> {
    sections.iter().filter(|s| s.name == section).flat_map(|s| &s.entries).rfind(|e| e.key == key)
}
