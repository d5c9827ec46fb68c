//! The validated configuration. Everything here has passed [`resolve`]: names resolve, values
//! are in range, links exist in their bond.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
};

use bond_common::config::{Balance, MAX_MEMBERS, MAX_POLICIES, Mode, XmitHash};

use super::{ConfigError, file};

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bonds: Vec<BondSpec>,
    /// Every policy a bond can be switched to: the standard ones and the custom ones.
    pub policies: BTreeMap<String, PolicySpec>,
}

impl Config {
    pub fn bond(&self, name: &str) -> Option<&BondSpec> {
        self.bonds.iter().find(|b| b.name == name)
    }

    pub fn policy(&self, name: &str) -> Option<&PolicySpec> {
        self.policies.get(name)
    }
}

/// One bond: its device, members and policy.
#[derive(Debug, Clone, PartialEq)]
pub struct BondSpec {
    pub name: String,
    /// Member interfaces in order; a member's position is its slot.
    pub links: Vec<String>,
    pub addresses: Vec<(IpAddr, u8)>,
    /// Name of the policy in force (a key of [`Config::policies`]).
    pub policy: String,
}

/// A transmit policy with every setting resolved (defaults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub name: String,
    pub mode: Mode,
    /// balance-rr: packets per member in turn (0 = random member per packet).
    pub packets_per_link: u32,
    pub xmit_hash: XmitHash,
    pub balance: Balance,
    /// Per-link settings. When non-empty, only these links carry this policy's traffic.
    pub links: BTreeMap<String, LinkSpec>,
}

/// Per-link settings of a policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkSpec {
    pub speed: Option<u32>,
    pub alloc: Option<f64>,
    pub primary: bool,
    pub failover_to: Option<String>,
    pub enabled: bool,
}

/// Policy used when neither the bond nor `settings.defaultBondingPolicy` names one.
pub const DEFAULT_POLICY: &str = "active-backup";
/// ZeroTier's default `packetsPerLink`.
pub const DEFAULT_PACKETS_PER_LINK: u32 = 64;

impl PolicySpec {
    /// A standard policy with its defaults.
    pub fn standard(mode: Mode) -> PolicySpec {
        PolicySpec {
            name: mode.name().to_string(),
            mode,
            packets_per_link: DEFAULT_PACKETS_PER_LINK,
            // ZeroTier's documented balance-xor hash; kernel-style `mode=2` lines get layer2.
            xmit_hash: XmitHash::ZeroTier,
            balance: Balance::FlowDynamic,
            links: BTreeMap::new(),
        }
    }

    /// Whether `link` carries this policy's traffic.
    pub fn uses_link(&self, link: &str) -> bool {
        if self.links.is_empty() {
            return true;
        }
        self.links.get(link).is_some_and(|l| l.enabled)
    }
}

/// `names()` of a wire enum without its trailing separator.
fn one_of(names: &str) -> &str {
    names.trim_end_matches(", ")
}

/// Validates the parsed file and applies defaults.
pub fn resolve(path: &Path, raw: file::File) -> Result<Config, ConfigError> {
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);

    let mut policies: BTreeMap<String, PolicySpec> =
        Mode::ALL.iter().map(|&m| (m.name().to_string(), PolicySpec::standard(m))).collect();
    for (name, p) in &raw.settings.policies {
        let key = format!("settings.policies.{name}");
        if Mode::from_name(name).is_some() {
            return Err(err(key, format!("\"{name}\" is a standard policy; give the custom policy another name")));
        }
        let base = p
            .base_policy
            .as_deref()
            .ok_or_else(|| err(format!("{key}.basePolicy"), "missing: a custom policy needs a basePolicy".into()))?;
        let mode = Mode::from_name(base).ok_or_else(|| {
            err(
                format!("{key}.basePolicy"),
                format!("unknown policy \"{base}\" (one of: {})", one_of(Mode::names())),
            )
        })?;
        let mut spec = PolicySpec::standard(mode);
        spec.name = name.clone();
        apply_policy(path, &key, p, &mut spec)?;
        policies.insert(name.clone(), spec);
    }
    if policies.len() > MAX_POLICIES + Mode::ALL.len() {
        return Err(err("settings.policies".into(), format!("at most {MAX_POLICIES} custom policies")));
    }

    let default_policy = raw.settings.default_bonding_policy.clone().unwrap_or_else(|| DEFAULT_POLICY.to_string());
    if !policies.contains_key(&default_policy) {
        return Err(err(
            "settings.defaultBondingPolicy".into(),
            format!("unknown policy \"{default_policy}\" (known: {})", policies.keys().cloned().collect::<Vec<_>>().join(", ")),
        ));
    }

    let mut bonds = Vec::new();
    let mut all_links: BTreeMap<String, String> = BTreeMap::new();
    for (name, b) in raw.bonds {
        let key = format!("bonds.{name}");
        check_ifname(&name).map_err(|r| err(key.clone(), r))?;
        if b.links.is_empty() {
            return Err(err(format!("{key}.links"), "a bond needs at least one link".into()));
        }
        if b.links.len() > MAX_MEMBERS {
            return Err(err(format!("{key}.links"), format!("at most {MAX_MEMBERS} links per bond")));
        }
        let mut seen = BTreeSet::new();
        for (i, l) in b.links.iter().enumerate() {
            let lkey = format!("{key}.links[{i}]");
            check_ifname(l).map_err(|r| err(lkey.clone(), r))?;
            if l == &name {
                return Err(err(lkey, "a bond cannot be its own member".into()));
            }
            if !seen.insert(l.clone()) {
                return Err(err(lkey, format!("\"{l}\" is listed twice")));
            }
            if let Some(other) = all_links.insert(l.clone(), name.clone()) {
                return Err(err(lkey, format!("\"{l}\" is already a member of bond {other}")));
            }
        }
        let addresses = b
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| parse_prefix(a).map_err(|r| err(format!("{key}.addresses[{i}]"), r)))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = b.policy.clone().unwrap_or_else(|| default_policy.clone());
        let Some(spec) = policies.get(&policy) else {
            return Err(err(
                format!("{key}.policy"),
                format!("unknown policy \"{policy}\" (known: {})", policies.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        };
        check_policy_links(path, &format!("settings.policies.{policy}"), spec, &b.links)?;
        bonds.push(BondSpec { name, links: b.links, addresses, policy });
    }
    Ok(Config { bonds, policies })
}

fn apply_policy(path: &Path, key: &str, p: &file::Policy, spec: &mut PolicySpec) -> Result<(), ConfigError> {
    let err = |k: &str, reason: String| ConfigError::new(path, format!("{key}.{k}"), reason);
    if let Some(n) = p.packets_per_link {
        spec.packets_per_link = n;
    }
    if let Some(h) = &p.xmit_hash_policy {
        spec.xmit_hash = XmitHash::from_name(h).ok_or_else(|| {
            err("xmitHashPolicy", format!("unknown hash \"{h}\" (one of: {})", one_of(XmitHash::names())))
        })?;
    }
    if let Some(b) = &p.balance_policy {
        spec.balance = Balance::from_name(b).ok_or_else(|| {
            err("balancePolicy", format!("unknown balance policy \"{b}\" (one of: {})", one_of(Balance::names())))
        })?;
    }
    for (name, l) in &p.links {
        let lkey = format!("links.{name}");
        check_ifname(name).map_err(|r| err(&lkey, r))?;
        let primary = match l.mode.as_deref() {
            None | Some("spare") => false,
            Some("primary") => true,
            Some(other) => return Err(err(&format!("{lkey}.mode"), format!("\"{other}\" is neither primary nor spare"))),
        };
        if let Some(a) = l.alloc
            && !(0.0..=1.0).contains(&a)
        {
            return Err(err(&format!("{lkey}.alloc"), format!("{a} is not a share between 0.0 and 1.0")));
        }
        spec.links.insert(
            name.clone(),
            LinkSpec {
                speed: l.speed,
                alloc: l.alloc,
                primary,
                failover_to: l.failover_to.clone(),
                enabled: l.enabled.unwrap_or(true),
            },
        );
    }
    for (name, l) in &spec.links {
        if let Some(to) = &l.failover_to
            && !spec.links.contains_key(to)
        {
            return Err(err(&format!("links.{name}.failoverTo"), format!("\"{to}\" is not one of this policy's links")));
        }
    }
    Ok(())
}

/// A policy's per-link settings must name links of the bond that uses it.
pub fn check_policy_links(path: &Path, key: &str, spec: &PolicySpec, bond_links: &[String]) -> Result<(), ConfigError> {
    for name in spec.links.keys() {
        if !bond_links.contains(name) {
            return Err(ConfigError::new(
                path,
                format!("{key}.links.{name}"),
                format!("\"{name}\" is not a link of the bond (links: {})", bond_links.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Interface names as the kernel accepts them: 1 to 15 bytes, no '/', ':' or whitespace.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("\"{name}\" is not a valid interface name (1 to 15 characters)"));
    }
    if name == "." || name == ".." || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("\"{name}\" is not a valid interface name (no '/', ':' or spaces)"));
    }
    Ok(())
}

/// `ADDR/PREFIX`.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = s.split_once('/').ok_or_else(|| format!("\"{s}\" is not ADDRESS/PREFIX"))?;
    let addr: IpAddr = a.parse().map_err(|_| format!("\"{a}\" is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = p.parse().ok().filter(|p| *p <= max).ok_or_else(|| format!("\"{p}\" is not a prefix length 0..={max}"))?;
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn ok(text: &str) -> Config {
        parse(Path::new("bond.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn bad(text: &str) -> String {
        parse(Path::new("bond.yaml"), text).expect_err("should be rejected").to_string()
    }

    #[test]
    fn issue_example_loads() {
        let c = ok("
bonds:
  bond0:
    links: [eth0, eth1, eth2]
    addresses: [198.51.100.1/24]
    policy: balance-xor
settings:
  defaultBondingPolicy: active-backup
  policies:
    my-rr: { basePolicy: balance-rr, packetsPerLink: 1 }
    my-xor: { basePolicy: balance-xor, xmitHashPolicy: layer2+3 }
");
        let b = c.bond("bond0").unwrap();
        assert_eq!(b.links, ["eth0", "eth1", "eth2"]);
        assert_eq!(b.addresses, [("198.51.100.1".parse().unwrap(), 24)]);
        assert_eq!(b.policy, "balance-xor");
        assert_eq!(c.policy("my-rr").unwrap().packets_per_link, 1);
        assert_eq!(c.policy("my-rr").unwrap().mode, Mode::BalanceRr);
        assert_eq!(c.policy("my-xor").unwrap().xmit_hash, XmitHash::Layer23);
    }

    #[test]
    fn defaults() {
        let c = ok("bonds: { bond0: { links: [a, b] } }");
        assert_eq!(c.bond("bond0").unwrap().policy, "active-backup");
        let rr = c.policy("balance-rr").unwrap();
        assert_eq!(rr.packets_per_link, 64);
        assert_eq!(c.policy("balance-xor").unwrap().xmit_hash, XmitHash::ZeroTier);
        assert_eq!(c.policy("balance-aware").unwrap().balance, Balance::FlowDynamic);
    }

    #[test]
    fn json_is_accepted() {
        let c = parse(Path::new("b.json"), r#"{"bonds": {"bond0": {"links": ["a"], "policy": "broadcast"}}}"#).unwrap();
        assert_eq!(c.bond("bond0").unwrap().policy, "broadcast");
    }

    #[test]
    fn errors_name_key_and_reason() {
        let e = bad("bonds: { bond0: { links: [a], policy: nope } }");
        assert!(e.starts_with("bond.yaml: bonds.bond0.policy: unknown policy \"nope\""), "{e}");
        let e = bad("bonds: { bond0: { links: [a], polcy: x } }");
        assert!(e.contains("bonds.bond0") && e.contains("unknown field `polcy`"), "{e}");
        assert!(e.starts_with("bond.yaml:1:"), "line number: {e}");
        let e = bad("settings: { policies: { p: { basePolicy: balance-xor, xmitHashPolicy: layer5 } } }");
        assert!(e.contains("settings.policies.p.xmitHashPolicy: unknown hash \"layer5\""), "{e}");
        let e = bad("settings: { policies: { balance-rr: { basePolicy: balance-rr } } }");
        assert!(e.contains("is a standard policy"), "{e}");
        let e = bad("bonds: { bond0: { links: [a, a] } }");
        assert!(e.contains("bonds.bond0.links[1]: \"a\" is listed twice"), "{e}");
        let e = bad("bonds: { bond0: { links: [a], addresses: [10.0.0.1] } }");
        assert!(e.contains("bonds.bond0.addresses[0]"), "{e}");
        let e = bad("bonds: { b0: { links: [a] }, b1: { links: [a] } }");
        assert!(e.contains("already a member of bond b0"), "{e}");
        let e = bad("bonds: { bond0: { links: [] } }");
        assert!(e.contains("at least one link"), "{e}");
    }

    #[test]
    fn policy_links_must_belong_to_the_bond() {
        let e = bad("
bonds: { bond0: { links: [a, b], policy: p } }
settings: { policies: { p: { basePolicy: balance-aware, links: { c: { alloc: 0.5 } } } } }
");
        assert!(e.contains("settings.policies.p.links.c: \"c\" is not a link of the bond"), "{e}");
    }

    #[test]
    fn malformed_yaml_reports_line() {
        let e = parse(Path::new("x.yaml"), "bonds:\n  bond0: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }
}
