//! Network devices through rtnetlink: the bond device, member preparation, link events.

use std::net::IpAddr;

use anyhow::{Context, anyhow, bail};
use futures::{StreamExt, TryStreamExt, channel::mpsc::UnboundedReceiver};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage},
};
use rtnetlink::{
    Handle, LinkDummy, LinkUnspec, LinkVeth, MulticastGroup,
    packet_core::{NetlinkMessage, NetlinkPayload},
};

/// What we need to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub perm_mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// The lower layer reports carrier (IFF_LOWER_UP).
    pub carrier: bool,
    /// Receives every multicast group, as asked with `ip link set DEV allmulticast on`
    /// (IFF_ALLMULTI as the kernel reports it: set by a user, not by a master).
    pub allmulti: bool,
    /// Promiscuous as asked with `ip link set DEV promisc on` (IFF_PROMISC as reported).
    pub promisc: bool,
    /// How many ask it to be promiscuous (a bridge taking it as a port counts too).
    pub promiscuity: u32,
    /// rtnetlink kind ("ifb", "veth", ...), None for physical devices.
    pub kind: Option<String>,
    /// `ip link set DEV alias TEXT` (IFLA_IFALIAS): marks the bond devices this program made.
    pub alias: Option<String>,
    /// The device it is linked to (IFLA_LINK): a veth's peer.
    pub peer: Option<u32>,
    /// The operational state (IFLA_OPERSTATE): Some(true) UP, Some(false) DORMANT (the two
    /// the bond device is set to), None anything else or not reported.
    pub running: Option<bool>,
}

impl Link {
    /// An Ethernet device that is up with carrier, MTU 1500 (for tests).
    #[cfg(test)]
    pub fn up(index: u32, name: &str, mac: [u8; 6]) -> Link {
        Link {
            index,
            name: name.into(),
            mac,
            perm_mac: None,
            mtu: 1500,
            admin_up: true,
            carrier: true,
            allmulti: false,
            promisc: false,
            promiscuity: 0,
            kind: None,
            alias: None,
            peer: None,
            running: None,
        }
    }

    fn from_message(msg: &LinkMessage) -> Link {
        let mut l = Link {
            index: msg.header.index,
            name: String::new(),
            mac: [0; 6],
            perm_mac: None,
            mtu: 0,
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            allmulti: msg.header.flags.contains(LinkFlags::Allmulti),
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
            promiscuity: 0,
            kind: None,
            alias: None,
            peer: None,
            running: None,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(m) if m.len() == 6 => l.mac.copy_from_slice(m),
                LinkAttribute::PermAddress(m) if m.len() == 6 => l.perm_mac = Some([m[0], m[1], m[2], m[3], m[4], m[5]]),
                LinkAttribute::Mtu(m) => l.mtu = *m,
                LinkAttribute::Promiscuity(p) => l.promiscuity = *p,
                LinkAttribute::IfAlias(a) => l.alias = Some(a.clone()),
                LinkAttribute::Link(i) => l.peer = Some(*i),
                LinkAttribute::OperState(s) => {
                    l.running = match s {
                        netlink_packet_route::link::State::Up => Some(true),
                        netlink_packet_route::link::State::Dormant => Some(false),
                        _ => None,
                    }
                }
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let NlLinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }

    /// Usable for traffic as far as the device itself says: up with carrier.
    pub fn usable(&self) -> bool {
        self.admin_up && self.carrier
    }
}

/// Device `index` as it is now: one `RTM_GETLINK` on a netlink socket of its own,
/// synchronous (the daemon checks a link event that says a member went down against it: link
/// events queued while the daemon was busy can be older than the device's state).
pub fn link_now(index: u32) -> std::io::Result<Link> {
    use rtnetlink::{
        packet_core::{NLM_F_REQUEST, NetlinkHeader},
        sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
    };
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut m = LinkMessage::default();
    m.header.index = index;
    let mut msg = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(m)));
    msg.header.flags = NLM_F_REQUEST;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let (datagram, _) = socket.recv_from_full()?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    match reply.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => Ok(Link::from_message(&l)),
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "no link in the answer")),
    }
}

/// A change reported by the kernel.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    Changed(Link),
    Removed { index: u32, name: String },
}

/// An rtnetlink connection for requests.
#[derive(Clone)]
pub struct Netdev {
    handle: Handle,
}

impl Netdev {
    /// Opens a connection; its I/O runs as a task on the current tokio runtime.
    pub fn connect() -> anyhow::Result<Netdev> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening an rtnetlink socket")?;
        tokio::spawn(conn);
        Ok(Netdev { handle })
    }

    pub async fn link(&self, name: &str) -> anyhow::Result<Option<Link>> {
        let mut s = self.handle.link().get().match_name(name.to_string()).execute();
        match s.try_next().await {
            Ok(m) => Ok(m.map(|m| Link::from_message(&m))),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(anyhow!(e).context(format!("looking up interface {name}"))),
        }
    }

    pub async fn require_link(&self, name: &str) -> anyhow::Result<Link> {
        self.link(name).await?.ok_or_else(|| anyhow!("interface {name} does not exist"))
    }

    pub async fn links(&self) -> anyhow::Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await.context("listing interfaces")?;
        Ok(msgs.iter().map(Link::from_message).collect())
    }

    /// Creates the bond device (see ARCHITECTURE.md, "The bond device"): a `dummy` where the
    /// kernel has one, else a `veth` whose peer is kept up as an inert sink. Both take a new MAC
    /// address while up (`ip link set BOND address ...`), have carrier of their own, and drop
    /// what the bond's program does not redirect (a dummy frees it; the veth peer has no
    /// address, no ARP and no IPv6 to answer with). ARP and multicast on (a dummy has them
    /// off). The alias marks it as this program's, so no other device of the name is taken.
    pub async fn create_bond_device(&self, name: &str, mac: [u8; 6], mtu: u32) -> anyhow::Result<Link> {
        // The bench compares kinds in one run (`cargo xtask bench rate`): not for users.
        match std::env::var("BONDCTL_BOND_DEVICE_KIND").as_deref() {
            Ok("veth") => return self.mark_bond_device(name, self.create_veth_bond(name, mac, mtu).await).await,
            Ok("ifb") => {
                let ifb = rtnetlink::LinkIfb::new(name).address(mac.to_vec()).mtu(mtu).arp(true).multicast(true).build();
                self.handle.link().add(ifb).execute().await.with_context(|| format!("creating bond device {name} (ifb)"))?;
                return self.require_link(name).await;
            }
            _ => {}
        }
        let dummy = LinkDummy::new(name).address(mac.to_vec()).mtu(mtu).arp(true).multicast(true).build();
        let created = match self.handle.link().add(dummy).execute().await {
            Ok(()) => Ok(()),
            // No dummy driver in this kernel (EOPNOTSUPP: "Unknown device type").
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EOPNOTSUPP => self.create_veth_bond(name, mac, mtu).await,
            Err(e) => Err(anyhow!(e).context(format!("creating bond device {name} (dummy)"))),
        };
        self.mark_bond_device(name, created).await
    }

    /// Marks the bond device `name`, just `created`, as this program's (its alias).
    async fn mark_bond_device(&self, name: &str, created: anyhow::Result<()>) -> anyhow::Result<Link> {
        created?;
        let l = self.require_link(name).await?;
        self.set(LinkUnspec::new_with_index(l.index).alias(BOND_ALIAS).build(), || format!("marking {name} as a bond device")).await?;
        self.require_link(name).await
    }

    /// A veth pair: `name` and its peer ([`veth_peer_name`]), which is set up (the bond's
    /// carrier needs it) with no ARP, no multicast and no IPv6, so it never speaks.
    async fn create_veth_bond(&self, name: &str, mac: [u8; 6], mtu: u32) -> anyhow::Result<()> {
        let peer = veth_peer_name(name);
        let req = LinkVeth::new(name, &peer).address(mac.to_vec()).mtu(mtu).arp(true).multicast(true).build();
        self.handle.link().add(req).execute().await.with_context(|| format!("creating bond device {name} (veth, peer {peer})"))?;
        let p = self.require_link(&peer).await?;
        // Before it is up, so it never sends a router solicitation or a DAD probe.
        let sysctl = format!("/proc/sys/net/ipv6/conf/{peer}/disable_ipv6");
        if std::path::Path::new(&sysctl).exists() {
            std::fs::write(&sysctl, "1").with_context(|| format!("turning IPv6 off on {peer}"))?;
        }
        let quiet = LinkUnspec::new_with_index(p.index).arp(false).multicast(false).mtu(mtu).alias(PEER_ALIAS).up().build();
        self.set(quiet, || format!("setting up {peer}, the peer of bond device {name}")).await
    }

    pub async fn delete(&self, index: u32) -> anyhow::Result<()> {
        self.handle.link().del(index).execute().await.with_context(|| format!("deleting interface #{index}"))
    }

    async fn set(&self, msg: LinkMessage, what: impl FnOnce() -> String) -> anyhow::Result<()> {
        self.handle.link().set(msg).execute().await.with_context(what)
    }

    pub async fn set_up(&self, l: &Link, up: bool) -> anyhow::Result<()> {
        let b = LinkUnspec::new_with_index(l.index);
        let msg = if up { b.up() } else { b.down() }.build();
        self.set(msg, || format!("setting {} {}", l.name, if up { "up" } else { "down" })).await
    }

    /// Makes the device promiscuous (IFF_PROMISC), or not.
    pub async fn set_promisc(&self, l: &Link, on: bool) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(l.index).promiscuous(on).build();
        self.set(msg, || format!("setting promisc {} on {}", if on { "on" } else { "off" }, l.name)).await
    }

    /// Makes the device receive every multicast group (IFF_ALLMULTI), or not.
    pub async fn set_allmulti(&self, l: &Link, on: bool) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(l.index).allmulticast(on).build();
        self.set(msg, || format!("setting allmulticast {} on {}", if on { "on" } else { "off" }, l.name)).await
    }

    /// Sets the MAC address, taking the device down for the change if it refuses while up.
    pub async fn set_mac(&self, l: &Link, mac: [u8; 6]) -> anyhow::Result<()> {
        if l.mac == mac {
            return Ok(());
        }
        let msg = || LinkUnspec::new_with_index(l.index).address(mac.to_vec()).build();
        let what = || format!("setting the MAC address of {}", l.name);
        if self.set(msg(), what).await.is_ok() {
            return Ok(());
        }
        self.set_up(l, false).await?;
        let r = self.set(msg(), what).await;
        if l.admin_up {
            self.set_up(l, true).await?;
        }
        r
    }

    pub async fn set_mtu(&self, l: &Link, mtu: u32) -> anyhow::Result<()> {
        if l.mtu == mtu {
            return Ok(());
        }
        self.set(LinkUnspec::new_with_index(l.index).mtu(mtu).build(), || format!("setting the MTU of {}", l.name)).await
    }

    pub async fn add_address(&self, l: &Link, addr: IpAddr, prefix: u8) -> anyhow::Result<()> {
        match self.handle.address().add(l.index, addr, prefix).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => Err(anyhow!(e).context(format!("adding {addr}/{prefix} to {}", l.name))),
        }
    }

    /// Device `index`'s IP addresses.
    pub async fn addresses(&self, index: u32) -> anyhow::Result<Vec<IpAddr>> {
        use netlink_packet_route::address::AddressAttribute;
        let msgs: Vec<_> =
            self.handle.address().get().set_link_index_filter(index).execute().try_collect().await.context("listing addresses")?;
        Ok(msgs
            .iter()
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            })
            .collect())
    }

    /// Removes an address from an interface (nothing to do when it is not there).
    pub async fn del_address(&self, l: &Link, addr: IpAddr, prefix: u8) -> anyhow::Result<()> {
        let mut list = self.handle.address().get().set_link_index_filter(l.index).set_address_filter(addr).execute();
        while let Some(msg) = list.try_next().await.with_context(|| format!("listing the addresses of {}", l.name))? {
            if msg.header.prefix_len == prefix {
                self.handle.address().del(msg).execute().await.with_context(|| format!("removing {addr}/{prefix} from {}", l.name))?;
            }
        }
        Ok(())
    }
}

/// A stream of link changes in this network namespace (like `ip monitor link`).
pub struct LinkEvents {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, rtnetlink::sys::SocketAddr)>,
}

impl LinkEvents {
    pub fn subscribe() -> anyhow::Result<LinkEvents> {
        let (conn, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).context("subscribing to link events")?;
        tokio::spawn(conn);
        Ok(LinkEvents { messages })
    }

    /// The next change; None when the subscription ended.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            let (msg, _) = self.messages.next().await?;
            if let NetlinkPayload::InnerMessage(m) = msg.payload
                && let Some(ev) = link_event(m)
            {
                return Some(ev);
            }
        }
    }
}

/// The change a link message reports, if it is one of a device. Messages of the bridge family
/// are about a device's place in a bridge: a DELLINK of that family means it left the bridge,
/// not that it was deleted.
fn link_event(msg: RouteNetlinkMessage) -> Option<LinkEvent> {
    match msg {
        RouteNetlinkMessage::NewLink(m) | RouteNetlinkMessage::DelLink(m) if m.header.interface_family == AddressFamily::Bridge => None,
        RouteNetlinkMessage::NewLink(m) => Some(LinkEvent::Changed(Link::from_message(&m))),
        RouteNetlinkMessage::DelLink(m) => {
            let l = Link::from_message(&m);
            Some(LinkEvent::Removed { index: l.index, name: l.name })
        }
        _ => None,
    }
}

/// The alias of the bond devices this program makes, and of a veth bond device's peer.
pub const BOND_ALIAS: &str = "bondctl bond device";
pub const PEER_ALIAS: &str = "bondctl bond device's peer (keep it up)";

/// The name of a veth bond device's peer: `BOND-peer`, or for a long name `bondpeer` and a
/// hash of it (interface names have at most 15 characters).
pub fn veth_peer_name(bond: &str) -> String {
    let name = format!("{bond}-peer");
    if name.len() <= 15 {
        return name;
    }
    let h = bond.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("bondpeer{:07x}", h & 0x0fff_ffff)
}

/// Whether an existing interface is a bond device this program made and can take over: one it
/// marked (a dummy or a veth), or an ifb (what earlier versions made; its address cannot
/// change, see [`is_legacy_bond_device`]).
pub fn is_bond_device(l: &Link) -> bool {
    match l.kind.as_deref() {
        Some("dummy" | "veth") => l.alias.as_deref() == Some(BOND_ALIAS),
        _ => is_legacy_bond_device(l),
    }
}

/// Whether `l` is the bond device a state file names (`ifindex`): one of ours by its alias, or
/// a dummy or veth of that ifindex whose alias someone changed (`ip link set BOND alias ...`,
/// as SNMP's ifAlias is often set).
pub fn is_bond_device_at(l: &Link, ifindex: u32) -> bool {
    l.index == ifindex && (is_bond_device(l) || matches!(l.kind.as_deref(), Some("dummy" | "veth")))
}

/// An ifb bond device of an earlier version: adopted as it is, but an ifb refuses a new MAC
/// address.
pub fn is_legacy_bond_device(l: &Link) -> bool {
    l.kind.as_deref() == Some(&InfoKind::Ifb.to_string())
}

/// Rejects an interface that cannot be a member.
pub fn check_member(l: &Link, bond: &str) -> anyhow::Result<()> {
    if l.name == "lo" {
        bail!("{} cannot be a bond member", l.name);
    }
    if l.mac == [0; 6] {
        bail!("{} has no Ethernet address and cannot be a member of {bond}", l.name);
    }
    // Devices that forward for others (a bond of ours is an ifb): their traffic would loop
    // through the bond or bypass it.
    match l.kind.as_deref() {
        Some(kind @ ("bridge" | "openvswitch" | "team")) => bail!("{} is a {kind} device and cannot be a member of {bond}", l.name),
        _ if is_bond_device(l) => bail!("{} is a bond device and cannot be a member of {bond}", l.name),
        _ if l.alias.as_deref() == Some(PEER_ALIAS) => bail!("{} is a bond device's peer and cannot be a member of {bond}", l.name),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_veth_bond_devices_peer_name_fits_an_interface_name() {
        assert_eq!(veth_peer_name("bond0"), "bond0-peer");
        let long = veth_peer_name("a-long-bondname");
        assert!(long.len() <= 15 && long.starts_with("bondpeer"), "{long}");
        assert_ne!(long, veth_peer_name("a-long-bondnamf"));
    }

    fn link(name: &str, kind: Option<&str>) -> Link {
        Link { kind: kind.map(String::from), ..Link::up(5, name, [2, 0, 0, 0, 0, 1]) }
    }

    #[test]
    fn a_device_leaving_a_bridge_is_not_a_device_deleted() {
        let mut m = LinkMessage::default();
        m.header.index = 7;
        m.attributes.push(LinkAttribute::IfName("bond0".into()));
        let removed = link_event(RouteNetlinkMessage::DelLink(m.clone()));
        assert!(matches!(removed, Some(LinkEvent::Removed { index: 7, ref name }) if name == "bond0"));
        m.header.interface_family = AddressFamily::Bridge;
        assert!(link_event(RouteNetlinkMessage::DelLink(m.clone())).is_none(), "left a bridge");
        assert!(link_event(RouteNetlinkMessage::NewLink(m)).is_none(), "a bridge port's state");
    }

    #[test]
    fn devices_that_forward_for_others_cannot_be_members() {
        assert!(check_member(&link("eth0", None), "bond0").is_ok());
        assert!(check_member(&link("eth0", Some("veth")), "bond0").is_ok());
        let ours = |kind: &str| Link { alias: Some(BOND_ALIAS.into()), ..link("eth0", Some(kind)) };
        assert!(check_member(&ours("dummy"), "bond0").is_err() && check_member(&ours("veth"), "bond0").is_err());
        assert!(check_member(&link("eth0", Some("dummy")), "bond0").is_ok(), "a dummy of someone else's is a device like any");
        for kind in ["bridge", "openvswitch", "team", "ifb"] {
            let e = check_member(&link("eth0", Some(kind)), "bond0").unwrap_err().to_string();
            assert!(e.contains("eth0") && e.contains("cannot be a member of bond0"), "{e}");
        }
        assert!(check_member(&link("lo", None), "bond0").is_err());
    }
}
