use super::*;

#[test]
fn every_option_is_named_and_documented_once() {
    let mut seen = std::collections::BTreeSet::new();
    for o in ALL {
        assert!(!o.doc.is_empty(), "{} has no doc", o.name());
        assert!(o.kernel.is_some() || o.zerotier.is_some(), "an option without a name");
        let scope = if o.scope == Scope::Link { "link" } else { "bond/policy" };
        for n in [o.kernel, o.zerotier, o.alias].into_iter().flatten() {
            assert!(seen.insert((scope, n)), "{n} is in the table twice");
        }
    }
}

#[test]
fn durations_cannot_overflow_when_turned_into_nanoseconds() {
    for o in ALL {
        if let Values::Int { max, unit: Unit::Ms | Unit::Seconds, .. } = o.values {
            let scale = if matches!(o.values, Values::Int { unit: Unit::Seconds, .. }) { 1_000_000_000 } else { 1_000_000 };
            // Twice the longest, plus a century of uptime, still fits the clock's u64.
            let ns = (max as u128) * scale * 2 + 100 * 365 * 86_400 * 1_000_000_000;
            assert!(ns < u64::MAX as u128, "{}: {max} overflows", o.name());
        }
    }
}

#[test]
fn values_are_checked_with_reasons() {
    assert_eq!(MIIMON.int(100), Ok(100));
    assert_eq!(MIIMON.int(u64::MAX), Err(format!("{} ms is outside 0..=3600000", u64::MAX)));
    assert_eq!(UP_DELAY.int(3_600_001), Err("3600001 ms is outside 0..=3600000".into()));
    assert_eq!(LACP_RATE.pick("fast"), Ok(1));
    assert_eq!(LACP_RATE.pick("1"), Ok(1));
    assert_eq!(LACP_RATE.pick("2"), Err("2 is not slow, fast, 0 or 1".into()));
    assert_eq!(AD_SELECT.pick("best"), Err("\"best\" is not stable, bandwidth, count, actor_port_prio or 0-3".into()));
    assert_eq!(PRIO.per_link(-50), Ok(-50));
    assert_eq!(ACTOR_PORT_PRIO.per_link(65_536), Err("65536 is outside 0..=65535".into()));
    assert_eq!(BALANCE.pick("0"), Err("0 is not one of flow-dynamic, flow-static, packet".into()));
    assert_eq!(AD_ACTOR_SYS_PRIO.int_as::<u16>(0), Err("0 is outside 1..=65535".into()));
    assert_eq!(LINK_ALLOC.real(f64::NAN), Err("NaN is outside 0.0 to 255.0".into()));
}

#[test]
fn names_are_found_by_every_spelling() {
    assert_eq!(live_option("updelay").map(Opt::name), Some("upDelay"));
    assert_eq!(live_option("upDelay").map(Opt::name), Some("upDelay"));
    assert_eq!(live_option("activeReselect").map(Opt::name), Some("linkSelectMethod"));
    assert_eq!(kernel_option("packets_per_slave").map(Opt::name), Some("packetsPerLink"));
    assert!(kernel_option("alloc").is_none());
    assert_eq!(LP_INTERVAL.modes_text(), "balance-tlb and balance-alb");
}

/// The manual's tables (docs/src/configuration.md) are the table's: regenerate them with
/// `BONDCTL_BLESS=1 cargo test -p bond-ctl readme_option_tables`.
#[test]
fn readme_option_tables_match_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/configuration.md");
    let readme = std::fs::read_to_string(path).expect("docs/src/configuration.md");
    let (begin, end) = ("<!-- options:begin (generated from bond-ctl/src/config/options/table.rs) -->\n", "<!-- options:end -->");
    let start = readme.find(begin).expect("the manual's options:begin marker") + begin.len();
    let stop = readme[start..].find(end).expect("the manual's options:end marker") + start;
    let want = markdown();
    if readme[start..stop] != want {
        if std::env::var_os("BONDCTL_BLESS").is_some() {
            std::fs::write(path, format!("{}{want}{}", &readme[..start], &readme[stop..])).expect("writing docs/src/configuration.md");
        } else {
            panic!(
                "docs/src/configuration.md's option tables differ from the option table; run BONDCTL_BLESS=1 cargo test -p bond-ctl readme_option_tables"
            );
        }
    }
}
