//! Two namespaces joined by N veth links, with a bond daemon on each side.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{Netns, cmd};

/// The `bondctl` binary under test: `$BONDCTL`, else the workspace's release build.
pub fn bondctl() -> PathBuf {
    match std::env::var_os("BONDCTL") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/bondctl"),
    }
}

pub const ADDR_A: &str = "192.0.2.1";
pub const ADDR_B: &str = "192.0.2.2";

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Number of links (veth pairs, `eth0`.. on both sides).
    pub links: usize,
    /// Policy both bonds start with.
    pub policy: String,
    /// YAML put under `settings:` on both sides (custom policies).
    pub settings: String,
    /// Leave IPv6 on for the bonds (off by default, so no stray ND/MLD traffic muddies counts).
    pub ipv6: bool,
    /// Start the daemon on side B (the receiving side) too.
    pub bond_b: bool,
    /// Policy of side B when it differs from A's.
    pub b_policy: Option<String>,
    /// YAML lines added under side A's bond (bonding options such as `arp_interval: 100`).
    pub a_bond: String,
    /// YAML lines added under both bonds (e.g. `mode: 802.3ad`, with `policy` empty).
    pub bond_lines: String,
    /// Join the sides through a wire namespace that can cut and impair links (see [`Lab`]);
    /// without it the links are direct veth pairs (for benchmarks: nothing in between).
    pub wire: bool,
    /// Start side A's daemon under `ip netns exec` rather than `bondctl --netns`.
    pub a_under_ip_netns_exec: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            links: 3,
            policy: "active-backup".into(),
            settings: String::new(),
            ipv6: false,
            bond_b: true,
            b_policy: None,
            a_bond: String::new(),
            bond_lines: String::new(),
            wire: true,
            a_under_ip_netns_exec: false,
        }
    }
}

impl LabOptions {
    pub fn policy(mut self, p: &str) -> Self {
        self.policy = p.into();
        self
    }
    pub fn settings(mut self, s: &str) -> Self {
        self.settings = s.into();
        self
    }
    pub fn links(mut self, n: usize) -> Self {
        self.links = n;
        self
    }
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }
    pub fn b_policy(mut self, p: &str) -> Self {
        self.b_policy = Some(p.into());
        self
    }
    pub fn a_bond(mut self, yaml: &str) -> Self {
        self.a_bond = yaml.into();
        self
    }
    /// No daemon on side B (the test runs its own there).
    pub fn no_bond_b(mut self) -> Self {
        self.bond_b = false;
        self
    }
    pub fn bond_lines(mut self, yaml: &str) -> Self {
        self.bond_lines = yaml.into();
        self
    }
    /// Side A's daemon started as `ip netns exec NS bondctl up ...`.
    pub fn a_under_ip_netns_exec(mut self) -> Self {
        self.a_under_ip_netns_exec = true;
        self
    }
    /// Direct veth links, no wire namespace in between.
    pub fn direct(mut self) -> Self {
        self.wire = false;
        self
    }
}

/// One side of the lab. Field order matters: the daemon goes before its namespace.
pub struct Side {
    pub daemon: Option<Daemon>,
    pub bond: String,
    pub addr: &'static str,
    pub ns: Netns,
}

impl Side {
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("this side runs no daemon")
    }

    /// Where this side's bond keeps its pins.
    pub fn pins(&self) -> PathBuf {
        pin_dir(self.ns.name(), &self.bond).expect("the namespace's pin directory")
    }

    /// Member names.
    pub fn members(&self, links: usize) -> Vec<String> {
        (0..links).map(|i| format!("eth{i}")).collect()
    }
}

/// The lab. Dropping it stops the daemons, then deletes the namespaces (and so every link).
///
/// With a wire namespace (the default) each link is `A:eth<i> = W:a<i> -> W:b<i> = B:eth<i>`,
/// frames passed across W by nftables (`fwd`), where they can be dropped or thinned out without
/// any carrier change. The bond's own programs cannot be bypassed on A or B: traffic they
/// redirect skips the members' netfilter hooks, so faults are injected in between.
pub struct Lab {
    /// Link emulators put on links (see [`Lab::emulate`]); stopped first.
    emulators: Vec<Option<crate::emu::Emulator>>,
    pub a: Side,
    pub b: Side,
    wire: Option<Netns>,
    pub links: usize,
    dir: TempDir,
}

impl Lab {
    pub fn start(opts: LabOptions) -> anyhow::Result<Lab> {
        const BOND: &str = "bond0";
        let dir = TempDir::new()?;
        let ns_a = Netns::new("lab-a-")?;
        let ns_b = Netns::new("lab-b-")?;
        let wire = if opts.wire { Some(Netns::new("lab-w-")?) } else { None };
        for ns in [&ns_a, &ns_b] {
            if !opts.ipv6 {
                ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            }
        }
        match &wire {
            Some(w) => build_wire(w, &ns_a, &ns_b, opts.links, dir.path())?,
            None => {
                for i in 0..opts.links {
                    let name = format!("eth{i}");
                    ns_a.ip(&["link", "add", &name, "type", "veth", "peer", "name", &name, "netns", ns_b.name()])?;
                }
            }
        }
        for i in 0..opts.links {
            let name = format!("eth{i}");
            ns_a.ip(&["link", "set", &name, "up"])?;
            ns_b.ip(&["link", "set", &name, "up"])?;
        }
        // Every lab's bonds are `bond0`, as on real hosts: namespaces keep them apart (their pins,
        // state files and control sockets included), also when tests run in parallel.
        let mut lab = Lab {
            emulators: (0..opts.links).map(|_| None).collect(),
            a: Side { daemon: None, bond: BOND.into(), addr: ADDR_A, ns: ns_a },
            b: Side { daemon: None, bond: BOND.into(), addr: ADDR_B, ns: ns_b },
            wire,
            links: opts.links,
            dir,
        };
        let cfg_a = lab.write_config(&lab.a, &opts)?;
        let start_a = if opts.a_under_ip_netns_exec { Daemon::start_under_ip_netns_exec } else { Daemon::start_with };
        lab.a.daemon = Some(start_a(&lab.a.ns, &cfg_a, &lab.a.bond, lab.dir.path(), &[])?);
        if opts.bond_b {
            let cfg_b = lab.write_config(&lab.b, &opts)?;
            lab.b.daemon = Some(Daemon::start(&lab.b.ns, &cfg_b, &lab.b.bond, lab.dir.path())?);
        }
        Ok(lab)
    }

    /// Kills A's daemon with SIGKILL: it cleans nothing up, and the bond forwards on without it.
    pub fn kill_a(&mut self) -> anyhow::Result<()> {
        self.a.daemon.as_mut().context("A runs no daemon")?.kill()
    }

    /// Starts a new daemon for A's bond in place of the killed one; it adopts what that one
    /// left (the old one's guard no longer removes it).
    pub fn restart_a(&mut self) -> anyhow::Result<()> {
        self.restart_a_slowly(Duration::ZERO)
    }

    /// As [`Lab::restart_a`], the new daemon held up for `delay` before it loads the programs
    /// over the running bond: what a busy host's verifier can take.
    pub fn restart_a_slowly(&mut self, delay: Duration) -> anyhow::Result<()> {
        if let Some(old) = self.a.daemon.take() {
            old.hand_over();
        }
        let (config, dir) = (self.config_path(&self.a), self.dir.path().to_path_buf());
        let mut command = Daemon::bondctl_in(&self.a.ns);
        command.env("BONDCTL_TEST_ADOPT_DELAY_MS", delay.as_millis().to_string());
        self.a.daemon = Some(Daemon::spawn(command, &self.a.ns, &config, &self.a.bond, &dir, &[])?);
        Ok(())
    }

    /// The configuration file of a side's bond.
    pub fn config_path(&self, side: &Side) -> PathBuf {
        // Named by namespace too: both sides' bonds are `bond0`.
        self.dir.path().join(format!("{}-{}.yaml", side.ns.name(), side.bond))
    }

    fn write_config(&self, side: &Side, opts: &LabOptions) -> anyhow::Result<PathBuf> {
        let links: Vec<String> = side.members(opts.links);
        let is_a = side.addr == ADDR_A;
        let policy = if is_a { &opts.policy } else { opts.b_policy.as_ref().unwrap_or(&opts.policy) };
        let mut text = format!("bonds:\n  {}:\n    links: [{}]\n    addresses: [{}/24]\n", side.bond, links.join(", "), side.addr);
        if !policy.is_empty() {
            text.push_str(&format!("    policy: {policy}\n"));
        }
        let own = if is_a { opts.a_bond.as_str() } else { "" };
        for line in opts.bond_lines.lines().chain(own.lines()) {
            text.push_str("    ");
            text.push_str(line);
            text.push('\n');
        }
        if !opts.settings.trim().is_empty() {
            text.push_str("settings:\n");
            for line in opts.settings.lines() {
                text.push_str("  ");
                text.push_str(line);
                text.push('\n');
            }
        }
        let path = self.config_path(side);
        fs::write(&path, text)?;
        Ok(path)
    }

    /// Cuts link `i`: both bonds' members on it lose carrier (the wire's ends go down; without
    /// a wire, B's end goes down and A's loses carrier).
    pub fn cut(&self, i: usize) -> anyhow::Result<()> {
        self.set_link(i, "down")
    }

    pub fn restore(&self, i: usize) -> anyhow::Result<()> {
        self.set_link(i, "up")
    }

    fn set_link(&self, i: usize, state: &str) -> anyhow::Result<()> {
        match &self.wire {
            Some(w) => {
                w.ip(&["link", "set", &format!("a{i}"), state])?;
                w.ip(&["link", "set", &format!("b{i}"), state]).map(drop)
            }
            None => self.b.ns.ip(&["link", "set", &format!("eth{i}"), state]).map(drop),
        }
    }

    /// Puts a link emulator on link `i` (see [`crate::emu`]): from now on the user-space
    /// emulator carries its frames (the wire's kernel forwarding for it stops), with no
    /// impairment until told. Direction 0 is A to B.
    pub fn emulate(&mut self, i: usize) -> anyhow::Result<&crate::emu::Emulator> {
        let w = self.wire.as_ref().context("emulating links needs the wire namespace")?;
        if self.emulators[i].is_none() {
            // The emulator reads frames as they leave a member; checksums the NIC would fill
            // in (veth leaves them partial) must be complete by then, and no frame may be a
            // GSO super-packet: both ends' members checksum and segment in software.
            for side in [&self.a, &self.b] {
                side.ns.exec("ethtool", &["-K", &format!("eth{i}"), "tx", "off"])?;
            }
            let emu = crate::emu::Emulator::start(w, &format!("a{i}"), &format!("b{i}"))?;
            let script = format!(
                "flush chain netdev wire a{i}\nadd rule netdev wire a{i} drop\nflush chain netdev wire b{i}\nadd rule netdev wire b{i} drop\n"
            );
            let path = self.dir.path().join(format!("emulate-{i}.nft"));
            fs::write(&path, script)?;
            w.exec("nft", &["-f", &path.to_string_lossy()])?;
            self.emulators[i] = Some(emu);
        }
        Ok(self.emulators[i].as_ref().expect("just put"))
    }

    /// The emulator on link `i`, if it has one.
    pub fn emulator(&self, i: usize) -> Option<&crate::emu::Emulator> {
        self.emulators[i].as_ref()
    }

    /// Drops `percent`% of the frames crossing link `i` in each direction, without touching
    /// carrier: 100 makes the link silent.
    pub fn impair(&self, i: usize, percent: u32) -> anyhow::Result<()> {
        let w = self.wire.as_ref().context("impairing links needs the wire namespace")?;
        anyhow::ensure!(self.emulators[i].is_none(), "link {i} is emulated: impair it with its emulator");
        let drop = if percent >= 100 { "drop".to_string() } else { format!("numgen random mod 100 < {percent} drop") };
        // One transaction: between a flush and the new rules the link would be silent.
        let mut script = String::new();
        for (from, to) in [(format!("a{i}"), format!("b{i}")), (format!("b{i}"), format!("a{i}"))] {
            script.push_str(&format!("flush chain netdev wire {from}\n"));
            if percent > 0 {
                script.push_str(&format!("add rule netdev wire {from} {drop}\n"));
            }
            script.push_str(&format!("add rule netdev wire {from} fwd to \"{to}\"\n"));
        }
        let path = self.dir.path().join(format!("impair-{i}.nft"));
        fs::write(&path, script)?;
        w.exec("nft", &["-f", &path.to_string_lossy()]).map(|_| ())
    }

    /// Drops the slow-protocol frames (LACPDUs) crossing link `i` from B to A only, so that
    /// A's partner on it falls silent while every other frame passes. Undone by `repair`.
    pub fn drop_lacp_from_b(&self, i: usize) -> anyhow::Result<()> {
        let w = self.wire.as_ref().context("dropping frames needs the wire namespace")?;
        let script = format!(
            "flush chain netdev wire b{i}\nadd rule netdev wire b{i} ether type 0x8809 drop\nadd rule netdev wire b{i} fwd to \"a{i}\"\n"
        );
        let path = self.dir.path().join(format!("lacp-{i}.nft"));
        fs::write(&path, script)?;
        w.exec("nft", &["-f", &path.to_string_lossy()]).map(|_| ())
    }

    /// Removes what `impair` did to link `i`.
    pub fn repair(&self, i: usize) -> anyhow::Result<()> {
        self.impair(i, 0)
    }

    /// Kernel counters of every member on side B.
    pub fn b_member_counters(&self) -> anyhow::Result<Vec<crate::ns::Counters>> {
        (0..self.links).map(|i| self.b.ns.counters(&format!("eth{i}"))).collect()
    }

    /// The wire namespace (None for direct links), e.g. to capture what a side sent on link i
    /// at `b<i>`/`a<i>` without passing the other side's programs.
    pub fn wire(&self) -> Option<&Netns> {
        self.wire.as_ref()
    }

    /// Kernel counters of the wire's ends facing A (`W:a<i>`), per link: their rx is what A sent
    /// on member i, counted outside A and before `impair` drops anything; their tx is what
    /// reached A on it.
    pub fn wire_a_counters(&self) -> anyhow::Result<Vec<crate::ns::Counters>> {
        let w = self.wire.as_ref().context("counting on the wire needs the wire namespace")?;
        (0..self.links).map(|i| w.counters(&format!("a{i}"))).collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The wire namespace: per link, `a<i>` (to A) and `b<i>` (to B), frames forwarded between them
/// by nftables. No IPv6 of its own, so it adds no traffic.
fn build_wire(w: &Netns, a: &Netns, b: &Netns, links: usize, dir: &Path) -> anyhow::Result<()> {
    w.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
    w.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
    let mut rules = String::from("table netdev wire {\n");
    for i in 0..links {
        let eth = format!("eth{i}");
        w.ip(&["link", "add", &format!("a{i}"), "type", "veth", "peer", "name", &eth, "netns", a.name()])?;
        w.ip(&["link", "add", &format!("b{i}"), "type", "veth", "peer", "name", &eth, "netns", b.name()])?;
        for end in ["a", "b"] {
            w.ip(&["link", "set", &format!("{end}{i}"), "up"])?;
        }
        rules.push_str(&format!(
            " chain a{i} {{ type filter hook ingress device \"a{i}\" priority 0; fwd to \"b{i}\"; }}\n chain b{i} {{ type filter hook ingress device \"b{i}\" priority 0; fwd to \"a{i}\"; }}\n"
        ));
    }
    rules.push_str("}\n");
    let path = dir.join(format!("{}.nft", w.name()));
    fs::write(&path, rules)?;
    w.exec("nft", &["-f", &path.to_string_lossy()]).map(drop)
}

/// A `bondctl up` process, stopped with SIGTERM on drop (SIGKILL if it does not exit).
pub struct Daemon {
    child: Child,
    /// Whether dropping it removes what a killed daemon leaves (see [`Daemon::hand_over`]).
    owns_bond: bool,
    pub bond: String,
    netns: String,
    log: PathBuf,
}

impl Daemon {
    pub fn start(ns: &Netns, config: &Path, bond: &str, dir: &Path) -> anyhow::Result<Daemon> {
        Daemon::start_with(ns, config, bond, dir, &[])
    }

    /// `bondctl up --config CONFIG ARGS`; the log goes to `dir/<netns>-<bond>.log` (appended
    /// to, so a restarted daemon's log follows the first one's).
    pub fn start_with(ns: &Netns, config: &Path, bond: &str, dir: &Path, args: &[&str]) -> anyhow::Result<Daemon> {
        Daemon::spawn(Daemon::bondctl_in(ns), ns, config, bond, dir, args)
    }

    /// `bondctl --netns NS`, to be given a command.
    fn bondctl_in(ns: &Netns) -> Command {
        let mut command = Command::new(bondctl());
        command.args(["--netns", ns.name()]);
        command
    }

    /// `ip netns exec NS bondctl up --config CONFIG ARGS`: the daemon in `ip`'s private mount
    /// namespace, whose fresh /sys hides the host's BPF filesystem.
    pub fn start_under_ip_netns_exec(ns: &Netns, config: &Path, bond: &str, dir: &Path, args: &[&str]) -> anyhow::Result<Daemon> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns.name()]).arg(bondctl());
        Daemon::spawn(command, ns, config, bond, dir, args)
    }

    fn spawn(mut command: Command, ns: &Netns, config: &Path, bond: &str, dir: &Path, args: &[&str]) -> anyhow::Result<Daemon> {
        let log = dir.join(format!("{}-{bond}.log", ns.name()));
        let out = fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = command
            .args(["up", "--config"])
            .arg(config)
            .args(args)
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bondctl().display()))?;
        let mut d = Daemon { child, owns_bond: true, bond: bond.into(), netns: ns.name().into(), log };
        d.wait_ready(Duration::from_secs(15))?;
        Ok(d)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("bondctl up exited with {status}:\n{}", self.log());
            }
            if self.ctl(&["status", &self.bond.clone(), "--json"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("bond {} not ready after {timeout:?}:\n{}", self.bond, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `bondctl --netns NS ARGS`.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["--netns", &self.netns];
        a.extend_from_slice(args);
        cmd::run(&bondctl().to_string_lossy(), &a)
    }

    /// `bondctl status BOND --json` for this bond.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let out = self.ctl(&["status", &self.bond, "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        Ok(v[0].clone())
    }

    pub fn set_policy(&self, policy: &str) -> anyhow::Result<()> {
        self.ctl(&["set-policy", &self.bond, policy]).map(drop)
    }

    /// A member's field from the status, e.g. `member(&s, "eth0")["tx_packets"]`.
    pub fn member<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        status["members"].as_array().and_then(|m| m.iter().find(|m| m["name"] == name)).unwrap_or(&serde_json::Value::Null)
    }

    /// When the first event of a status containing `needle` happened, in milliseconds after
    /// `since` (negative: before it), by the wall-clock time the daemon stamps events with
    /// (RFC 3339, milliseconds; the daemon and the test read one clock).
    pub fn event_ms_after(status: &serde_json::Value, needle: &str, since: std::time::SystemTime) -> Option<f64> {
        let e = status["events"].as_array()?.iter().find(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))?;
        let at = humantime::parse_rfc3339(e["time"].as_str()?).ok()?;
        Some(match at.duration_since(since) {
            Ok(d) => d.as_secs_f64() * 1000.0,
            Err(e) => -e.duration().as_secs_f64() * 1000.0,
        })
    }

    /// The messages of the status's events of `kinds` logged at `since` or later, oldest first.
    /// The status keeps the latest 32 events, stamped to the millisecond: one logged in the
    /// same millisecond as `since`, or pushed out by 32 later ones, may be missed.
    pub fn events_since(status: &serde_json::Value, kinds: &[&str], since: std::time::SystemTime) -> Vec<String> {
        let Some(events) = status["events"].as_array() else { return Vec::new() };
        events
            .iter()
            .filter(|e| kinds.contains(&e["kind"].as_str().unwrap_or("")))
            .filter(|e| e["time"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok()).is_some_and(|t| t >= since))
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Forgets an exited daemon whose bond a new daemon adopts: dropping it must not remove the
    /// bond's pins and state under the new one.
    pub fn hand_over(mut self) {
        self.owns_bond = false;
    }

    /// Kills the daemon with SIGKILL (it cleans nothing up) and waits for it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// The daemon's exit status, if it has exited by itself.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the daemon with SIGTERM and waits for it; returns its exit status.
    pub fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait()? {
                // It cleaned up itself (or left the bond to the next daemon with --persist).
                self.owns_bond = !s.success();
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("bondctl did not exit within 10 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.stop();
        }
        let control = control_dir(&self.netns);
        if !self.owns_bond {
            // The directory goes once empty (another daemon's socket keeps it).
            let _ = control.map(fs::remove_dir);
            return;
        }
        // Whatever a killed daemon left: its pins, state file and control socket (the
        // namespace takes the devices with it).
        if let Ok(pins) = pin_dir(&self.netns, &self.bond) {
            let _ = fs::remove_dir_all(&pins);
            let _ = pins.parent().map(fs::remove_dir);
        }
        if let Ok(state) = state_file(&self.netns, &self.bond) {
            let _ = fs::remove_file(&state);
            let _ = state.parent().map(fs::remove_dir);
        }
        if let Ok(dir) = control {
            for ext in ["sock", "lock"] {
                let _ = fs::remove_file(dir.join(format!("{}.{ext}", self.bond)));
            }
            // Empty once the namespace's last bond is gone.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The directory of the control sockets of network namespace `netns` (named by its cookie, as
/// `bondctl` names it).
pub fn control_dir(netns: &str) -> std::io::Result<PathBuf> {
    Ok(Path::new("/run/bondctl").join(format!("ctl-cookie-{}", netns_cookie(netns)?)))
}

/// Network namespace `netns`'s part of host-wide paths, as `bondctl` names it.
pub fn netns_part(netns: &str) -> std::io::Result<String> {
    Ok(format!("netns-cookie:{}", netns_cookie(netns)?))
}

/// The cookie of network namespace `netns` (`SO_NETNS_COOKIE` on a socket made inside it, on a
/// thread of its own that enters it and ends there).
pub fn netns_cookie(netns: &str) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{netns}");
    let inside = std::thread::spawn(move || -> std::io::Result<u64> {
        nix::sched::setns(fs::File::open(&path)?, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let (mut cookie, mut len) = (0u64, std::mem::size_of::<u64>() as libc::socklen_t);
        // SO_NETNS_COOKIE (71): nix has no such option.
        // SAFETY: the kernel writes at most `len` (8) bytes into `cookie`, a live local u64.
        let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, 71, (&raw mut cookie).cast(), &mut len) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(cookie)
    });
    inside.join().map_err(|_| std::io::Error::other("reading a namespace's cookie panicked"))?
}

/// The ifindex the TCX link pinned at `pin` is attached to: 0 once its device is gone
/// (BPF_OBJ_GET, then BPF_OBJ_GET_INFO_BY_FD: bpftool does not print a TCX link's device).
pub fn tcx_link_ifindex(pin: &Path) -> std::io::Result<u32> {
    use std::os::{
        fd::{FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    };
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let path = std::ffi::CString::new(pin.as_os_str().as_bytes())?;
    let mut get = ObjGet { pathname: path.as_ptr() as u64, bpf_fd: 0, file_flags: 0 };
    // SAFETY: BPF_OBJ_GET (7) reads `get` and the NUL-terminated path it points to, both live.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 7, &raw mut get, std::mem::size_of::<ObjGet>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_link_info: type, id, prog_id, then (8-aligned) for TCX: ifindex, attach_type.
    let mut info = [0u32; 6];
    let mut attr = InfoByFd { bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32, info_len: 24, info: info.as_mut_ptr() as u64 };
    // SAFETY: BPF_OBJ_GET_INFO_BY_FD (15) reads `attr` and writes at most 24 bytes into `info`.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 15, &raw mut attr, std::mem::size_of::<InfoByFd>()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info[4])
}

/// The pin directory of bond `bond` of network namespace `netns`.
pub fn pin_dir(netns: &str, bond: &str) -> std::io::Result<PathBuf> {
    Ok(Path::new("/sys/fs/bpf/bond").join(netns_part(netns)?).join(bond))
}

/// The state file of bond `bond` of network namespace `netns`.
pub fn state_file(netns: &str, bond: &str) -> std::io::Result<PathBuf> {
    Ok(Path::new("/run/bondctl").join(netns_part(netns)?).join(format!("{bond}.json")))
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> anyhow::Result<TempDir> {
        let p = std::env::temp_dir().join(crate::unique_name("bond-lab-"));
        fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
