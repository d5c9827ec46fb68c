//! The configuration file as written: YAML, or JSON as ZeroTier's `local.conf` is written (with
//! `/* */` and `//` comments and trailing commas); keys as in ZeroTier's `settings` plus a `bonds`
//! section with bonding.ko's options. Unknown keys are errors, never silently ignored.

use std::{collections::BTreeMap, path::Path};

use indexmap::IndexMap;
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
    /// bonding.ko options that make up a transmit policy: given, they define the bond's own
    /// policy, named after the bond.
    /// A mode number (0-6) or name.
    #[serde(default, deserialize_with = "string_or_number")]
    pub mode: Option<String>,
    pub updelay: Option<u64>,
    pub downdelay: Option<u64>,
    pub primary: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub primary_reselect: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub xmit_hash_policy: Option<String>,
    pub packets_per_slave: Option<u32>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub fail_over_mac: Option<String>,
    /// 802.3ad, balance-tlb and balance-alb options (validated; see the manual).
    #[serde(default, deserialize_with = "string_or_number")]
    pub lacp_rate: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub ad_select: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub lacp_active: Option<String>,
    pub ad_actor_sys_prio: Option<u32>,
    pub ad_user_port_key: Option<u32>,
    pub ad_actor_system: Option<String>,
    pub min_links: Option<u32>,
    pub tlb_dynamic_lb: Option<u8>,
    pub lp_interval: Option<u64>,
    pub all_slaves_active: Option<u8>,
    /// This project's own: entries of the flow table.
    pub flow_table_size: Option<u64>,
    /// The bond's MTU (its members get it as they join).
    pub mtu: Option<u64>,
    /// The bond's MAC address (netplan's `macaddress`; ifupdown's `hwaddress`, optionally
    /// written `ether ADDR`).
    #[serde(alias = "hwaddress")]
    pub macaddress: Option<String>,
    /// Per member: active-backup, balance-tlb and balance-alb prefer the usable member of the
    /// highest `prio` when no primary is usable.
    #[serde(default)]
    pub prio: BTreeMap<String, i64>,
    /// Per member: its LACP port priority (`ad_select actor_port_prio` weighs aggregators by it).
    #[serde(default)]
    pub actor_port_prio: BTreeMap<String, u64>,
    /// Peer notifications after a failover are this many ms apart (bonding's sysfs spells it
    /// `peer_notif_delay`).
    #[serde(alias = "peer_notif_delay")]
    pub peer_notify_delay: Option<u64>,
    pub resend_igmp: Option<u32>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub lacp_strict: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub broadcast_neighbor: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub coupled_control: Option<String>,
    /// The member to start active (active-backup, balance-tlb, balance-alb).
    pub active_slave: Option<String>,
    /// Only 1: carrier is read from the device itself.
    pub use_carrier: Option<u8>,
    /// ZeroTier-style monitoring written on a bond of bonding.ko's options (for its own
    /// policy): asks for peer probes, and with them punishment of flapping links.
    #[serde(rename = "monitorStrategy", alias = "pathMonitorStrategy")]
    pub monitor_strategy: Option<String>,
    #[serde(rename = "failoverInterval")]
    pub failover_interval: Option<u64>,
    /// A key shared with the peer bond: probe replies carry a keyed hash only it can compute.
    #[serde(rename = "probeKey")]
    pub probe_key: Option<String>,
}

impl Bond {
    /// Whether the bonding.ko option `name` is given (see [`super::options`]; a test checks
    /// that every option of the table is known here).
    pub fn given(&self, name: &str) -> bool {
        match name {
            "miimon" => self.miimon.is_some(),
            "arp_interval" => self.arp_interval.is_some(),
            "arp_ip_target" => !self.arp_ip_target.is_empty(),
            "arp_validate" => self.arp_validate.is_some(),
            "arp_all_targets" => self.arp_all_targets.is_some(),
            "arp_missed_max" => self.arp_missed_max.is_some(),
            "ns_ip6_target" => !self.ns_ip6_target.is_empty(),
            "num_grat_arp" => self.num_grat_arp.is_some(),
            "num_unsol_na" => self.num_unsol_na.is_some(),
            "mode" => self.mode.is_some(),
            "updelay" => self.updelay.is_some(),
            "downdelay" => self.downdelay.is_some(),
            "primary" => self.primary.is_some(),
            "primary_reselect" => self.primary_reselect.is_some(),
            "xmit_hash_policy" => self.xmit_hash_policy.is_some(),
            "packets_per_slave" => self.packets_per_slave.is_some(),
            "fail_over_mac" => self.fail_over_mac.is_some(),
            "lacp_rate" => self.lacp_rate.is_some(),
            "ad_select" => self.ad_select.is_some(),
            "lacp_active" => self.lacp_active.is_some(),
            "ad_actor_sys_prio" => self.ad_actor_sys_prio.is_some(),
            "ad_user_port_key" => self.ad_user_port_key.is_some(),
            "ad_actor_system" => self.ad_actor_system.is_some(),
            "min_links" => self.min_links.is_some(),
            "tlb_dynamic_lb" => self.tlb_dynamic_lb.is_some(),
            "lp_interval" => self.lp_interval.is_some(),
            "all_slaves_active" => self.all_slaves_active.is_some(),
            "flow_table_size" => self.flow_table_size.is_some(),
            "mtu" => self.mtu.is_some(),
            "macaddress" => self.macaddress.is_some(),
            "prio" => !self.prio.is_empty(),
            "actor_port_prio" => !self.actor_port_prio.is_empty(),
            "peer_notify_delay" => self.peer_notify_delay.is_some(),
            "resend_igmp" => self.resend_igmp.is_some(),
            "lacp_strict" => self.lacp_strict.is_some(),
            "broadcast_neighbor" => self.broadcast_neighbor.is_some(),
            "coupled_control" => self.coupled_control.is_some(),
            "active_slave" => self.active_slave.is_some(),
            "use_carrier" => self.use_carrier.is_some(),
            "monitorStrategy" => self.monitor_strategy.is_some(),
            "failoverInterval" => self.failover_interval.is_some(),
            "probeKey" => self.probe_key.is_some(),
            _ => false,
        }
    }
}

/// An entry of `classSpecificBonds`: what a packet must match, and its policy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassEntry {
    /// A code point, 0-63, or a name (`ef`, `af41`, `cs5`, `be`).
    #[serde(default, deserialize_with = "string_or_number")]
    pub dscp: Option<String>,
    /// `tcp`, `udp`, `sctp`, `icmp`, `icmpv6` or a number.
    #[serde(default, deserialize_with = "string_or_number")]
    pub protocol: Option<String>,
    /// A port or a range `LOW-HIGH`, matched against the source and the destination port.
    #[serde(default, deserialize_with = "string_or_number")]
    pub ports: Option<String>,
    pub policy: String,
}

/// Kernel options take numbers or names (`mode: 1`, `mode: active-backup`).
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        N(u64),
    }
    Ok(Option::<V>::deserialize(d)?.map(|v| match v {
        V::S(s) => s,
        V::N(n) => n.to_string(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Settings {
    pub default_bonding_policy: Option<String>,
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
    /// Peers (ZeroTier node ids) with their own policy.
    #[serde(default)]
    pub peer_specific_bonds: IndexMap<String, String>,
    /// Traffic classes (DSCP, protocol, ports) with their own policy.
    #[serde(default)]
    pub class_specific_bonds: Vec<ClassEntry>,
    /// Overrides of the standard policies, written directly under `settings` as ZeroTier does.
    #[serde(rename = "none")]
    pub none: Option<Policy>,
    #[serde(rename = "active-backup")]
    pub active_backup: Option<Policy>,
    #[serde(rename = "broadcast")]
    pub broadcast: Option<Policy>,
    #[serde(rename = "balance-rr")]
    pub balance_rr: Option<Policy>,
    #[serde(rename = "balance-xor")]
    pub balance_xor: Option<Policy>,
    #[serde(rename = "balance-aware")]
    pub balance_aware: Option<Policy>,
}

impl Settings {
    /// The standard-policy overrides given, by policy name.
    pub fn standard_overrides(&self) -> Vec<(&'static str, &Policy)> {
        [
            ("none", &self.none),
            ("active-backup", &self.active_backup),
            ("broadcast", &self.broadcast),
            ("balance-rr", &self.balance_rr),
            ("balance-xor", &self.balance_xor),
            ("balance-aware", &self.balance_aware),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.as_ref().map(|p| (n, p)))
        .collect()
    }
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
    /// Per-link settings, in the order written (it orders several primaries).
    #[serde(default)]
    pub links: IndexMap<String, Link>,
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

/// Parses the text: JSON (with ZeroTier's comments and trailing commas) when the file name ends
/// in `.json` or the text starts with `{`, YAML otherwise.
pub fn parse(path: &Path, text: &str) -> Result<File, ConfigError> {
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || starts_with_brace(text);
    if is_json {
        let mut de = json5::Deserializer::from_str(text).map_err(|e| json_error(path, e, None))?;
        // The path of the key being read, for errors of values (json5 gives only a line).
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let key = e.path().to_string();
            json_error(path, e.into_inner(), (key != ".").then_some(key))
        })
    } else {
        if text.trim().is_empty() {
            return Ok(File::default());
        }
        serde_yaml::from_str(text).map_err(|e| yaml_error(path, e))
    }
}

/// Whether the first thing in the text, after blanks and comments, is `{`.
fn starts_with_brace(text: &str) -> bool {
    let mut t = text.trim_start();
    loop {
        if let Some(rest) = t.strip_prefix("/*") {
            t = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = t.strip_prefix("//") {
            t = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else {
            return t.starts_with('{');
        }
    }
}

/// json5 reports syntax errors as a drawing (`--> 6:29`, the line, `= expected ...`): the
/// reason is the `= ...` line.
fn json_error(path: &Path, e: json5::Error, key: Option<String>) -> ConfigError {
    let json5::Error::Message { msg, location } = e;
    let reason = match msg.lines().find_map(|l| l.trim_start().strip_prefix("= ")) {
        Some(r) => r.to_string(),
        None => msg.lines().find(|l| !l.trim_start().starts_with("-->") && !l.trim().is_empty()).unwrap_or(&msg).trim().to_string(),
    };
    let reason = match &location {
        Some(l) => format!("{reason} (column {})", l.column),
        None => reason,
    };
    let key = key.unwrap_or_else(|| "(file)".into());
    ConfigError { file: path.to_path_buf(), line: location.map(|l| l.line), key, reason: super::suggest::unknown_key_hint(&reason) }
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
    let reason = super::suggest::unknown_key_hint(&reason);
    ConfigError { file: path.to_path_buf(), line, key, reason }
}
