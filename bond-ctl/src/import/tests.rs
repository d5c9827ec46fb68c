//! Tests of `bondctl import`: the samples under `samples/` (written from each format's
//! documentation) against the expected YAML under `samples/expected/` (`IMPORT_BLESS=1 cargo
//! test` rewrites those), every mode from every source, and errors naming file, line and key.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::*;

const ALL_MODES: [&str; 7] = convert::KERNEL_MODES;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/import/samples")
}

/// The sample files (paths under `samples/`) as inputs named `samples/...`; a directory as sysfs.
fn inputs(names: &[&str]) -> Vec<Input> {
    names
        .iter()
        .map(|n| {
            let full = samples().join(n);
            let content = if full.is_dir() {
                let mut files: BTreeMap<String, String> = std::fs::read_dir(&full)
                    .unwrap()
                    .map(|e| e.unwrap())
                    .map(|e| (e.file_name().into_string().unwrap(), std::fs::read_to_string(e.path()).unwrap()))
                    .collect();
                if let Ok(mtu) = std::fs::read_to_string(full.join("../mtu")) {
                    files.insert("../mtu".into(), mtu);
                }
                Content::Files(files)
            } else {
                Content::Text(std::fs::read_to_string(&full).unwrap())
            };
            Input { path: Path::new("samples").join(n), content }
        })
        .collect()
}

/// Converts the samples, compares with `samples/expected/<expected>` and loads the result as
/// `bondctl check --config` does (without looking for the interfaces): no error, no warning.
fn expect(from: Option<Source>, names: &[&str], expected: &str) -> Imported {
    let out = import(from, &inputs(names)).unwrap_or_else(|e| panic!("{e}"));
    let file = samples().join("expected").join(expected);
    if std::env::var_os("IMPORT_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &out.yaml).unwrap();
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(out.yaml, want, "{expected}");
    let cfg = crate::config::parse(Path::new(expected), &out.yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    out
}

fn modes_in(yaml: &str) -> Vec<&str> {
    yaml.lines().filter_map(|l| l.trim().strip_prefix("mode: ")).collect()
}

fn text(path: &str, t: &str) -> Input {
    Input { path: PathBuf::from(path), content: Content::Text(t.to_string()) }
}

fn error(from: Option<Source>, inputs: &[Input]) -> String {
    match import(from, inputs) {
        Ok(o) => panic!("no error:\n{}", o.yaml),
        Err(e) => e.to_string(),
    }
}

#[test]
fn netplan() {
    let out = expect(None, &["netplan-ab.yaml"], "netplan-ab.yaml");
    assert!(out.yaml.contains("\n    mtu: 9000\n"), "{}", out.yaml);
    assert!(!out.warnings.iter().any(|w| w.contains(".mtu: not imported")), "{:#?}", out.warnings);
    assert!(out.warnings.iter().any(|w| w.starts_with("samples/netplan-ab.yaml:27: network.bonds.bond0.parameters.fail-over-mac-policy")));
    let out = expect(Some(Source::Netplan), &["netplan-modes.yaml"], "netplan-modes.yaml");
    let mut all = modes_in(&out.yaml);
    all.push("active-backup");
    all.sort();
    assert_eq!(all, {
        let mut m = ALL_MODES.to_vec();
        m.sort();
        m
    });
}

#[test]
fn ifupdown() {
    let out = expect(None, &["ifupdown-interfaces"], "ifupdown.yaml");
    let mut modes = modes_in(&out.yaml);
    modes.sort();
    assert_eq!(modes, {
        let mut m = ALL_MODES.to_vec();
        m.sort();
        m
    });
    assert!(out.yaml.contains("\n    mtu: "), "the stanza's mtu comes along: {}", out.yaml);
}

#[test]
fn networkmanager() {
    let files = [
        "nm/bond0.nmconnection",
        "nm/bond0-port-eno1.nmconnection",
        "nm/bond0-port-eno2.nmconnection",
        "nm/lacp.nmconnection",
        "nm/lacp-ports.nmconnection",
        "nm/lacp-port2.nmconnection",
    ];
    expect(None, &files, "nm.yaml");
}

#[test]
fn networkd() {
    let files = [
        "networkd/25-bond0.netdev",
        "networkd/25-bond0.network",
        "networkd/30-eno1.network",
        "networkd/30-eno2.network",
        "networkd/40-bond1.netdev",
        "networkd/40-bond1-members.network",
        "networkd/50-bond2.netdev",
        "networkd/50-bond2-members.network",
    ];
    let out = expect(None, &files, "networkd.yaml");
    // MIIMonitorSec=1: a bare number is seconds.
    assert!(out.yaml.contains("    miimon: 1000\n"), "{}", out.yaml);
}

#[test]
fn running_bond() {
    expect(None, &["proc/bond0", "proc/bond1"], "proc.yaml");
    expect(None, &["sysfs/bond0/bonding", "sysfs/bond1/bonding"], "sysfs.yaml");
}

/// Every mode from every source, as each writes it, loads with that mode.
#[test]
fn every_mode_from_every_source() {
    for (n, mode) in ALL_MODES.iter().enumerate() {
        let cases: Vec<(Source, Vec<Input>)> = vec![
            (
                Source::Netplan,
                vec![text(
                    "n.yaml",
                    &format!("network:\n  bonds:\n    bond0:\n      interfaces: [a, b]\n      parameters:\n        mode: {mode}\n"),
                )],
            ),
            (Source::Ifupdown, vec![text("interfaces", &format!("iface bond0 inet manual\n  bond-slaves a b\n  bond_mode {n}\n"))]),
            (
                Source::Networkmanager,
                vec![
                    text("b.nmconnection", &format!("[connection]\nid=b\ntype=bond\ninterface-name=bond0\n[bond]\nmode={mode}\n")),
                    text("a.nmconnection", "[connection]\ntype=ethernet\ninterface-name=a\ncontroller=bond0\nport-type=bond\n"),
                    text("c.nmconnection", "[connection]\ntype=ethernet\ninterface-name=b\nmaster=b\nslave-type=bond\n"),
                ],
            ),
            (
                Source::Networkd,
                vec![
                    text("b.netdev", &format!("[NetDev]\nName=bond0\nKind=bond\n[Bond]\nMode={mode}\n")),
                    text("a.network", "[Match]\nName=a b\n[Network]\nBond=bond0\n"),
                ],
            ),
            (
                Source::Sysfs,
                vec![Input {
                    path: "/sys/class/net/bond0/bonding".into(),
                    content: Content::Files(BTreeMap::from([("mode".into(), format!("{mode} {n}\n")), ("slaves".into(), "a b\n".into())])),
                }],
            ),
        ];
        for (source, inputs) in cases {
            let out = import(Some(source), &inputs).unwrap_or_else(|e| panic!("{source:?} {mode}: {e}"));
            assert_eq!(modes_in(&out.yaml), [*mode], "{source:?}: {}", out.yaml);
            assert_eq!(detect(&inputs[0]), Some(source));
            let cfg = crate::config::parse(Path::new("x"), &out.yaml).unwrap();
            assert_eq!(cfg.bonds[0].links, ["a", "b"]);
        }
    }
    let long = [
        "load balancing (round-robin)",
        "fault-tolerance (active-backup)",
        "load balancing (xor)",
        "fault-tolerance (broadcast)",
        "IEEE 802.3ad Dynamic link aggregation",
        "transmit load balancing",
        "adaptive load balancing",
    ];
    for (l, mode) in long.iter().zip(ALL_MODES) {
        let t = format!("Bonding Mode: {l}\nMII Polling Interval (ms): 100\n\nSlave Interface: a\n");
        let out = import(None, &[text("/proc/net/bonding/bond0", &t)]).unwrap();
        assert_eq!(modes_in(&out.yaml), [mode]);
    }
}

#[test]
fn unknown_keys_are_errors_with_file_line_and_key() {
    let e = error(
        None,
        &[text("b.yaml", "network:\n  bonds:\n    bond0:\n      interfaces: [a]\n      parameters:\n        mii-monitr-interval: 100\n")],
    );
    assert_eq!(
        e,
        "b.yaml:6: network.bonds.bond0.parameters.mii-monitr-interval: unknown key in a netplan bond's parameters; did you mean `mii-monitor-interval`?"
    );
    let e = error(None, &[text("b.yaml", "network:\n  bonds:\n    bond0:\n      interfaces: [a]\n      speling: 1\n")]);
    assert!(e.starts_with("b.yaml:5: network.bonds.bond0.speling: unknown key"), "{e}");
    let e = error(None, &[text("interfaces", "auto bond0\niface bond0 inet manual\n  bond-slaves a b\n  bond-mooode 1\n")]);
    assert_eq!(e, "interfaces:4: bond-mooode: unknown key in iface bond0; did you mean `bond-mode`?");
    let e = error(None, &[text("b.nmconnection", "[connection]\ntype=bond\ninterface-name=bond0\n\n[bond]\nmiimom=1\n")]);
    assert_eq!(e, "b.nmconnection:6: bond.miimom: unknown key in [bond]; did you mean `miimon`?");
    let e = error(None, &[text("b.netdev", "[NetDev]\nName=bond0\nKind=bond\n[Bond]\nMIIMonitorSecs=1s\n")]);
    assert_eq!(e, "b.netdev:5: Bond.MIIMonitorSecs: unknown key in [Bond]; did you mean `MIIMonitorSec`?");
}

#[test]
fn bonds_without_members_are_errors() {
    let e = error(None, &[text("b.yaml", "network:\n  bonds:\n    bond0:\n      parameters: {mode: active-backup}\n")]);
    assert_eq!(e, "b.yaml:3: interfaces: bond bond0 has no members");
    let e = error(None, &[text("interfaces", "iface lo inet loopback\niface bond0 inet manual\n  bond-slaves none\n  bond-mode 1\n")]);
    assert_eq!(e, "interfaces:2: bond-slaves: bond bond0 has no members");
    let e = error(None, &[text("b.nmconnection", "[connection]\ntype=bond\ninterface-name=bond0\n")]);
    assert_eq!(e, "b.nmconnection:3: ports (master=): bond bond0 has no members");
    let e = error(None, &[text("b.netdev", "[NetDev]\nName=bond0\nKind=bond\n")]);
    assert!(e.starts_with("b.netdev:2: Bond= (in a member's .network): bond bond0 has no members"), "{e}");
}

#[test]
fn shared_members_are_errors() {
    let t = "iface bond0 inet manual\n  bond-slaves a b\n\niface bond1 inet manual\n  bond-slaves c a\n";
    assert_eq!(error(None, &[text("interfaces", t)]), "interfaces:5: bond-slaves: a is already a member of bond bond0 (at interfaces:2)");
    let t = "network:\n  bonds:\n    bond0:\n      interfaces: [a, b]\n    bond1:\n      interfaces:\n        - c\n        - b\n";
    assert_eq!(error(None, &[text("n.yaml", t)]), "n.yaml:8: interfaces: b is already a member of bond bond0 (at n.yaml:4)");
    let t = "iface a inet manual\n  bond-master bond0\niface bond0 inet manual\n  bond-slaves a a\n";
    assert!(error(None, &[text("interfaces", t)]).contains("a is listed twice in bond bond0"));
}

#[test]
fn bad_values_are_errors() {
    let e = error(None, &[text("interfaces", "iface bond0 inet manual\n  bond-slaves a\n  bond-miimon often\n")]);
    assert_eq!(e, "interfaces:3: bond-miimon: \"often\" is not a whole number");
    let e = error(None, &[text("interfaces", "iface bond0 inet manual\n  bond-slaves a\n  bond-mode 9\n")]);
    assert!(e.starts_with("interfaces:3: bond-mode: unknown mode \"9\""), "{e}");
    let e = error(None, &[text("b.netdev", "[NetDev]\nName=bond0\nKind=bond\n[Bond]\nUpDelaySec=soon\n")]);
    assert!(e.starts_with("b.netdev:5: Bond.UpDelaySec: \"soon\" is not a time span"), "{e}");
    let e = error(
        None,
        &[text("b.yaml", "network:\n  bonds:\n    bond0:\n      interfaces: [a]\n      parameters:\n        lacp-rate: medium\n")],
    );
    assert!(e.starts_with("b.yaml:6: network.bonds.bond0.parameters.lacp-rate: \"medium\" is not slow, fast"), "{e}");
    let e = error(None, &[text("p.nmconnection", "[connection]\ntype=ethernet\ninterface-name=a\nmaster=bond9\nslave-type=bond\n")]);
    assert!(e.starts_with("p.nmconnection:4: connection.master: \"bond9\""), "{e}");
    let e = error(None, &[text("a", "iface bond0 inet manual\n bond-slaves a\n"), text("b.yaml", "network:\n  bonds: {}\n")]);
    assert!(e.starts_with("b.yaml: (file): looks like netplan"), "{e}");
}

/// Values this project refuses are comments, never keys; the result still loads.
#[test]
fn partial_equivalents_are_comments() {
    let t = "iface bond0 inet manual\n  bond-slaves a b\n  bond-mode 4\n  bond-arp-interval 100\n  bond-arp-ip-target 192.0.2.1\n  bond-fail-over-mac 1\n  bond-miimon 9999999\n";
    let out = import(None, &[text("interfaces", t)]).unwrap();
    assert_eq!(
        out.yaml,
        "# Imported by `bondctl import` from ifupdown: interfaces\nbonds:\n  bond0:\n    links: [a, b]\n    mode: 802.3ad\n    # not imported: bond-fail-over-mac = 1: only none here: every member carries the bond's MAC address\n    # not imported: bond-miimon = 9999999: 9999999 ms is outside 0..=3600000 here\n    # not imported: bond-arp-interval = 100: the ARP monitor does not work with 802.3ad (bonding refuses it too); links are watched by miimon\n    # not imported: bond-arp-ip-target = 192.0.2.1: the ARP monitor does not work with 802.3ad (bonding refuses it too); links are watched by miimon\n"
    );
    assert_eq!(out.warnings.len(), 4);
    assert!(out.warnings[0].starts_with("interfaces:6: bond-fail-over-mac: not imported: only none"));
    crate::config::parse(Path::new("x"), &out.yaml).unwrap();
}

#[test]
fn durations() {
    assert_eq!(duration_ms("100", 1), Ok(100));
    assert_eq!(duration_ms("100", 1000), Ok(100_000));
    assert_eq!(duration_ms("100ms", 1000), Ok(100));
    assert_eq!(duration_ms("1.5s", 1), Ok(1500));
    assert_eq!(duration_ms("1min 30s", 1), Ok(90_000));
    assert_eq!(duration_ms("2h", 1), Ok(7_200_000));
    assert!(duration_ms("1500us", 1).is_err());
    assert!(duration_ms("fast", 1).is_err());
    assert!(duration_ms("", 1).is_err());
    assert_eq!(duration_s("2s", 1000), Ok(2));
    assert_eq!(duration_s("5", 1000), Ok(5));
    assert!(duration_s("1500ms", 1000).is_err());
}
