//! The configuration file as written: YAML (or JSON), keys as in ZeroTier's `local.conf`
//! `settings` plus a `bonds` section. Unknown keys are errors, never silently ignored.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub bonds: BTreeMap<String, Bond>,
    #[serde(default)]
    pub settings: Settings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bond {
    /// Member interfaces, in order.
    pub links: Vec<String>,
    /// Addresses for the bond device, `ADDR/PREFIX`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Policy name; default `settings.defaultBondingPolicy`.
    pub policy: Option<String>,
    /// bonding.ko options, under their kernel names.
    pub miimon: Option<u64>,
    pub arp_interval: Option<u64>,
    #[serde(default)]
    pub arp_ip_target: Vec<String>,
    pub arp_validate: Option<String>,
    pub arp_all_targets: Option<String>,
    pub arp_missed_max: Option<u32>,
    #[serde(default)]
    pub ns_ip6_target: Vec<String>,
    pub num_grat_arp: Option<u32>,
    pub num_unsol_na: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Settings {
    pub default_bonding_policy: Option<String>,
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    pub base_policy: Option<String>,
    pub packets_per_link: Option<u32>,
    pub xmit_hash_policy: Option<String>,
    pub balance_policy: Option<String>,
    /// Milliseconds a silent link may stay before it counts as failed.
    pub failover_interval: Option<u64>,
    pub up_delay: Option<u64>,
    pub down_delay: Option<u64>,
    #[serde(alias = "activeReselect")]
    pub link_select_method: Option<String>,
    #[serde(alias = "pathMonitorStrategy")]
    pub monitor_strategy: Option<String>,
    pub quality: Option<QualityWeights>,
    pub quality_limits: Option<QualityLimits>,
    /// broadcast: receivers drop duplicate copies.
    pub dedup: Option<bool>,
    pub punishment: Option<Punishment>,
    /// Milliseconds a flow may be idle before it is forgotten.
    pub flow_expiry: Option<u64>,
    #[serde(default)]
    pub links: BTreeMap<String, Link>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityWeights {
    pub lat: Option<f64>,
    pub ltm: Option<f64>,
    pub pdv: Option<f64>,
    pub plr: Option<f64>,
    pub per: Option<f64>,
    pub avl: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityLimits {
    pub lat: Option<f64>,
    pub ltm: Option<f64>,
    pub pdv: Option<f64>,
    pub plr: Option<f64>,
    pub per: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Punishment {
    pub base: Option<u64>,
    pub max: Option<u64>,
    pub window: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Link {
    /// Relative capacity (arbitrary units).
    pub speed: Option<u32>,
    /// Share of the traffic (the shares of a policy sum to 1.0).
    pub alloc: Option<f64>,
    /// `primary` or `spare`.
    pub mode: Option<String>,
    pub failover_to: Option<String>,
    pub enabled: Option<bool>,
    pub failover_interval: Option<u64>,
    /// IP versions the link carries: 0 (any), 4, 6, 46 or 64 (both).
    pub ipv_pref: Option<u32>,
    pub up_delay: Option<u64>,
    pub down_delay: Option<u64>,
}

/// Parses the text: JSON when the file name ends in `.json`, YAML otherwise.
pub fn parse(path: &Path, text: &str) -> Result<File, ConfigError> {
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: Some(e.line()),
            key: "(file)".into(),
            reason: e.to_string(),
        })
    } else {
        if text.trim().is_empty() {
            return Ok(File::default());
        }
        serde_yaml::from_str(text).map_err(|e| yaml_error(path, e))
    }
}

/// serde_yaml prefixes its message with the key path (`bonds.bond0: ...`) and ends it with the
/// location; split those into the error's fields.
fn yaml_error(path: &Path, e: serde_yaml::Error) -> ConfigError {
    let line = e.location().map(|l| l.line());
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let (key, reason) = match msg.split_once(": ") {
        Some((k, r)) if !k.contains(' ') => (k.to_string(), r.to_string()),
        _ => ("(file)".to_string(), msg),
    };
    ConfigError { file: path.to_path_buf(), line, key, reason }
}
