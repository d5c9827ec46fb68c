//! How host-wide paths name a network namespace, and what another namespace left behind: whether
//! it is dead (its pins, state files and control directory can go) and whether a bond found
//! under the previous version's naming is this namespace's own.
//!
//! A namespace other than the main one (PID 1's) is named by its cookie (`SO_NETNS_COOKIE`):
//! unique for the life of the system. Its inode, which the previous version used, is handed
//! out again once the namespace is gone, so a new namespace could find a dead one's state.
//! The main namespace keeps its paths without a namespace part (it lives as long as the system).

use std::collections::HashSet;

/// The namespace part of pin and state directories (`netns-cookie:<cookie>`). `:` is not
/// allowed in interface names, so the part never meets a bond's name.
pub const COOKIE_PART: &str = "netns-cookie:";
/// The previous version's part (`netns:<inode>`).
pub const LEGACY_PART: &str = "netns:";
/// Control socket directories: `ctl-cookie-<cookie>`, and `ctl-<inode>` (the main namespace's,
/// and other namespaces' under the previous version).
pub const CONTROL_COOKIE: &str = "ctl-cookie-";
pub const CONTROL_INODE: &str = "ctl-";

/// A network namespace as host-wide paths name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetnsId {
    pub inode: u64,
    /// None where the kernel has no namespace cookies (before 5.14, which has no TCX links
    /// either, so no bond runs there): paths then stay keyed by inode, as before.
    pub cookie: Option<u64>,
    /// PID 1's namespace.
    pub main: bool,
}

impl NetnsId {
    /// This namespace's part of pin and state paths: none in the main namespace.
    pub fn part(&self) -> Option<String> {
        match (self.main, self.cookie) {
            (true, _) => None,
            (false, Some(c)) => Some(format!("{COOKIE_PART}{c}")),
            (false, None) => Some(format!("{LEGACY_PART}{}", self.inode)),
        }
    }

    /// The directory of this namespace's control sockets (under the run directory).
    pub fn control_dir(&self) -> String {
        match (self.main, self.cookie) {
            (false, Some(c)) => format!("{CONTROL_COOKIE}{c}"),
            _ => format!("{CONTROL_INODE}{}", self.inode),
        }
    }

    /// The part the previous version gave this namespace, where it differs from today's.
    pub fn legacy_part(&self) -> Option<String> {
        (!self.main && self.cookie.is_some()).then(|| format!("{LEGACY_PART}{}", self.inode))
    }

    /// The control directory the previous version gave this namespace, where it differs.
    pub fn legacy_control_dir(&self) -> Option<String> {
        (!self.main && self.cookie.is_some()).then(|| format!("{CONTROL_INODE}{}", self.inode))
    }
}

/// What names a namespace's entries: its cookie, or (the previous version's) its inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NsKey {
    Cookie(u64),
    Inode(u64),
}

impl std::fmt::Display for NsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NsKey::Cookie(c) => write!(f, "cookie {c}"),
            NsKey::Inode(i) => write!(f, "inode {i}"),
        }
    }
}

/// The namespace of a pin or state directory name (`netns-cookie:N`, `netns:N`); None for
/// anything else (the main namespace's bonds).
pub fn parse_part(name: &str) -> Option<NsKey> {
    if let Some(n) = name.strip_prefix(COOKIE_PART) {
        return n.parse().ok().map(NsKey::Cookie);
    }
    name.strip_prefix(LEGACY_PART)?.parse().ok().map(NsKey::Inode)
}

/// The namespace of a control directory name (`ctl-cookie-N`, `ctl-N`).
pub fn parse_control_dir(name: &str) -> Option<NsKey> {
    if let Some(n) = name.strip_prefix(CONTROL_COOKIE) {
        return n.parse().ok().map(NsKey::Cookie);
    }
    name.strip_prefix(CONTROL_INODE)?.parse().ok().map(NsKey::Inode)
}

/// A bond's pinned transmit link (`link_egress_<bond>`), as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// No link pinned (a bond being set up, or one that stopped half-way).
    Missing,
    /// Its device is gone (the kernel reports ifindex 0): so is the namespace it ran in, or
    /// at least the bond.
    Detached,
    /// Attached to the device of this ifindex, in a namespace that is alive.
    Attached(u32),
    /// Could not be read.
    Unreadable,
}

impl Egress {
    pub fn from_ifindex(ifindex: u32) -> Egress {
        if ifindex == 0 { Egress::Detached } else { Egress::Attached(ifindex) }
    }
}

/// Everything found of one other namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub key: NsKey,
    /// One per bond pin directory.
    pub egress: Vec<Egress>,
    /// A control socket of it accepts connections: a daemon runs there.
    pub daemon_answers: bool,
}

/// The namespaces alive now, as far as they can be listed (processes' namespaces, the named
/// ones, bind mounts): a namespace held only by an open descriptor is not seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveNamespaces {
    /// Their cookies, None where the kernel cannot tell a namespace file's cookie (NS_GET_ID).
    pub cookies: Option<HashSet<u64>>,
    pub inodes: HashSet<u64>,
}

/// Whether what a namespace left can be removed: it must not be alive. A running bond keeps
/// its transmit link attached, and a running daemon answers, so either keeps the entry. Past
/// that, an id no live namespace has is dead; a live cookie is that very namespace (cookies
/// are never reused), so it is kept. An inode may be a later namespace's, and a cookie cannot
/// always be checked: then the links decide, every one detached, at least one of them (with no
/// pins to see, the namespace may be alive with its pins elsewhere, a bond being set up: its
/// state file, which holds its members' own addresses, is kept). A pin directory without its
/// link may be a bond being set up: kept unless the id is known dead.
pub fn is_dead(l: &Leftover, live: &LiveNamespaces) -> bool {
    if l.daemon_answers || l.egress.iter().any(|e| matches!(e, Egress::Attached(_) | Egress::Unreadable)) {
        return false;
    }
    let listed = match l.key {
        NsKey::Cookie(c) => live.cookies.as_ref().map(|s| s.contains(&c)),
        NsKey::Inode(i) => Some(live.inodes.contains(&i)),
    };
    match (l.key, listed) {
        (_, Some(false)) => true,
        (NsKey::Cookie(_), Some(true)) => false,
        _ => !l.egress.is_empty() && l.egress.iter().all(|e| *e == Egress::Detached),
    }
}

/// Whether a bond found under this namespace's previous-version part (its inode) is this
/// namespace's own: its transmit link still attached (only a live namespace's can be, and
/// among live namespaces the inode is unique) to this namespace's device of the bond's name,
/// which the state file, when it can be read, names too. Anything else belongs to a dead
/// namespace that had the same inode.
pub fn legacy_is_ours(egress: Egress, device_ifindex: Option<u32>, state_ifindex: Option<u32>) -> bool {
    match egress {
        Egress::Attached(i) => device_ifindex == Some(i) && state_ifindex.is_none_or(|s| s == i),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(cookies: Option<&[u64]>, inodes: &[u64]) -> LiveNamespaces {
        LiveNamespaces { cookies: cookies.map(|c| c.iter().copied().collect()), inodes: inodes.iter().copied().collect() }
    }

    fn leftover(key: NsKey, egress: &[Egress]) -> Leftover {
        Leftover { key, egress: egress.to_vec(), daemon_answers: false }
    }

    #[test]
    fn paths_name_other_namespaces_by_cookie_and_the_main_one_as_before() {
        let other = NetnsId { inode: 4026532300, cookie: Some(17), main: false };
        assert_eq!(other.part().as_deref(), Some("netns-cookie:17"));
        assert_eq!(other.control_dir(), "ctl-cookie-17");
        assert_eq!(other.legacy_part().as_deref(), Some("netns:4026532300"));
        assert_eq!(other.legacy_control_dir().as_deref(), Some("ctl-4026532300"));
        let main = NetnsId { inode: 4026531840, cookie: Some(1), main: true };
        assert_eq!(main.part(), None);
        assert_eq!(main.control_dir(), "ctl-4026531840");
        assert_eq!((main.legacy_part(), main.legacy_control_dir()), (None, None));
        // No cookies: the inode, as before, and nothing else to look for.
        let old = NetnsId { inode: 4026532300, cookie: None, main: false };
        assert_eq!(old.part().as_deref(), Some("netns:4026532300"));
        assert_eq!(old.control_dir(), "ctl-4026532300");
        assert_eq!(old.legacy_part(), None);
    }

    #[test]
    fn names_parse_back_to_their_namespace() {
        assert_eq!(parse_part("netns-cookie:17"), Some(NsKey::Cookie(17)));
        assert_eq!(parse_part("netns:4026532300"), Some(NsKey::Inode(4026532300)));
        assert_eq!(parse_control_dir("ctl-cookie-17"), Some(NsKey::Cookie(17)));
        assert_eq!(parse_control_dir("ctl-4026532300"), Some(NsKey::Inode(4026532300)));
        for name in ["bond0", "netns:", "netns:x", "netns-cookie:", "netns-cookie:-1", "ctl-", "ctl-cookie-x", "bond0.json"] {
            assert_eq!((parse_part(name), parse_control_dir(name)), (None, None), "{name}");
        }
    }

    #[test]
    fn an_attached_link_or_an_answering_daemon_keeps_everything() {
        let nobody = live(Some(&[]), &[]);
        for key in [NsKey::Cookie(5), NsKey::Inode(9)] {
            assert!(!is_dead(&leftover(key, &[Egress::Detached, Egress::Attached(3)]), &nobody), "{key:?}");
            assert!(!is_dead(&leftover(key, &[Egress::Unreadable]), &nobody), "{key:?}");
            let answering = Leftover { daemon_answers: true, ..leftover(key, &[]) };
            assert!(!is_dead(&answering, &nobody), "{key:?}");
        }
    }

    #[test]
    fn a_cookie_no_live_namespace_has_is_dead() {
        let others = live(Some(&[1, 2]), &[]);
        assert!(is_dead(&leftover(NsKey::Cookie(5), &[Egress::Detached]), &others));
        assert!(is_dead(&leftover(NsKey::Cookie(5), &[]), &others), "state files or a control directory alone");
        assert!(is_dead(&leftover(NsKey::Cookie(5), &[Egress::Missing]), &others), "a bond that stopped half-way");
    }

    #[test]
    fn a_live_cookie_is_kept_whatever_its_links() {
        let alive = live(Some(&[5]), &[]);
        for egress in [&[][..], &[Egress::Detached], &[Egress::Missing]] {
            assert!(!is_dead(&leftover(NsKey::Cookie(5), egress), &alive), "{egress:?}");
        }
    }

    #[test]
    fn without_cookies_of_live_namespaces_the_links_decide() {
        let unknown = live(None, &[]);
        assert!(is_dead(&leftover(NsKey::Cookie(5), &[Egress::Detached, Egress::Detached]), &unknown));
        assert!(!is_dead(&leftover(NsKey::Cookie(5), &[]), &unknown), "no pins to judge by: kept");
        assert!(!is_dead(&leftover(NsKey::Cookie(5), &[Egress::Detached, Egress::Missing]), &unknown), "may be starting");
    }

    #[test]
    fn an_inode_is_dead_when_no_live_namespace_has_it_or_its_links_are_detached() {
        assert!(is_dead(&leftover(NsKey::Inode(9), &[Egress::Missing]), &live(Some(&[]), &[1])));
        // A live namespace with this inode may be a later one (the inode reused): the links decide.
        let reused = live(Some(&[]), &[9]);
        assert!(is_dead(&leftover(NsKey::Inode(9), &[Egress::Detached]), &reused));
        assert!(!is_dead(&leftover(NsKey::Inode(9), &[]), &reused), "no pins to judge by: kept");
        assert!(!is_dead(&leftover(NsKey::Inode(9), &[Egress::Missing]), &reused));
    }

    #[test]
    fn a_legacy_bond_is_ours_only_with_its_link_attached_to_our_device() {
        assert!(legacy_is_ours(Egress::Attached(7), Some(7), Some(7)));
        assert!(legacy_is_ours(Egress::Attached(7), Some(7), None), "a state file that cannot be read is checked later");
        assert!(!legacy_is_ours(Egress::Attached(7), Some(7), Some(8)), "the state names another device");
        assert!(!legacy_is_ours(Egress::Attached(7), Some(8), Some(7)), "our device of that name is another");
        assert!(!legacy_is_ours(Egress::Attached(7), None, Some(7)), "no such device here");
        for e in [Egress::Detached, Egress::Missing, Egress::Unreadable] {
            assert!(!legacy_is_ours(e, Some(7), Some(7)), "{e:?}");
        }
    }
}
