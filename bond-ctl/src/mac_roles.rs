//! balance-tlb and balance-alb give members MAC addresses of their own: the active member
//! carries the bond's (it receives what peers send to the bond), every other member one of its
//! own, never two members the same. Pure: from the members' addresses to the ordered changes
//! that get there; the bond carries them out (an ioctl each) and can undo them.

/// A member as the roles see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub slot: u8,
    /// Its address now.
    pub mac: [u8; 6],
    /// Its own address from before it joined, if known.
    pub own: Option<[u8; 6]>,
}

/// One change: member `slot` takes `mac` (it had `from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub slot: u8,
    pub from: [u8; 6],
    pub mac: [u8; 6],
}

/// The changes, in the order to make them, and members left sharing an address because no
/// member's own address is free for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub stuck: Vec<u8>,
}

/// What gives `active` the bond's address and every other member a distinct one. The member
/// that held the bond's address takes the active member's old one first (bonding swaps them the
/// same way), so no two members ever hold the bond's address; a member left with a duplicate
/// takes a member's own address that nobody uses.
pub fn plan(members: &[Holder], active: u8, bond_mac: [u8; 6]) -> Plan {
    let mut macs: Vec<[u8; 6]> = members.iter().map(|m| m.mac).collect();
    let mut plan = Plan::default();
    let Some(ai) = members.iter().position(|m| m.slot == active) else { return plan };
    let mut change = |macs: &mut Vec<[u8; 6]>, i: usize, mac: [u8; 6]| {
        plan.changes.push(Change { slot: members[i].slot, from: macs[i], mac });
        macs[i] = mac;
    };
    if macs[ai] != bond_mac {
        let freed = macs[ai];
        if let Some(hi) = macs.iter().position(|m| *m == bond_mac) {
            change(&mut macs, hi, freed);
        }
        change(&mut macs, ai, bond_mac);
    }
    for i in 0..members.len() {
        let duplicate = macs[..i].contains(&macs[i]);
        if i == ai || !(macs[i] == bond_mac || duplicate) {
            continue;
        }
        let free = members.iter().filter_map(|m| m.own).find(|a| *a != bond_mac && !macs.contains(a));
        match free {
            Some(free) => change(&mut macs, i, free),
            None => plan.stuck.push(members[i].slot),
        }
    }
    plan
}

/// A member leaves and takes its own address `own` back, having `now` at present: the member
/// that carries `own` (it came to it through swaps at earlier failovers) takes `now` instead,
/// or, where `now` is the bond's, a member's own address nobody uses, so that no two devices
/// share an address once the member has left (bonding swaps them the same way at detach).
/// None when no member carries `own`, when `own` is the bond's address (the bond keeps using
/// it), or when no address is free (the change is then reported stuck by the next `plan`).
pub fn after_leaving(members: &[Holder], now: [u8; 6], own: [u8; 6], bond_mac: [u8; 6]) -> Option<Change> {
    if own == bond_mac {
        return None;
    }
    let holder = members.iter().find(|m| m.mac == own)?;
    let used = |a: &[u8; 6]| *a == bond_mac || *a == own || members.iter().any(|m| m.mac == *a);
    let mac = if used(&now) { members.iter().filter_map(|m| m.own).find(|a| !used(a))? } else { now };
    Some(Change { slot: holder.slot, from: own, mac })
}

/// The changes that undo `applied` (made in order), last first.
pub fn undo(applied: &[Change]) -> Vec<Change> {
    applied.iter().rev().map(|c| Change { slot: c.slot, from: c.mac, mac: c.from }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOND: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const fn mac(n: u8) -> [u8; 6] {
        [2, 0, 0, 0, 0, n]
    }
    fn holder(slot: u8, now: [u8; 6], own: [u8; 6]) -> Holder {
        Holder { slot, mac: now, own: Some(own) }
    }
    /// The addresses after the plan, by slot.
    fn after(members: &[Holder], plan: &Plan) -> Vec<[u8; 6]> {
        let mut macs: Vec<[u8; 6]> = members.iter().map(|m| m.mac).collect();
        for c in &plan.changes {
            let i = members.iter().position(|m| m.slot == c.slot).unwrap();
            assert_eq!(macs[i], c.from, "each change starts from the address before it");
            macs[i] = c.mac;
            let holders = macs.iter().filter(|m| **m == BOND).count();
            assert!(holders <= 1, "two members hold the bond's address after {c:?}");
        }
        macs
    }

    #[test]
    fn a_leaving_member_frees_its_own_address_from_whoever_carries_it() {
        // eth1 carries eth0's own address after swaps; eth0 leaves with eth1's.
        let members = [holder(1, mac(1), mac(2)), holder(2, BOND, mac(3))];
        assert_eq!(after_leaving(&members, mac(2), mac(1), BOND), Some(Change { slot: 1, from: mac(1), mac: mac(2) }));
        // Leaving with the bond's address (it was active): a free own address instead.
        let members = [holder(1, mac(1), mac(2)), holder(2, mac(3), mac(3))];
        assert_eq!(after_leaving(&members, BOND, mac(1), BOND), Some(Change { slot: 1, from: mac(1), mac: mac(2) }));
        // Nobody carries it, or it is the bond's own: nothing to do.
        assert_eq!(after_leaving(&members, mac(9), mac(7), BOND), None);
        assert_eq!(after_leaving(&[holder(1, BOND, mac(2))], mac(2), BOND, BOND), None);
    }

    #[test]
    fn a_failover_swaps_the_bond_address_with_the_new_active_member() {
        let members = [holder(0, BOND, mac(1)), holder(1, mac(2), mac(2)), holder(2, mac(3), mac(3))];
        let p = plan(&members, 1, BOND);
        assert_eq!(
            p.changes,
            [Change { slot: 0, from: BOND, mac: mac(2) }, Change { slot: 1, from: mac(2), mac: BOND }],
            "the holder gives the address up first"
        );
        assert_eq!(after(&members, &p), [mac(2), BOND, mac(3)]);
        assert!(p.stuck.is_empty());
    }

    #[test]
    fn nothing_changes_when_the_roles_hold() {
        let members = [holder(0, BOND, mac(1)), holder(1, mac(2), mac(2))];
        assert_eq!(plan(&members, 0, BOND), Plan::default());
        assert_eq!(plan(&members, 9, BOND), Plan::default(), "no such active member");
    }

    #[test]
    fn a_joining_member_with_the_bond_address_takes_a_free_own_address() {
        // Slot 2 joined carrying the bond's address (as members of other modes do).
        let members = [holder(0, BOND, mac(1)), holder(1, mac(2), mac(2)), holder(2, BOND, mac(3))];
        let p = plan(&members, 0, BOND);
        assert_eq!(after(&members, &p), [BOND, mac(2), mac(1)], "the first own address nobody uses");
    }

    #[test]
    fn chained_failovers_and_a_removal_leave_addresses_distinct() {
        let mut members = vec![holder(0, BOND, BOND), holder(1, mac(2), mac(2)), holder(2, mac(3), mac(3))];
        for active in [1, 2, 0, 2, 1] {
            let p = plan(&members, active, BOND);
            let macs = after(&members, &p);
            for (m, mac) in members.iter_mut().zip(macs) {
                m.mac = mac;
            }
            let mut sorted: Vec<_> = members.iter().map(|m| m.mac).collect();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), members.len(), "distinct after failing over to {active}: {members:?}");
        }
        members.remove(0);
        let p = plan(&members, members[0].slot, BOND);
        let macs = after(&members, &p);
        assert_ne!(macs[0], macs[1]);
    }

    #[test]
    fn a_duplicate_with_no_free_address_is_reported() {
        let members = [Holder { slot: 0, mac: BOND, own: None }, Holder { slot: 1, mac: BOND, own: None }];
        let p = plan(&members, 0, BOND);
        assert_eq!((p.changes.len(), p.stuck.clone()), (0, vec![1]));
    }

    #[test]
    fn undo_restores_every_address_in_reverse() {
        let members = [holder(0, BOND, mac(1)), holder(1, mac(2), mac(2))];
        let p = plan(&members, 1, BOND);
        let back = undo(&p.changes);
        let mut macs = after(&members, &p);
        for c in &back {
            let i = members.iter().position(|m| m.slot == c.slot).unwrap();
            assert_eq!(macs[i], c.from);
            macs[i] = c.mac;
        }
        assert_eq!(macs, [BOND, mac(2)]);
    }
}
