//! How host-wide paths name a network namespace.
//!
//! A namespace other than the main one (PID 1's) is named by its cookie (`SO_NETNS_COOKIE`):
//! unique for the life of the system. Its inode, which the previous version used, is handed
//! out again once the namespace is gone, so a new namespace could find a dead one's state.
//! The main namespace keeps its paths without a namespace part (it lives as long as the system).

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
