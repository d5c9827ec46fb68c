//! Other users of the host: a user without privileges can neither reach a bond's daemon nor take
//! its control socket, bad names touch no file, and root's own floods of the socket do not stop
//! failover. Attacks run as `nobody` with `setpriv`, inside the bond's namespace (Debian's
//! `/usr/bin/python3` makes the raw socket calls: root's own Python may be out of nobody's reach).

use std::{
    os::unix::fs::MetadataExt,
    process::{Command, Stdio},
    time::Duration,
};

use bond_tests::{
    Daemon, Lab, LabOptions,
    lab::{bondctl, control_dir},
    net::{Stream, losses, ping},
    wait_until,
};

fn lab() -> Lab {
    Lab::start(LabOptions::default().policy("active-backup")).unwrap_or_else(|e| panic!("starting the lab: {e:#}"))
}

/// `ip netns exec NS setpriv (as nobody) ARGS`.
fn as_nobody(netns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]).args(args);
    c
}

use bond_tests::cmd::Reaped;

#[test]
fn names_that_are_not_interface_names_are_refused_before_they_touch_anything() {
    let lab = lab();
    let pins = bond_tests::lab::pin_dir(lab.a.ns.name(), &lab.a.bond).unwrap();
    for name in ["", ".", "..", "a/b", "../bond", "way-too-long-for-an-interface"] {
        let out = Command::new(bondctl()).args(["--netns", lab.a.ns.name(), "down", name]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("not a valid interface name"), "down {name:?}: {err}");
    }
    assert!(std::path::Path::new(&pins).exists(), "the running bond's pins are untouched");
    assert_eq!(lab.a.daemon().status().unwrap()["name"], lab.a.bond.as_str(), "and its daemon answers");
}

#[test]
fn a_user_without_privileges_cannot_reach_or_take_the_control_socket() {
    let mut lab = lab();
    let (netns, bond) = (lab.a.ns.name().to_string(), lab.a.bond.clone());
    let dir = control_dir(&netns).unwrap();
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o700), "{} is root's alone", dir.display());
    let socket = dir.join(format!("{bond}.sock"));
    assert!(socket.exists(), "{}", socket.display());

    // Connecting as nobody fails at the directory.
    let connect = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\nexcept OSError as e: print('refused', e.errno)";
    let out = as_nobody(&netns, &["/usr/bin/python3", "-c", connect, &socket.to_string_lossy()]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused 13", "EACCES: {}", String::from_utf8_lossy(&out.stderr));

    // Squatting: with the daemon stopped, nobody binds the old abstract name and tries the path.
    let path = lab.config_path(&lab.a);
    let logs = lab.dir().to_path_buf();
    lab.a.daemon.as_mut().unwrap().stop().unwrap();
    let squat = format!(
        "import socket,sys,time\na=socket.socket(socket.AF_UNIX)\na.bind('\\0bondctl/{bond}')\na.listen()\n\
         p=socket.socket(socket.AF_UNIX)\ntry:\n p.bind(sys.argv[1]); print('bound', flush=True)\nexcept OSError as e: print('refused', e.errno, flush=True)\n\
         time.sleep(60)"
    );
    let mut squatter =
        Reaped(as_nobody(&netns, &["/usr/bin/python3", "-c", &squat, &socket.to_string_lossy()]).stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(squatter.0.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("refused"), "nobody could not bind in the directory: {line}");
    lab.a.daemon = Some(Daemon::start_with(&lab.a.ns, &path, &bond, &logs, &[]).expect("the daemon starts despite the squatter"));
    assert_eq!(lab.a.daemon().status().unwrap()["name"], bond.as_str(), "and answers root");
    drop(squatter);
}

#[test]
fn floods_of_the_control_socket_do_not_delay_failover() {
    let lab = lab();
    ping(&lab, 2).unwrap();
    let socket = control_dir(lab.a.ns.name()).unwrap().join(format!("{}.sock", lab.a.bond));
    // More idle connections than the daemon serves at once, and one oversized request.
    let idle: Vec<std::os::unix::net::UnixStream> = (0..40).filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok()).collect();
    assert_eq!(idle.len(), 40);
    let mut big = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let _ = std::io::Write::write_all(&mut big, &vec![b'x'; 1 << 20]);

    let active = lab.a.daemon().status().map(|s| s["active"].as_str().unwrap_or("eth0").to_string()).unwrap_or_else(|_| "eth0".into());
    let stream = Stream::start(&lab, Duration::from_micros(500), 8_000).unwrap();
    wait_until(Duration::from_secs(5), "traffic flows", || stream.received() > 400);
    lab.cut(active.trim_start_matches("eth").parse().unwrap()).unwrap();
    let from = stream.received();
    wait_until(Duration::from_secs(5), "traffic flows after the failover", || stream.received() > from + 400);
    let (sent, got) = stream.finish().unwrap();
    let (_, longest) = losses(sent, &got);
    // One datagram every 0.5 ms: a carrier failover loses a few at most (50 ms bounds it).
    assert!(longest <= 100, "{longest} datagrams lost in a row during the flood");
    drop(idle);
    drop(big);
    // Once the flood's connections are gone or timed out, root is answered again.
    wait_until(Duration::from_secs(10), "the daemon answers root after the flood", || lab.a.daemon().status().is_ok());
}
