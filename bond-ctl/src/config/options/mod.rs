//! Every option in one declarative table, as bonding's `bond_options.c` has one: for each its
//! bonding.ko and ZeroTier spellings, where it is written, the values it accepts (with the range
//! check), its default, the modes it applies to, whether a running bond can change it
//! (`bondctl set`), and its one-line doc.
//!
//! Everything that names, checks or documents an option reads this table: the resolver's value
//! checks ([`Opt::int`], [`Opt::pick`], ...), the command line's `KEY=VALUE` options and the
//! warnings for options of another mode ([`kernel`](super::kernel)), `bondctl set`
//! ([`super::live`]), `bondctl --help` ([`kernel_option_list`]) and the manual's option tables
//! (docs/src/configuration.md; [`markdown`]; a test fails when the manual differs).

use bond_common::config::Mode;

/// Where an option is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On a bond (`bonds.NAME`), under bonding.ko's name.
    Bond,
    /// In a policy (`settings.policies.NAME`) under ZeroTier's name; those with a bonding.ko
    /// name are also written on a bond, where they shape the bond's own policy.
    Policy,
    /// On one link of a policy (`links.NAME`).
    Link,
}

/// What an option's value is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Ms,
    Seconds,
}

/// The values an option accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values {
    /// An integer in `min..=max`. Durations are bounded so that they cannot overflow when turned
    /// into nanoseconds and added to the clock.
    Int {
        min: u64,
        max: u64,
        unit: Unit,
    },
    /// A real number in `min..=max`.
    Real {
        min: f64,
        max: f64,
    },
    /// One of these names; with `numbered`, also its position (bonding.ko's numbers).
    Names {
        names: &'static [&'static str],
        numbered: bool,
    },
    Bool,
    /// A value per member (`{eth1: 10}` in the file, `eth1:10,eth2:5` on the command line),
    /// each an integer in `min..=max`.
    PerLink {
        min: i64,
        max: i64,
    },
    /// Anything else, described here and checked where it is read.
    Other(&'static str),
}

/// One option.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// bonding.ko's name (sysfs, `modprobe`, `ip link ... type bond`).
    pub kernel: Option<&'static str>,
    /// ZeroTier's name (`local.conf`), for policies and links.
    pub zerotier: Option<&'static str>,
    /// Another spelling ZeroTier's code reads.
    pub alias: Option<&'static str>,
    pub scope: Scope,
    pub values: Values,
    /// As the manual shows it.
    pub default: &'static str,
    /// The modes it applies to; empty: every mode.
    pub modes: &'static [Mode],
    /// Whether `bondctl set` changes it on a running bond (without losing traffic).
    pub live: bool,
    /// Fixed while the programs run: neither `set` nor `reload` changes it, the next daemon
    /// does (adopting the bond without a gap after `--persist`).
    pub at_restart: bool,
    pub doc: &'static str,
}

mod table;
#[cfg(test)]
mod tests;

pub use table::*;

impl Opt {
    /// The name to show: ZeroTier's for policy and link options, else bonding.ko's.
    pub fn name(&self) -> &'static str {
        self.zerotier.or(self.kernel).unwrap_or("?")
    }

    /// Whether `name` spells this option in `scope`.
    fn spelled(&self, name: &str) -> bool {
        [self.kernel, self.zerotier, self.alias].contains(&Some(name))
    }

    /// Whether the option does something under `mode`.
    pub fn applies_to(&self, mode: Mode) -> bool {
        self.modes.is_empty() || self.modes.contains(&mode)
    }

    /// The modes it applies to, for messages: "802.3ad", "balance-tlb and balance-alb".
    pub fn modes_text(&self) -> String {
        let names: Vec<&str> = self.modes.iter().map(|m| m.name()).collect();
        match names.split_last() {
            None => "every mode".into(),
            Some((last, [])) => (*last).into(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// An integer value, checked against the range.
    pub fn int(&self, v: u64) -> Result<u64, String> {
        let Values::Int { min, max, unit } = self.values else { unreachable!("{} is not an integer option", self.name()) };
        let unit = match unit {
            Unit::Ms => " ms",
            Unit::Seconds => " s",
            Unit::None => "",
        };
        match (min, max) {
            _ if (min..=max).contains(&v) => Ok(v),
            (0, 1) => Err(format!("{v} is not 0 or 1")),
            _ => Err(format!("{v}{unit} is outside {min}..={max}")),
        }
    }

    /// One member's value of a per-member option, checked against the range.
    pub fn per_link(&self, v: i64) -> Result<i64, String> {
        let Values::PerLink { min, max } = self.values else { unreachable!("{} is not a per-member option", self.name()) };
        if (min..=max).contains(&v) { Ok(v) } else { Err(format!("{v} is outside {min}..={max}")) }
    }

    /// An integer value that must fit `T` (the range does).
    pub fn int_as<T: TryFrom<u64>>(&self, v: u64) -> Result<T, String> {
        let v = self.int(v)?;
        T::try_from(v).map_err(|_| format!("{v} does not fit"))
    }

    /// A real value, checked against the range.
    pub fn real(&self, v: f64) -> Result<f64, String> {
        let Values::Real { min, max } = self.values else { unreachable!("{} is not a real option", self.name()) };
        if v.is_finite() && (min..=max).contains(&v) { Ok(v) } else { Err(format!("{v} is outside {min:?} to {max:?}")) }
    }

    /// The position of a named value in the option's list (by name, or by number when bonding
    /// numbers it).
    pub fn pick(&self, v: &str) -> Result<usize, String> {
        let Values::Names { names, numbered } = self.values else { unreachable!("{} has no names", self.name()) };
        if let Some(i) = names.iter().position(|n| *n == v) {
            return Ok(i);
        }
        if numbered && let Some(i) = v.parse::<usize>().ok().filter(|i| *i < names.len()) {
            return Ok(i);
        }
        // Numbers as they were written, words quoted.
        let shown = if v.parse::<f64>().is_ok() { v.to_string() } else { format!("\"{v}\"") };
        Err(format!("{shown} is not {}", self.alternatives()))
    }

    /// `slow, fast, 0 or 1`; `stable, bandwidth, count or 0-2`; `one of flow-dynamic, ...`.
    fn alternatives(&self) -> String {
        let Values::Names { names, numbered } = self.values else { return self.values_text() };
        match (numbered, names.len()) {
            (false, _) => format!("one of {}", names.join(", ")),
            (true, 2) => format!("{}, 0 or 1", names.join(", ")),
            (true, n) => format!("{} or 0-{}", names.join(", "), n - 1),
        }
    }

    /// What the option accepts, for messages and docs.
    pub fn values_text(&self) -> String {
        match self.values {
            Values::Int { min, max, unit } => {
                let unit = match unit {
                    Unit::Ms => " ms",
                    Unit::Seconds => " s",
                    Unit::None => "",
                };
                format!("{min}..={max}{unit}")
            }
            Values::Real { min, max } => format!("{min:?} to {max:?}"),
            Values::Names { names, numbered } => {
                let list = names.join(", ");
                if numbered { format!("one of: {list}, or 0-{}", names.len() - 1) } else { format!("one of: {list}") }
            }
            Values::Bool => "true or false".into(),
            Values::PerLink { min, max } => format!("per member, {min}..={max} (`LINK:N,...` on the command line)"),
            Values::Other(what) => what.into(),
        }
    }
}

/// The option a bond's `KEY` (bonding.ko spelling, as on a bond or a command line) names.
pub fn kernel_option(key: &str) -> Option<&'static Opt> {
    ALL.iter().copied().find(|o| o.kernel == Some(key) && o.scope != Scope::Link)
}

/// The option `KEY` names in `bondctl set`: a bonding.ko name or a ZeroTier policy key.
pub fn live_option(key: &str) -> Option<&'static Opt> {
    ALL.iter().copied().find(|o| o.scope != Scope::Link && o.spelled(key))
}

/// Every bonding.ko name, for `--help` and suggestions.
pub fn kernel_names() -> impl Iterator<Item = &'static str> {
    ALL.iter().filter(|o| o.scope != Scope::Link).filter_map(|o| o.kernel)
}

/// `bondctl up --help`'s list of bonding.ko options.
pub fn kernel_option_list() -> String {
    let names: Vec<&str> = kernel_names().collect();
    format!("bonding.ko options (see `man bondctl` or the manual's bond keys): {}.", names.join(", "))
}

/// The options `bondctl set` changes, for its `--help`.
pub fn live_option_list() -> String {
    let names: Vec<String> = ALL
        .iter()
        .filter(|o| o.live && o.scope != Scope::Link)
        .map(|o| match (o.kernel, o.zerotier) {
            (Some(k), Some(z)) => format!("{k} ({z})"),
            (k, z) => k.or(z).unwrap_or("?").to_string(),
        })
        .collect();
    names.join(", ")
}

/// `bondctl set --help`'s list.
pub fn live_option_list_help() -> String {
    format!("Options a running bond takes:\n  {}", live_option_list())
}

/// The manual's option tables: policy keys, link keys and bond keys.
pub fn markdown() -> String {
    let mut s = String::new();
    let row = |s: &mut String, key: String, o: &Opt| {
        let live = if o.live { "yes" } else { "" };
        s.push_str(&format!("| {key} | {} | {} | {} | {live} |\n", o.doc, o.values_text(), o.default));
    };
    s.push_str("Policy keys (under `settings.policies.NAME`, or directly under `settings` for a standard policy):\n\n");
    s.push_str("| key | what | values | default | `set` |\n|---|---|---|---|---|\n");
    for o in ALL.iter().filter(|o| o.scope == Scope::Policy && o.zerotier.is_some()) {
        let mut key = format!("`{}`", o.name());
        if let Some(a) = o.alias {
            key.push_str(&format!(" (or `{a}`)"));
        }
        if let Some(k) = o.kernel {
            key.push_str(&format!("; on a bond `{k}`"));
        }
        row(&mut s, key, o);
    }
    s.push_str("\nLink keys (under a policy's `links.NAME`; when a policy lists links, only those carry its traffic):\n\n");
    s.push_str("| key | what | values | default | `set` |\n|---|---|---|---|---|\n");
    for o in ALL.iter().filter(|o| o.scope == Scope::Link) {
        row(&mut s, format!("`{}`", o.name()), o);
    }
    s.push_str("\nBond keys (under `bonds.NAME`, bonding.ko's names; also `KEY=VALUE` on the command line):\n\n");
    s.push_str("| key | what | values | default | `set` |\n|---|---|---|---|---|\n");
    for o in ALL.iter().filter(|o| o.scope == Scope::Bond || (o.scope == Scope::Policy && o.zerotier.is_none())) {
        let mut key = format!("`{}`", o.kernel.or(o.zerotier).unwrap_or("?"));
        if let Some(a) = o.alias {
            key.push_str(&format!(" (or `{a}`)"));
        }
        if !o.modes.is_empty() {
            key.push_str(&format!(" ({})", o.modes_text()));
        }
        row(&mut s, key, o);
    }
    s
}
