//! Bad configuration files, table-driven: each is refused by `check`, `up` and `reload` with
//! the file, line (parse errors), key and reason, and nothing changes: no device, link setting,
//! pin, state file or daemon is left behind, and a running bond keeps running as it was.
//!
//! The tests sit in a module named after the file so that `cargo xtask test badconfig` selects
//! them (the filter matches test names).

mod badconfig {
    use std::{
        path::{Path, PathBuf},
        process::{Child, Command, ExitStatus, Stdio},
        time::{Duration, Instant},
    };

    use bond_tests::{
        Lab, LabOptions, Netns, cmd,
        lab::{TempDir, bondctl},
        net::ping,
    };

    /// One bad file. In `text` and the expectations, `BOND` is the case's bond name (`BONDx` a
    /// second bond); in the expectations, `FILE` is the file's path.
    struct Case {
        name: &'static str,
        ext: &'static str,
        text: &'static [&'static str],
        /// In the stderr of both `check` and `up`.
        want: &'static [&'static str],
        /// In `up`'s stderr instead of `want`, where `up` finds the problem itself.
        up_want: Option<&'static [&'static str]>,
    }

    const fn case(name: &'static str, ext: &'static str, text: &'static [&'static str], want: &'static [&'static str]) -> Case {
        Case { name, ext, text, want, up_want: None }
    }

    /// Every `text` has its line numbers at hand: line N is element N-1.
    const CASES: &[Case] = &[
        case(
            "yaml-syntax",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1", "    policy: active-backup"],
            &["FILE:4: (file): did not find expected ',' or ']' at line 4 column 11, while parsing a flow sequence"],
        ),
        case(
            "yaml-indent",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "   policy: active-backup"],
            &["FILE:4: (file): did not find expected key at line 4 column 4, while parsing a block mapping"],
        ),
        case(
            "json-syntax",
            "json",
            &[
                "// ZeroTier's local.conf style, a comma missing",
                "{",
                "  \"bonds\": { \"BOND\": { \"links\": [\"eth0\", \"eth1\"] } },",
                "  \"settings\": {",
                "    /* the policy */",
                "    \"defaultBondingPolicy\": \"balance-rr\"",
                "    \"balance-rr\": { \"packetsPerLink\": 8 }",
                "  }",
                "}",
            ],
            &["FILE:6: (file): ", "(column 29)"],
        ),
        case(
            "unknown-key",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: p",
                "settings:",
                "  policies:",
                "    p:",
                "      basePolicy: active-backup",
                "      failoverIntreval: 500",
            ],
            &["FILE:9: settings.policies.p: unknown field `failoverIntreval`, expected one of", "; did you mean `failoverInterval`?"],
        ),
        case(
            "unknown-key-json",
            "json",
            &[
                "{",
                "  \"bonds\": { \"BOND\": { \"links\": [\"eth0\", \"eth1\"], \"policy\": \"p\" } },",
                "  \"settings\": {",
                "    // ZeroTier's key names, trailing commas",
                "    \"policies\": {",
                "      \"p\": { \"basePolicy\": \"balance-rr\", \"packetsPerLnk\": 8, },",
                "    },",
                "  },",
                "}",
            ],
            &[
                "FILE:6: settings.policies.p.packetsPerLnk: unknown field `packetsPerLnk`, expected one of",
                "; did you mean `packetsPerLink`?",
            ],
        ),
        case(
            "unknown-bond-key",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "    miimom: 100"],
            &["FILE:4: bonds.BOND: unknown field `miimom`, expected one of", "; did you mean `miimon`?"],
        ),
        case(
            "negative-interval",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: p",
                "settings:",
                "  policies:",
                "    p:",
                "      basePolicy: active-backup",
                "      failoverInterval: -5",
            ],
            &["FILE:9: settings.policies.p.failoverInterval: invalid type: integer `-5`, expected u64"],
        ),
        case(
            "short-interval",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: p",
                "settings:",
                "  policies:",
                "    p:",
                "      basePolicy: active-backup",
                "      links:",
                "        eth0: { failoverInterval: 5 }",
            ],
            &["FILE:10: settings.policies.p.links.eth0.failoverInterval: 5 ms is outside 10..=3600000"],
        ),
        case(
            "packets-per-link",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: p",
                "settings:",
                "  policies:",
                "    p:",
                "      basePolicy: balance-rr",
                "      packetsPerLink: 5000000000",
            ],
            &["FILE:9: settings.policies.p.packetsPerLink: invalid value: integer `5000000000`, expected u32"],
        ),
        case(
            "weights",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: q",
                "settings:",
                "  policies:",
                "    q:",
                "      basePolicy: balance-aware",
                "      quality: { lat: 0.5, plr: 0.3 }",
            ],
            &["FILE:9: settings.policies.q.quality: the weights sum to 0.8, not 1.0"],
        ),
        case(
            "alloc",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1, eth2]",
                "    policy: a",
                "settings:",
                "  policies:",
                "    a:",
                "      basePolicy: balance-aware",
                "      links:",
                "        eth0: { alloc: 0.5 }",
                "        eth1: { alloc: 0.3 }",
                "        eth2: { alloc: 0.1 }",
            ],
            &["FILE:9: settings.policies.a.links: the alloc shares sum to 0.9, not 1.0"],
        ),
        case(
            "spare-failover-to",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: s",
                "settings:",
                "  policies:",
                "    s:",
                "      basePolicy: active-backup",
                "      links:",
                "        eth0: { mode: primary }",
                "        eth1: { mode: spare, failoverTo: eth0 }",
            ],
            &["FILE:11: settings.policies.s.links.eth1.failoverTo: a spare link has no failoverTo: it is what others fail over to"],
        ),
        case(
            "failover-to-missing",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: f",
                "settings:",
                "  policies:",
                "    f:",
                "      basePolicy: active-backup",
                "      links:",
                "        eth0: { mode: primary, failoverTo: eth5 }",
                "        eth1: { mode: spare }",
            ],
            &["FILE:10: settings.policies.f.links.eth0.failoverTo: \"eth5\" is not one of this policy's links"],
        ),
        case(
            "unknown-policy",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "    policy: active-bakup"],
            &[
                "FILE:4: bonds.BOND.policy: unknown policy \"active-bakup\" (known: 802.3ad, active-backup, balance-alb, balance-aware, balance-rr, balance-tlb, balance-xor, broadcast, none)",
            ],
        ),
        case(
            "unknown-base-policy",
            "yaml",
            &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    policy: mine",
                "settings:",
                "  policies:",
                "    mine:",
                "      basePolicy: round-robin",
            ],
            &[
                "FILE:8: settings.policies.mine.basePolicy: unknown policy \"round-robin\" (one of: none, active-backup, broadcast, balance-rr",
            ],
        ),
        case(
            "mode-7",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "    mode: 7"],
            &["FILE:4: bonds.BOND.mode: unknown mode \"7\" (0-6, or balance-rr, active-backup"],
        ),
        case(
            "lacp-rate",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "    mode: 4", "    lacp_rate: quick"],
            &["FILE:5: bonds.BOND.lacp_rate: \"quick\" is not slow, fast, 0 or 1"],
        ),
        case(
            "ad-actor-system",
            "json",
            &[
                "{",
                "  // as bonding.ko's options",
                "  \"bonds\": { \"BOND\": { \"links\": [\"eth0\", \"eth1\"], \"mode\": \"802.3ad\", \"ad_actor_system\": \"01:00:5e:00:00:01\" } }",
                "}",
            ],
            &["FILE:3: bonds.BOND.ad_actor_system: 01:00:5e:00:00:01 is a multicast or null address"],
        ),
        case(
            "tlb-dynamic-lb",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "    mode: balance-xor", "    tlb_dynamic_lb: 0"],
            &["FILE:5: bonds.BOND.tlb_dynamic_lb: applies to balance-tlb and balance-alb, not balance-xor"],
        ),
        case(
            "xmit-hash-policy",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "    mode: balance-xor", "    xmit_hash_policy: layer5"],
            &["FILE:5: bonds.BOND.xmit_hash_policy: unknown hash \"layer5\" (layer2, layer3+4"],
        ),
        case(
            "arp-ip-target",
            "yaml",
            &["bonds:", "  BOND:", "    links: [eth0, eth1]", "    arp_interval: 100", "    arp_ip_target: [192.0.2.1, 192.0.2.300]"],
            &["FILE:5: bonds.BOND.arp_ip_target[1]: \"192.0.2.300\" is not an IPv4 address"],
        ),
        // A peer is an address, a prefix, a MAC address or a ZeroTier node id.
        case(
            "bad-peer",
            "json",
            &[
                "{",
                "  \"bonds\": { \"BOND\": { \"links\": [\"eth0\", \"eth1\"] } },",
                "  \"settings\": {",
                "    \"peerSpecificBonds\": { \"192.0.2.0/40\": \"balance-rr\" }, // by prefix",
                "  },",
                "}",
            ],
            &["FILE: settings.peerSpecificBonds.192.0.2.0/40: \"40\" is not a prefix length 0..=32"],
        ),
        // Valid, but a member does not exist here: `check` says so, `up` refuses.
        Case {
            name: "missing-interface",
            ext: "yaml",
            text: &["bonds:", "  BOND:", "    links: [eth0, eth9]"],
            want: &[
                "FILE: bonds.BOND.links: interface eth9 does not exist here",
                "1 interface(s) missing; `bondctl up` would refuse this configuration",
            ],
            up_want: Some(&["bringing up bond BOND: member eth9: interface eth9 does not exist"]),
        },
        // The first bond comes up before the second fails: `up` must take it down again.
        Case {
            name: "second-bond-missing-interface",
            ext: "yaml",
            text: &[
                "bonds:",
                "  BOND:",
                "    links: [eth0, eth1]",
                "    addresses: [198.51.100.1/24]",
                "  BONDx:",
                "    links: [eth2, eth9]",
            ],
            want: &["FILE: bonds.BONDx.links: interface eth9 does not exist here"],
            up_want: Some(&["bringing up bond BONDx: member eth9: interface eth9 does not exist"]),
        },
    ];

    /// A namespace with veth pairs `eth<i>` = `p<i>`, every end up.
    fn namespace(links: usize) -> Netns {
        let ns = Netns::new("bc-").unwrap();
        for i in 0..links {
            let (eth, peer) = (format!("eth{i}"), format!("p{i}"));
            ns.ip(&["link", "add", &eth, "type", "veth", "peer", "name", &peer]).unwrap();
            ns.ip(&["link", "set", &eth, "up"]).unwrap();
            ns.ip(&["link", "set", &peer, "up"]).unwrap();
        }
        ns
    }

    /// What a bond could change in the namespace: devices with their MACs, flags, state, MTU,
    /// master and addresses; qdiscs (the data plane attaches clsact); members' IPv6 switches.
    fn snapshot(ns: &Netns, links: usize) -> String {
        let out = ns.ip(&["-j", "addr", "show"]).unwrap();
        let devs: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut lines = Vec::new();
        for d in devs.as_array().unwrap() {
            let addrs: Vec<String> = d["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
                .collect();
            lines.push(format!(
                "{} {} mac={} flags={} operstate={} mtu={} master={} addrs={addrs:?}",
                d["ifindex"], d["ifname"], d["address"], d["flags"], d["operstate"], d["mtu"], d["master"]
            ));
        }
        lines.push(cmd::run("tc", &["-n", ns.name(), "qdisc", "show"]).unwrap());
        let keys: Vec<String> = (0..links).map(|i| format!("net.ipv6.conf.eth{i}.disable_ipv6")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        lines.push(ns.exec("sysctl", &keys).unwrap());
        lines.join("\n")
    }

    /// Compares with a snapshot; the kernel may still be settling an undone change, so a
    /// difference gets two seconds to go away.
    fn assert_unchanged(ns: &Netns, links: usize, before: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let now = snapshot(ns, links);
            if now == before {
                return;
            }
            if Instant::now() > deadline {
                panic!("{what}: the namespace changed\nbefore:\n{before}\nafter:\n{now}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Removes what a wrongly successful `up` may have left outside the namespace.
    struct Leftovers(String, Vec<String>);

    impl Drop for Leftovers {
        fn drop(&mut self) {
            for b in &self.1 {
                let _ = std::fs::remove_dir_all(pins(&self.0, b));
                let _ = std::fs::remove_file(state_file(&self.0, b));
            }
        }
    }

    fn pins(netns: &str, bond: &str) -> PathBuf {
        bond_tests::lab::pin_dir(netns, bond).unwrap()
    }

    fn state_file(netns: &str, bond: &str) -> PathBuf {
        bond_tests::lab::state_file(netns, bond).unwrap()
    }

    /// A child process stopped on drop: SIGTERM (a bondctl up then cleans up), SIGKILL after 5 s.
    struct Reaped(Child);

    impl Reaped {
        fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(s) = self.0.try_wait().unwrap() {
                    return Some(s);
                }
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Drop for Reaped {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
            if self.wait_timeout(Duration::from_secs(5)).is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    /// `bondctl --netns NS ARGS`: success, stdout, stderr.
    fn bondctl_in(ns: &Netns, args: &[&str]) -> (bool, String, String) {
        let mut a = vec!["--netns", ns.name()];
        a.extend_from_slice(args);
        let out = cmd::output(&bondctl().to_string_lossy(), &a).unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `bondctl --netns NS up --config FILE`, killed if it runs for 10 s (a wrongly accepted
    /// file would keep it running). Its exit status (None: it had to be stopped) and stderr.
    fn up(ns: &Netns, config: &Path, log: &Path) -> (Option<ExitStatus>, String, Duration) {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(bondctl())
            .args(["--netns", ns.name(), "up", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut child = Reaped(child);
        let status = child.wait_timeout(Duration::from_secs(10));
        let took = started.elapsed();
        drop(child);
        (status, std::fs::read_to_string(log).unwrap(), took)
    }

    #[test]
    fn bad_files_are_refused_and_change_nothing() {
        const LINKS: usize = 3;
        let ns = namespace(LINKS);
        let dir = TempDir::new().unwrap();
        // Links come up and get their IPv6 link-local addresses asynchronously: wait until every
        // one has both before the snapshot.
        bond_tests::wait_until(Duration::from_secs(5), "links up with link-local addresses", || {
            let devs: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "addr", "show"]).unwrap()).unwrap();
            devs.as_array().unwrap().iter().filter(|d| d["ifname"] != "lo").all(|d| {
                d["operstate"] == "UP"
                    && d["addr_info"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|a| a["local"].as_str().is_some_and(|l| l.starts_with("fe80"))))
            })
        });
        let before = snapshot(&ns, LINKS);
        let mut slowest = Duration::ZERO;
        for c in CASES {
            let bond = bond_tests::unique_name("bd");
            let bonds = vec![bond.clone(), format!("{bond}x")];
            let _leftovers = Leftovers(ns.name().to_string(), bonds.clone());
            let file = dir.path().join(format!("{}.{}", c.name, c.ext));
            let mut text = c.text.join("\n").replace("BOND", &bond);
            text.push('\n');
            std::fs::write(&file, &text).unwrap();
            let expand = |w: &[&str]| -> Vec<String> {
                w.iter().map(|s| s.replace("FILE", &file.to_string_lossy()).replace("BOND", &bond)).collect()
            };
            let context = format!("case {} ({}):\n{text}", c.name, file.display());

            let (ok, stdout, stderr) = bondctl_in(&ns, &["check", "--config", &file.to_string_lossy()]);
            assert!(!ok, "{context}check accepted it:\n{stdout}{stderr}");
            for w in expand(c.want) {
                assert!(stderr.contains(&w), "{context}check's error lacks\n  {w}\ngot:\n  {stderr}");
            }
            assert_unchanged(&ns, LINKS, &before, &format!("{context}after check"));

            let (status, stderr, took) = up(&ns, &file, &dir.path().join(format!("{}.log", c.name)));
            let status = status.unwrap_or_else(|| panic!("{context}up still ran after 10 s:\n{stderr}"));
            assert!(!status.success(), "{context}up exited successfully:\n{stderr}");
            slowest = slowest.max(took);
            for w in expand(c.up_want.unwrap_or(c.want)) {
                assert!(stderr.contains(&w), "{context}up's error lacks\n  {w}\ngot:\n  {stderr}");
            }
            assert_unchanged(&ns, LINKS, &before, &format!("{context}after up"));
            for b in &bonds {
                assert!(ns.ip(&["link", "show", "dev", b]).is_err(), "{context}bond device {b} exists");
                let (pins, state) = (pins(ns.name(), b), state_file(ns.name(), b));
                assert!(!pins.exists(), "{context}{} exists", pins.display());
                assert!(!state.exists(), "{context}{} exists", state.display());
            }
            let (ok, _, stderr) = bondctl_in(&ns, &["status"]);
            assert!(!ok && stderr.contains("no bond is running"), "{context}a bond still runs: {stderr}");
        }
        eprintln!("{} bad files refused; slowest `up` took {slowest:?}", CASES.len());
    }

    /// Status fields a refused reload must leave as they were.
    fn essentials(lab: &Lab) -> (String, Vec<String>, u64) {
        let s = lab.a.daemon().status().unwrap();
        let members = s["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect();
        (s["policy"]["name"].as_str().unwrap().to_string(), members, s["generation"].as_u64().unwrap())
    }

    #[test]
    fn bad_reload_keeps_the_bond_running() {
        let lab = Lab::start(LabOptions::default()).unwrap();
        let bond = lab.a.bond.clone();
        let good = std::fs::read_to_string(lab.config_path(&lab.a)).unwrap();
        assert!(good.contains("    links: [eth0, eth1, eth2]\n") && good.contains("    policy: active-backup\n"), "{good}");
        ping(&lab, 2).unwrap();
        let before = essentials(&lab);
        assert_eq!(before.0, "active-backup");
        assert_eq!(before.1, ["eth0", "eth1", "eth2"]);

        let rr = good.replace("policy: active-backup", "policy: balance-rr");
        // Each variant also switches the policy, so a partly applied file would show.
        let variants: [(&str, String, &[&str]); 5] = [
            (
                "syntax",
                rr.replace("links: [eth0, eth1, eth2]", "links: [eth0, eth1, eth2"),
                &["FILE:4: (file): did not find expected ',' or ']' at line 4"],
            ),
            (
                "unknown-key",
                rr.replace("    policy: balance-rr\n", "    policy: balance-rr\n    miimom: 50\n"),
                &["FILE:6: bonds.BOND: unknown field `miimom`", "did you mean `miimon`?"],
            ),
            (
                "bad-value",
                format!("{rr}settings:\n  balance-rr:\n    failoverInterval: 5\n"),
                &["FILE:8: settings.balance-rr.failoverInterval: 5 ms is outside 10..=3600000"],
            ),
            (
                "missing-member",
                rr.replace("links: [eth0, eth1, eth2]", "links: [eth0, eth1, eth2, eth7]"),
                &["FILE: bond BOND: member eth7: interface eth7 does not exist"],
            ),
            (
                "bond-missing",
                rr.replace(&format!("  {bond}:"), &format!("  {bond}z:")),
                &["FILE: bond BOND runs but is not in the file; `bondctl down BOND` removes it"],
            ),
        ];
        for (name, text, want) in variants {
            assert_ne!(text, rr, "variant {name} changes the file");
            let file = lab.dir().join(format!("bad-{name}.yaml"));
            std::fs::write(&file, &text).unwrap();
            let context = format!("variant {name} ({}):\n{text}", file.display());
            let (ok, stdout, stderr) = bondctl_in(&lab.a.ns, &["reload", &bond, "--config", &file.to_string_lossy()]);
            assert!(!ok, "{context}reload accepted it:\n{stdout}\ndaemon log:\n{}", lab.a.daemon().log());
            for w in want {
                let w = w.replace("FILE", &file.to_string_lossy()).replace("BOND", &bond);
                assert!(stderr.contains(&w), "{context}reload's error lacks\n  {w}\ngot:\n  {stderr}");
            }
            assert_eq!(essentials(&lab), before, "{context}the bond changed\ndaemon log:\n{}", lab.a.daemon().log());
            ping(&lab, 2)
                .unwrap_or_else(|e| panic!("{context}no ping after the refused reload: {e:#}\ndaemon log:\n{}", lab.a.daemon().log()));
        }

        // The same file with only the policy changed is taken: the refusals were the files'.
        let file = lab.dir().join("good.yaml");
        std::fs::write(&file, &rr).unwrap();
        let out = lab.a.daemon().ctl(&["reload", &bond, "--config", &file.to_string_lossy()]).unwrap();
        assert!(out.contains(&format!("{bond}: policy active-backup -> balance-rr")), "{out}");
        let (policy, members, generation) = essentials(&lab);
        assert_eq!((policy.as_str(), &members), ("balance-rr", &before.1));
        assert!(generation > before.2, "generation {generation} after the reload, {} before", before.2);
        ping(&lab, 2).unwrap();
    }
}
