//! The multicast groups the bond device has joined, as the kernel lists them in
//! `/proc/net/igmp`, `/proc/net/mcfilter`, `/proc/net/igmp6` and `/proc/net/mcfilter6`, and the
//! membership reports that announce them again (`resend_igmp`): after a failover, a snooping
//! switch learns at once that the groups are behind the new active member's port, instead of
//! at its next query (minutes on many switches). bonding asks the kernel to rejoin
//! (`NETDEV_RESEND_IGMP`); no interface offers that to user space, so the reports are built
//! here from what the kernel lists, as the kernel builds them (the reading is in the executor).
//! Pure: text in, groups and frames out.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::frames;

/// A group and its source filter: `include` with `sources` (a source-specific join), or
/// exclude (an any-source join, usually with no sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<A> {
    pub addr: A,
    pub include: bool,
    pub sources: Vec<A>,
}

/// What the bond device has joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    /// The IGMP version in use on the device (3 unless a v1/v2 querier was heard).
    pub igmp_version: u8,
    pub v4: Vec<Group<Ipv4Addr>>,
    /// MLDv1 only when forced (`force_mld_version` 1); else 2.
    pub mld_version: u8,
    pub v6: Vec<Group<Ipv6Addr>>,
    /// The device's link-local address, the source MLD reports must have.
    pub link_local: Option<Ipv6Addr>,
}

/// The texts the kernel lists a device's groups in: `/proc/net/igmp`, `mcfilter`, `igmp6`,
/// `mcfilter6` and `if_inet6`, and the device's `force_mld_version`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcTexts<'a> {
    pub igmp: &'a str,
    pub mcfilter: &'a str,
    pub igmp6: &'a str,
    pub mcfilter6: &'a str,
    pub if_inet6: &'a str,
    pub force_mld_version: &'a str,
}

impl Memberships {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Reads the kernel's lists (`texts`) for device `dev` (`ifindex`).
    pub fn parse(dev: &str, ifindex: u32, texts: &ProcTexts) -> Self {
        let ProcTexts { igmp, mcfilter, igmp6, mcfilter6, if_inet6, force_mld_version: mld } = *texts;
        let (igmp_version, groups) = igmp_groups(igmp, dev);
        let filters4 = filters(mcfilter, dev, |t| u32::from_str_radix(t.trim_start_matches("0x"), 16).ok().map(Ipv4Addr::from));
        let filters6 = filters(mcfilter6, dev, |t| u128::from_str_radix(t, 16).ok().map(Ipv6Addr::from));
        let v4 = groups.into_iter().filter(|g| *g != Ipv4Addr::new(224, 0, 0, 1)).map(|g| group(g, &filters4)).collect();
        let v6 = igmp6_groups(igmp6, ifindex).into_iter().map(|g| group(g, &filters6)).collect();
        let link_local = if_inet6.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // address ifindex prefix scope flags name; scope 0x20 is link.
            (f.len() == 6 && f[5] == dev && f[3] == "20").then(|| u128::from_str_radix(f[0], 16).ok().map(Ipv6Addr::from)).flatten()
        });
        let mld_version = if mld.trim() == "1" { 1 } else { 2 };
        Memberships { igmp_version, v4, mld_version, v6, link_local }
    }

    /// The reports announcing every group from `mac` (IPv4 from `src`, 0.0.0.0 when the bond
    /// has no IPv4 address), in the versions the device speaks.
    pub fn reports(&self, mac: [u8; 6], src: Ipv4Addr) -> Vec<(Vec<u8>, u16)> {
        let mut out = Vec::new();
        match self.igmp_version {
            3 => {
                for chunk in self.v4.chunks(RECORDS_PER_REPORT) {
                    out.push((frames::igmpv3_report(mac, src, chunk), 0x0800));
                }
            }
            v => out.extend(self.v4.iter().map(|g| (frames::igmp_report(mac, src, g.addr, v), 0x0800))),
        }
        // Without a link-local address (it is still tentative) MLD reports go from ::.
        let src6 = self.link_local.unwrap_or(Ipv6Addr::UNSPECIFIED);
        match self.mld_version {
            1 => out.extend(self.v6.iter().map(|g| (frames::mldv1_report(mac, &src6, &g.addr), 0x86dd))),
            _ => {
                for chunk in self.v6.chunks(RECORDS_PER_REPORT / 4) {
                    out.push((frames::mldv2_report(mac, &src6, chunk), 0x86dd));
                }
            }
        }
        out
    }
}

/// Group records per report, so that one fits a 1500-byte frame (8 bytes per IPv4 group
/// without sources, 20 per IPv6 one).
const RECORDS_PER_REPORT: usize = 64;

/// `/proc/net/igmp`: a device line (`2\teth0      :     3      V3`) then its groups
/// (`\t\t\t\t010101EF     1 0:00000000\t\t0`, the address as the raw little-endian word).
fn igmp_groups(text: &str, dev: &str) -> (u8, Vec<Ipv4Addr>) {
    let (mut version, mut groups, mut ours) = (3, Vec::new(), false);
    for line in text.lines().skip(1) {
        if !line.starts_with('\t') {
            let (name, rest) = line.split_once(':').unwrap_or(("", ""));
            ours = name.split_whitespace().nth(1) == Some(dev);
            if ours {
                version = rest.split_whitespace().nth(1).and_then(|v| v.strip_prefix('V')).and_then(|v| v.parse().ok()).unwrap_or(3);
            }
        } else if ours && let Some(word) = line.split_whitespace().next().and_then(|w| u32::from_str_radix(w, 16).ok()) {
            groups.push(Ipv4Addr::from(word.to_le_bytes()));
        }
    }
    (version, groups)
}

/// `/proc/net/igmp6`: `ifindex name group users flags timer`; flag 8 (MAF_NOREPORT) marks
/// groups the kernel never reports (all-nodes, interface-local).
fn igmp6_groups(text: &str, ifindex: u32) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(4)?, 16).ok()?;
            (f.first()?.parse::<u32>().ok()? == ifindex && flags & 8 == 0)
                .then(|| u128::from_str_radix(f[2], 16).ok().map(Ipv6Addr::from))?
        })
        .collect()
}

/// `/proc/net/mcfilter(6)`: `index device group source include exclude`, a line per source of
/// a group with a source filter.
fn filters<A>(text: &str, dev: &str, addr: impl Fn(&str) -> Option<A>) -> Vec<(A, A, bool)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 6 || f[1] != dev {
                return None;
            }
            let exclude = f[5].parse::<u32>().ok()? > 0;
            Some((addr(f[2])?, addr(f[3])?, !exclude))
        })
        .collect()
}

/// A group with its filter: sources included and none excluded is a source-specific join.
fn group<A: Copy + PartialEq>(addr: A, filters: &[(A, A, bool)]) -> Group<A> {
    let mine: Vec<&(A, A, bool)> = filters.iter().filter(|f| f.0 == addr).collect();
    let include = !mine.is_empty() && mine.iter().all(|f| f.2);
    let sources = mine.iter().filter(|f| f.2 == include).map(|f| f.1).collect();
    Group { addr, include, sources }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IGMP: &str = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n\
2\tbond0     :     3      V3\n\t\t\t\t010101E8     1 0:00000000\t\t0\n\t\t\t\t010101EF     1 0:00000000\t\t0\n\t\t\t\t010000E0     1 0:00000000\t\t0\n";
    const MCFILTER: &str = "Idx Device        MCA        SRC    INC    EXC\n  2  bond0 0xe8010101 0xc6336401      1      0\n";
    const IGMP6: &str = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n\
2    bond0           ff3e0000000000000000000000010002     1 00000004 0\n\
2    bond0           ff0e0000000000000000000000010001     1 00000004 0\n\
2    bond0           ff020000000000000000000000000001     1 0000000C 0\n";
    const MCFILTER6: &str = "Idx Device                Multicast Address                   Source Address    INC    EXC\n\
  2  bond0 ff3e0000000000000000000000010002 fd000000000000000000000000000099      1      0\n";
    const IF_INET6: &str = "fe800000000000000000000000000001 02 40 20 80    bond0\nfd000000000000000000000000000061 02 40 00 80    bond0\n";
    const ALL: ProcTexts =
        ProcTexts { igmp: IGMP, mcfilter: MCFILTER, igmp6: IGMP6, mcfilter6: MCFILTER6, if_inet6: IF_INET6, force_mld_version: "0\n" };

    fn parsed() -> Memberships {
        Memberships::parse("bond0", 2, &ALL)
    }

    #[test]
    fn the_kernels_lists_are_read_as_written() {
        let m = parsed();
        assert_eq!(m.igmp_version, 3);
        let ssm = Group { addr: Ipv4Addr::new(232, 1, 1, 1), include: true, sources: vec![Ipv4Addr::new(198, 51, 100, 1)] };
        let asm = Group { addr: Ipv4Addr::new(239, 1, 1, 1), include: false, sources: vec![] };
        assert_eq!(m.v4, [ssm, asm], "all-hosts is never reported");
        let v6: Vec<(String, bool, usize)> = m.v6.iter().map(|g| (g.addr.to_string(), g.include, g.sources.len())).collect();
        assert_eq!(v6, [("ff3e::1:2".to_string(), true, 1), ("ff0e::1:1".to_string(), false, 0)], "all-nodes is MAF_NOREPORT");
        assert_eq!(m.link_local, Some("fe80::1".parse().unwrap()));
        assert_eq!(m.mld_version, 2);
        let v2 = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n2\tbond0     :     1      V2\n\t\t\t\t010101EF     1 0:00000000\t\t0\n";
        assert_eq!(Memberships::parse("bond0", 2, &ProcTexts { igmp: v2, ..Default::default() }).igmp_version, 2);
        assert!(Memberships::parse("bond1", 3, &ALL).is_empty(), "another device's");
    }

    #[test]
    fn reports_in_the_versions_the_device_speaks() {
        let mac = [2, 0, 0, 0, 0, 0xb0];
        let r = parsed().reports(mac, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(r.len(), 2, "one IGMPv3 and one MLDv2 report: {r:?}");
        let mut m = parsed();
        (m.igmp_version, m.mld_version) = (2, 1);
        let r = m.reports(mac, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r.len(), 4, "a v2 report per IPv4 group, an MLDv1 report per IPv6 group");
    }
}
