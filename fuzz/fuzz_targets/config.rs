//! The configuration parser on arbitrary input: it may refuse anything, but must never panic,
//! and neither may its errors' messages.
//!
//! Each input is tried three ways: as a YAML file, as a JSON file (ZeroTier's `local.conf` with
//! comments and trailing commas), and as `bondctl up` options, split into lines: the bond's name,
//! its links (comma-separated), its addresses (comma-separated), then one bonding.ko `KEY=VALUE`
//! option per line, turned into YAML by `bond_yaml` and parsed like a file.
#![no_main]

use std::path::Path;

use bond_ctl::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    parse(Path::new("fuzz.yaml"), &text);
    parse(Path::new("fuzz.json"), &text);

    let mut lines = text.lines();
    let name = lines.next().unwrap_or_default();
    let links = list(lines.next());
    let addresses = list(lines.next());
    let options: Vec<String> = lines.map(str::to_owned).collect();
    match config::bond_yaml(name, &links, &addresses, &options) {
        Ok(yaml) => parse(Path::new("options.yaml"), &yaml),
        Err(e) => drop(std::hint::black_box(e)),
    }
});

fn parse(path: &Path, text: &str) {
    if let Err(e) = config::parse(path, text) {
        std::hint::black_box(e.to_string());
    }
}

fn list(line: Option<&str>) -> Vec<String> {
    line.unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}
