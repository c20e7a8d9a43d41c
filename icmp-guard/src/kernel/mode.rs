//! The XDP attach mode, in one type: what an operator asks for (`--mode`, the config file's
//! `mode`), what the loader records in the config map, and what the kernel reports over
//! rtnetlink. Every spelling of a mode lives here.

use icmp_guard_common::config::attach_mode;

/// An XDP attach mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Asked for: native where the driver has it, else generic.
    #[default]
    Auto,
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the stack, on any interface (`XDP_FLAGS_SKB_MODE`).
    Generic,
    /// Reported only: on the NIC.
    Offload,
    /// Reported only: programs in several modes at once.
    Multiple,
    /// Reported only: nothing recorded.
    Unknown,
}

/// The modes an operator may ask for, as they are spelled on the command line and in files.
pub const REQUESTABLE: [AttachMode; 3] =
    [AttachMode::Auto, AttachMode::Native, AttachMode::Generic];

impl AttachMode {
    /// The mode's name, as `status`, the metrics and the config file spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Offload => "offload",
            Self::Multiple => "multiple",
            Self::Unknown => "unknown",
        }
    }

    /// The other name a requestable mode answers to: the kernel's and iproute2's word for it
    /// (`XDP_FLAGS_DRV_MODE`, `ip link set dev IFACE xdpdrv`; `XDP_FLAGS_SKB_MODE`,
    /// `xdpgeneric`, which xdp-loader calls `skb`).
    #[must_use]
    pub const fn alias(self) -> Option<&'static str> {
        match self {
            Self::Native => Some("drv"),
            Self::Generic => Some("skb"),
            _ => None,
        }
    }

    /// A mode an operator may ask for, by name or [alias](Self::alias).
    #[must_use]
    pub fn requested(name: &str) -> Option<Self> {
        REQUESTABLE
            .into_iter()
            .find(|m| m.as_str() == name || m.alias() == Some(name))
    }

    /// How the modes an operator may ask for are spelled, for messages:
    /// `"auto", "native" (or "drv") or "generic" (or "skb")`.
    #[must_use]
    pub fn spellings() -> String {
        let quoted: Vec<String> = REQUESTABLE
            .iter()
            .map(|m| match m.alias() {
                Some(alias) => format!("{:?} (or {alias:?})", m.as_str()),
                None => format!("{:?}", m.as_str()),
            })
            .collect();
        match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// The value the loader records in the config map (`Config::attach_mode`).
    #[must_use]
    pub const fn recorded(self) -> u32 {
        match self {
            Self::Native => attach_mode::NATIVE,
            Self::Generic => attach_mode::GENERIC,
            _ => attach_mode::UNKNOWN,
        }
    }

    /// The mode a config map records.
    #[must_use]
    pub const fn from_recorded(value: u32) -> Self {
        match value & !attach_mode::FELL_BACK {
            attach_mode::NATIVE => Self::Native,
            attach_mode::GENERIC => Self::Generic,
            _ => Self::Unknown,
        }
    }

    /// The mode rtnetlink reports in `IFLA_XDP_ATTACHED` (`XDP_ATTACHED_*`), if one is.
    #[must_use]
    pub const fn from_netlink(attached: u8) -> Option<Self> {
        match attached {
            1 => Some(Self::Native),
            2 => Some(Self::Generic),
            3 => Some(Self::Offload),
            4 => Some(Self::Multiple),
            _ => None,
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AttachMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl clap::ValueEnum for AttachMode {
    fn value_variants<'a>() -> &'a [Self] {
        &REQUESTABLE
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            Self::Auto => "native, falling back to generic",
            Self::Native => "in the driver (alias: drv)",
            Self::Generic => "in the stack, any interface (alias: skb)",
            _ => return None,
        };
        let value = clap::builder::PossibleValue::new(self.as_str()).help(help);
        Some(match self.alias() {
            Some(alias) => value.alias(alias),
            None => value,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum as _;

    use super::*;

    /// (spelling, mode): the names and the kernel's aliases, on the command line (clap) and in
    /// a config file (`requested`) alike.
    #[test]
    fn aliases_name_the_same_modes_everywhere() {
        for (name, mode) in [
            ("auto", Some(AttachMode::Auto)),
            ("native", Some(AttachMode::Native)),
            ("drv", Some(AttachMode::Native)),
            ("generic", Some(AttachMode::Generic)),
            ("skb", Some(AttachMode::Generic)),
            ("offload", None),
            ("hw", None),
            ("SKB", None),
        ] {
            assert_eq!(AttachMode::requested(name), mode, "{name}");
            assert_eq!(AttachMode::from_str(name, false).ok(), mode, "{name}");
        }
    }

    #[test]
    fn every_spelling_round_trips() {
        for mode in REQUESTABLE {
            assert_eq!(AttachMode::requested(mode.as_str()), Some(mode));
        }
        assert_eq!(AttachMode::requested("offload"), None);
        assert_eq!(
            AttachMode::spellings(),
            r#""auto", "native" (or "drv") or "generic" (or "skb")"#
        );
        for mode in [AttachMode::Native, AttachMode::Generic, AttachMode::Unknown] {
            assert_eq!(AttachMode::from_recorded(mode.recorded()), mode);
        }
        assert_eq!(AttachMode::from_netlink(1), Some(AttachMode::Native));
        assert_eq!(AttachMode::from_netlink(2), Some(AttachMode::Generic));
        assert_eq!(AttachMode::from_netlink(0), None);
    }
}
