//! What `bondctl status` shows of a bond's LACP.

use serde::{Deserialize, Serialize};

use super::{
    AdSelect, Lacp, PortInfo,
    port::{MuxState, RxState, Selection},
};
use crate::mac::format_mac;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LacpStatus {
    pub fast: bool,
    pub active: bool,
    pub select: AdSelect,
    pub system_priority: u16,
    pub system: String,
    pub min_links: u32,
    pub active_aggregator: Option<u16>,
    /// The mask `distributing()` returns.
    pub distributing: u32,
    pub aggregators: Vec<AggregatorStatus>,
    pub ports: Vec<PortStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregatorStatus {
    pub id: u16,
    /// Member slots.
    pub ports: Vec<u8>,
    pub actor_key: u16,
    pub partner_system: String,
    pub partner_system_priority: u16,
    pub partner_key: u16,
    pub selected: bool,
    pub individual: bool,
    pub bandwidth_mbps: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    pub slot: u8,
    pub name: Option<String>,
    pub enabled: bool,
    pub speed_mbps: u32,
    pub aggregator: Option<u16>,
    /// Operational values, as sent in our LACPDUs.
    pub actor: PartyStatus,
    pub partner: PartyStatus,
    /// "disabled", "expired", "defaulted" or "current" in JSON.
    pub rx_state: RxState,
    /// "detached", "waiting", "attached" or "collecting_distributing" in JSON.
    pub mux_state: MuxState,
    /// "selected", "unselected" or "standby" in JSON.
    pub selected: Selection,
    pub pdus_sent: u64,
    pub pdus_received: u64,
    pub bad_pdus: u64,
    pub marker_responses_sent: u64,
}

/// One side's [`PortInfo`] with its system id written out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartyStatus {
    pub system_priority: u16,
    pub system: String,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: u8,
}

impl From<PortInfo> for PartyStatus {
    fn from(p: PortInfo) -> PartyStatus {
        PartyStatus {
            system_priority: p.system_priority,
            system: format_mac(&p.system),
            key: p.key,
            port_priority: p.port_priority,
            port: p.port,
            state: p.state,
        }
    }
}

impl Lacp {
    pub fn status(&self) -> LacpStatus {
        let settings = &self.settings;
        let active = self.active.filter(|id| self.aggregators.iter().any(|a| a.id == *id));
        LacpStatus {
            fast: settings.fast,
            active: settings.active,
            select: settings.select,
            system_priority: settings.system_priority,
            system: format_mac(&settings.system),
            min_links: settings.min_links,
            active_aggregator: active,
            distributing: self.distributing(),
            aggregators: self
                .aggregators
                .iter()
                .map(|a| AggregatorStatus {
                    id: a.id,
                    ports: a.slots.clone(),
                    actor_key: a.lag.actor_key,
                    partner_system: format_mac(&a.lag.partner_system),
                    partner_system_priority: a.lag.partner_system_priority,
                    partner_key: a.lag.partner_key,
                    selected: Some(a.id) == active,
                    individual: a.lag.individual,
                    bandwidth_mbps: a.bandwidth_mbps,
                })
                .collect(),
            ports: self
                .ports
                .iter()
                .map(|p| PortStatus {
                    slot: p.slot,
                    name: p.name.clone(),
                    enabled: p.enabled,
                    speed_mbps: p.speed_mbps,
                    aggregator: p.aggregator,
                    actor: p.actor.into(),
                    partner: p.partner.into(),
                    rx_state: p.rx,
                    mux_state: p.mux,
                    selected: p.selection,
                    pdus_sent: p.counters.pdus_sent,
                    pdus_received: p.counters.pdus_received,
                    bad_pdus: p.counters.bad_pdus,
                    marker_responses_sent: p.counters.marker_responses,
                })
                .collect(),
        }
    }
}
