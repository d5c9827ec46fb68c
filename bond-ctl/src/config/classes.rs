//! `classSpecificBonds`: traffic class rules (DSCP, protocol, ports) and the policy each
//! class's traffic takes.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use bond_common::config::{MAX_CLASSES, MAX_POLICIES};

use super::{ConfigError, file, model::*};

/// `classSpecificBonds`: traffic classes with their own policy, most specific first.
pub(super) fn resolve_classes(
    path: &Path,
    settings: &file::Settings,
    policies: &BTreeMap<String, PolicySpec>,
    peers: &[PeerPolicy],
) -> Result<Vec<ClassPolicy>, ConfigError> {
    let err = |key: String, reason: String| ConfigError::new(path, key, reason);
    if settings.class_specific_bonds.len() > MAX_CLASSES {
        return Err(err(
            "settings.classSpecificBonds".into(),
            format!("{} classes; at most {MAX_CLASSES}", settings.class_specific_bonds.len()),
        ));
    }
    let mut classes = Vec::new();
    for (i, c) in settings.class_specific_bonds.iter().enumerate() {
        let key = format!("settings.classSpecificBonds[{i}]");
        let dscp = c.dscp.as_deref().map(parse_dscp).transpose().map_err(|r| err(format!("{key}.dscp"), r))?;
        let protocol = c.protocol.as_deref().map(parse_protocol).transpose().map_err(|r| err(format!("{key}.protocol"), r))?;
        let ports = c.ports.as_deref().map(parse_port_range).transpose().map_err(|r| err(format!("{key}.ports"), r))?;
        if dscp.is_none() && protocol.is_none() && ports.is_none() {
            return Err(err(key, "matches nothing: give dscp, protocol or ports".into()));
        }
        if let (Some(p), Some(_)) = (protocol, ports)
            && ![6, 17, 132, 33, 136].contains(&p)
        {
            return Err(err(format!("{key}.ports"), format!("protocol {p} has no ports")));
        }
        let Some(spec) = policies.get(&c.policy) else {
            return Err(err(
                format!("{key}.policy"),
                format!("unknown policy \"{}\" (known: {})", c.policy, policies.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        };
        if spec.mode.runs_whole_bond() {
            return Err(err(
                format!("{key}.policy"),
                format!("policy {} is {}, which runs a whole bond, not one class of its traffic", c.policy, spec.mode.name()),
            ));
        }
        let class = ClassPolicy { dscp, protocol, ports, policy: c.policy.clone() };
        if classes.iter().any(|o: &ClassPolicy| (o.dscp, o.protocol, o.ports) == (dscp, protocol, ports)) {
            return Err(err(key, format!("{class} is listed twice")));
        }
        classes.push(class);
    }
    let extra: BTreeSet<&String> = peers.iter().map(|p| &p.policy).chain(classes.iter().map(|c| &c.policy)).collect();
    if extra.len() >= MAX_POLICIES {
        return Err(err(
            "settings.classSpecificBonds".into(),
            format!("{} different policies with the peer-specific ones; at most {} besides the default", extra.len(), MAX_POLICIES - 1),
        ));
    }
    // Most specific first (stable: equally specific classes keep the file's order).
    classes.sort_by_key(|c| std::cmp::Reverse(c.specificity()));
    Ok(classes)
}

/// A DSCP code point, by number (0-63) or name.
fn parse_dscp(s: &str) -> Result<u8, String> {
    let t = s.to_ascii_lowercase();
    let named = match t.as_str() {
        "ef" => Some(46),
        "be" | "default" => Some(0),
        "va" | "voice-admit" => Some(44),
        _ => {
            if let Some(n) = t.strip_prefix("cs").and_then(|n| n.parse::<u8>().ok()).filter(|n| *n <= 7) {
                Some(n * 8)
            } else if let Some((x, y)) = t.strip_prefix("af").and_then(|n| n.parse::<u8>().ok()).map(|n| (n / 10, n % 10)) {
                ((1..=4).contains(&x) && (1..=3).contains(&y)).then_some(8 * x + 2 * y)
            } else {
                None
            }
        }
    };
    match named.or_else(|| t.parse::<u8>().ok()) {
        Some(d) if d <= 63 => Ok(d),
        _ => Err(format!("\"{s}\" is not a DSCP code point (0-63, or ef, be, csN, afXY)")),
    }
}

/// An IP protocol, by number or name.
fn parse_protocol(s: &str) -> Result<u8, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "sctp" => Ok(132),
        "icmp" => Ok(1),
        "icmpv6" => Ok(58),
        n => n.parse::<u8>().map_err(|_| format!("\"{s}\" is not a protocol (tcp, udp, sctp, icmp, icmpv6 or 0-255)")),
    }
}

/// A port or an inclusive range `LOW-HIGH`.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("\"{s}\" is not a port (1-65535) or a range LOW-HIGH");
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (port(a).ok_or_else(bad)?, port(b).ok_or_else(bad)?),
        None => {
            let p = port(s).ok_or_else(bad)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!("\"{s}\": the range's low end is above its high end"));
    }
    Ok((lo, hi))
}
