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

    /// A mode an operator may ask for, by name.
    #[must_use]
    pub fn requested(name: &str) -> Option<Self> {
        REQUESTABLE.into_iter().find(|m| m.as_str() == name)
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
        match value {
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
            Self::Native => "in the driver",
            Self::Generic => "in the stack, any interface",
            _ => return None,
        };
        Some(clap::builder::PossibleValue::new(self.as_str()).help(help))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for mode in REQUESTABLE {
            assert_eq!(AttachMode::requested(mode.as_str()), Some(mode));
        }
        assert_eq!(AttachMode::requested("offload"), None);
        for mode in [AttachMode::Native, AttachMode::Generic, AttachMode::Unknown] {
            assert_eq!(AttachMode::from_recorded(mode.recorded()), mode);
        }
        assert_eq!(AttachMode::from_netlink(1), Some(AttachMode::Native));
        assert_eq!(AttachMode::from_netlink(2), Some(AttachMode::Generic));
        assert_eq!(AttachMode::from_netlink(0), None);
    }
}
