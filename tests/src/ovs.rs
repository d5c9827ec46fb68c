//! Open vSwitch run entirely in user space (`datapath_type=netdev`) inside a lab namespace:
//! its own database and `ovs-vswitchd`, with a run directory of their own, stopped on drop. The
//! independent implementation the bond is tested and measured against.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::Netns;

/// Whether Open vSwitch is installed (`cargo xtask setup` installs it).
pub fn installed() -> bool {
    Command::new("ovs-vswitchd").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// ovsdb-server and ovs-vswitchd with their own run directory, killed on drop.
pub struct Ovs {
    dir: PathBuf,
    ns: String,
}

impl Ovs {
    pub fn start(ns: &Netns, dir: &Path) -> anyhow::Result<Ovs> {
        let dir = dir.join("ovs");
        std::fs::create_dir_all(&dir)?;
        let ovs = Ovs { dir: dir.clone(), ns: ns.name().to_string() };
        let db = dir.join("conf.db");
        run("ovsdb-tool", &["create", &s(&db), "/usr/share/openvswitch/vswitch.ovsschema"], &dir)?;
        let remote = format!("--remote=punix:{}", s(&dir.join("db.sock")));
        let log = format!("--log-file={}", s(&dir.join("ovsdb.log")));
        let pid = format!("--pidfile={}", s(&dir.join("ovsdb.pid")));
        ovs.exec("ovsdb-server", &[&s(&db), &remote, &pid, &log, "--detach", "--no-chdir"])?;
        ovs.vsctl(&["--no-wait", "init"])?;
        ovs.start_vswitchd()?;
        Ok(ovs)
    }

    fn start_vswitchd(&self) -> anyhow::Result<()> {
        let dir = &self.dir;
        let log = format!("--log-file={}", s(&dir.join("vswitchd.log")));
        let pid = format!("--pidfile={}", s(&dir.join("vswitchd.pid")));
        let db = format!("unix:{}", s(&dir.join("db.sock")));
        let ctl = format!("--unixctl={}", s(&dir.join("vswitchd.ctl")));
        self.exec("ovs-vswitchd", &[&db, &pid, &log, &ctl, "--detach", "--no-chdir"]).map(drop)
    }

    /// Stops ovs-vswitchd (SIGTERM: it takes its datapath and LACP state with it) and starts it
    /// again on the same database.
    pub fn restart_vswitchd(&self) -> anyhow::Result<()> {
        stop_pidfile(&self.dir.join("vswitchd.pid"));
        self.start_vswitchd()
    }

    /// Runs an OVS program in the namespace with this instance's run directory.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["netns", "exec", &self.ns, program];
        a.extend_from_slice(args);
        let out = Command::new("ip").args(&a).env("OVS_RUNDIR", &self.dir).env("OVS_DBDIR", &self.dir).output()?;
        anyhow::ensure!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db=unix:{}", s(&self.dir.join("db.sock")));
        let mut a = vec![db.as_str(), "--timeout=10"];
        a.extend_from_slice(args);
        self.exec("ovs-vsctl", &a)
    }

    /// The last `lines` lines of ovs-vswitchd's log (for failure messages: it says when Open
    /// vSwitch enabled or disabled each member, and why).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("vswitchd.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Frames the kernel dropped at ovs-vswitchd's packet sockets (its user-space datapath's
    /// ports) because they were full: what a stalled ovs-vswitchd loses, as `ss` counts it.
    pub fn receive_drops(&self) -> anyhow::Result<u64> {
        let out = self.exec("ss", &["-H", "-f", "link", "-m", "-p"])?;
        let drops = out
            .lines()
            .filter(|l| l.contains("\"ovs-vswitchd\""))
            .filter_map(|l| l.split("skmem:(").nth(1)?.split(')').next()?.split(',').find_map(|f| f.strip_prefix('d')?.parse::<u64>().ok()))
            .sum();
        Ok(drops)
    }

    pub fn appctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let target = format!("--target={}", s(&self.dir.join("vswitchd.ctl")));
        let mut a = vec![target.as_str()];
        a.extend_from_slice(args);
        self.exec("ovs-appctl", &a)
    }
}

impl Drop for Ovs {
    /// So nothing runs on when the namespace goes.
    fn drop(&mut self) {
        for pidfile in ["vswitchd.pid", "ovsdb.pid"] {
            stop_pidfile(&self.dir.join(pidfile));
        }
    }
}

/// SIGTERM to the process a pid file names, and SIGKILL after 5 s; waits until it is gone.
fn stop_pidfile(pidfile: &Path) {
    let Some(pid) = std::fs::read_to_string(pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) else {
        return;
    };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn run(program: &str, args: &[&str], dir: &Path) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).current_dir(dir).output()?;
    anyhow::ensure!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}
