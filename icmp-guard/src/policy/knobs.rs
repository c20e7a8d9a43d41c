//! Every policy knob, defined once.
//!
//! A row names the knob (its config-file key, its `status --json` key and its
//! `icmp_guard_limit{limit=...}` label), gives its flag's value name, unit, range, default
//! and help, the fragment it adds to the one-line summary, and how it is read from and written
//! to the program's [`Config`]. The command-line parser, the config file's validation, the
//! summary, the status JSON and the metrics all iterate over [`KNOBS`]. On this side, adding
//! a knob is one row here; in the common crate, its field in [`Config`], its default, and any
//! derived field in [`Config::derive`] (the README's "Adding a knob" has the whole list).
//!
//! Dry-run is not a number: it is the tri-state [`super::Overrides::dry_run`].

use std::ops::RangeInclusive;

use icmp_guard_common::{
    Config,
    bucket::MAX_RATE,
    config::{MAX_DATAGRAM, defaults},
};

/// Smallest `--max-echo-size`: an IPv6 header and an ICMPv6 header, the smallest echo of
/// either family (an IPv4 one is 28 bytes): any less would drop every IPv6 echo.
pub const MIN_ECHO_SIZE: u32 = 48;

/// Smallest `--exempt-rate` and `--exempt-burst`: the budget of errors and path-MTU signals
/// is a bound on floods of them, and no setting may make it tight enough to break path MTU
/// discovery or error reporting.
pub const MIN_EXEMPT: u32 = 1000;

/// Smallest `--max-sources`: below this an LRU table evicts sources faster than they prove
/// themselves.
pub const MIN_SOURCES: u32 = 1024;

/// Largest `--max-sources`: 16 Mi sources, about 1.8 GiB of kernel memory.
pub const MAX_SOURCES: u32 = 1 << 24;

/// One tunable value of the policy.
#[derive(Debug)]
pub struct Knob {
    /// `snake_case`: the config-file key, the JSON key and the metrics label.
    pub name: &'static str,
    /// The flag's value name in `--help` (e.g. `PPS`).
    pub value_name: &'static str,
    /// What one unit is, for messages.
    pub unit: &'static str,
    /// Smallest and largest accepted values.
    pub min: u32,
    pub max: u32,
    /// The value `attach` uses when the flag is absent.
    pub default: u32,
    /// The flag's help line.
    pub help: &'static str,
    /// This knob's part of the one-line summary: `{}` stands for the value; the fragment
    /// carries its own separator.
    pub summary: &'static str,
    /// Reads the knob from a config.
    pub get: fn(&Config) -> u32,
    /// Writes the knob into a config; derived fields are recomputed by [`Config::derive`].
    pub set: fn(&mut Config, u32),
}

impl Knob {
    /// The long flag, e.g. `--echo-rate`.
    #[must_use]
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// The accepted values.
    #[must_use]
    pub const fn range(&self) -> RangeInclusive<u32> {
        self.min..=self.max
    }

    /// `value` if it is in range, else why it is refused.
    pub fn accept(&self, value: i64) -> Result<u32, String> {
        u32::try_from(value)
            .ok()
            .filter(|v| self.range().contains(v))
            .ok_or_else(|| format!("{value} is outside {}..={}", self.min, self.max))
    }
}

/// Every knob, in the order `--help`, the summary, JSON and metrics show them.
pub static KNOBS: [Knob; 14] = [
    Knob {
        name: "echo_rate",
        value_name: "PPS",
        unit: "packets per second",
        min: 1,
        max: MAX_RATE,
        default: defaults::ECHO_RATE,
        help: "Echo (and timestamp) requests per second allowed per source prefix",
        summary: "echo {}/s",
        get: |c| c.echo.rate,
        set: |c, v| c.echo.rate = v,
    },
    Knob {
        name: "echo_burst",
        value_name: "N",
        unit: "packets",
        min: 1,
        max: u32::MAX,
        default: defaults::ECHO_BURST,
        help: "Echo requests a source prefix may send back to back",
        summary: " burst {} per source",
        get: |c| c.echo.burst,
        set: |c, v| c.echo.burst = v,
    },
    Knob {
        name: "reply_rate",
        value_name: "PPS",
        unit: "packets per second",
        min: 1,
        max: MAX_RATE,
        default: defaults::REPLY_RATE,
        help: "Echo replies per second allowed per source prefix: cuts reflected (Smurf) floods",
        summary: ", replies {}/s",
        get: |c| c.reply.rate,
        set: |c, v| c.reply.rate = v,
    },
    Knob {
        name: "reply_burst",
        value_name: "N",
        unit: "packets",
        min: 1,
        max: u32::MAX,
        default: defaults::REPLY_BURST,
        help: "Echo replies a source prefix may send back to back",
        summary: " burst {}",
        get: |c| c.reply.burst,
        set: |c, v| c.reply.burst = v,
    },
    Knob {
        name: "global_rate",
        value_name: "PPS",
        unit: "packets per second",
        min: 1,
        max: MAX_RATE,
        default: defaults::GLOBAL_RATE,
        help: "Metered ICMP per second from all sources together (one budget all CPUs share)",
        summary: ", global {}/s",
        get: |c| c.global.rate,
        set: |c, v| c.global.rate = v,
    },
    Knob {
        name: "global_burst",
        value_name: "N",
        unit: "packets",
        min: 1,
        max: u32::MAX,
        default: defaults::GLOBAL_BURST,
        help: "Metered ICMP from all sources that may arrive back to back",
        summary: " burst {}",
        get: |c| c.global.burst,
        set: |c, v| c.global.burst = v,
    },
    Knob {
        name: "new_source_rate",
        value_name: "PPS",
        unit: "sources per second",
        min: 1,
        max: MAX_RATE,
        default: defaults::NEW_SOURCE_RATE,
        help: "Sources not seen lately admitted per second, for requests and for replies each: \
               all a flood of spoofed sources can take from the global budget",
        summary: ", new sources {}/s",
        get: |c| c.new_source.rate,
        set: |c, v| c.new_source.rate = v,
    },
    Knob {
        name: "new_source_burst",
        value_name: "N",
        unit: "sources",
        min: 1,
        max: u32::MAX,
        default: defaults::NEW_SOURCE_BURST,
        help: "Sources not seen lately that may be admitted back to back",
        summary: " burst {}",
        get: |c| c.new_source.burst,
        set: |c, v| c.new_source.burst = v,
    },
    Knob {
        name: "exempt_rate",
        value_name: "PPS",
        unit: "packets per second",
        min: MIN_EXEMPT,
        max: MAX_RATE,
        default: defaults::EXEMPT_RATE,
        help: "ICMP that no source quota limits (errors, packet too big, fragmentation needed, \
               MLD, informational types) per second from all sources together; never \
               neighbour discovery",
        summary: ", exempt {}/s",
        get: |c| c.exempt.rate,
        set: |c, v| c.exempt.rate = v,
    },
    Knob {
        name: "exempt_burst",
        value_name: "N",
        unit: "packets",
        min: MIN_EXEMPT,
        max: u32::MAX,
        default: defaults::EXEMPT_BURST,
        help: "ICMP that no source quota limits that may arrive back to back",
        summary: " burst {}",
        get: |c| c.exempt.burst,
        set: |c, v| c.exempt.burst = v,
    },
    Knob {
        name: "v4_prefix",
        value_name: "LEN",
        unit: "bits",
        min: 0,
        max: 32,
        default: defaults::V4_PREFIX,
        help: "IPv4 sources share one bucket per prefix of this length",
        summary: ", sources by /{}",
        get: |c| c.v4_prefix,
        set: |c, v| c.v4_prefix = v,
    },
    Knob {
        name: "v6_prefix",
        value_name: "LEN",
        unit: "bits",
        min: 0,
        max: 128,
        default: defaults::V6_PREFIX,
        help: "IPv6 sources share one bucket per prefix of this length",
        summary: " and /{}",
        get: |c| c.v6_prefix,
        set: |c, v| c.v6_prefix = v,
    },
    Knob {
        name: "max_echo_size",
        value_name: "BYTES",
        unit: "bytes",
        min: MIN_ECHO_SIZE,
        max: MAX_DATAGRAM,
        default: defaults::MAX_ECHO_SIZE,
        help: "Largest ICMP datagram in bytes (IP header included) for an echo, or for the \
               reassembled end of any ICMP fragment; fragments past 65535 are always dropped",
        summary: ", max echo size {} bytes",
        get: |c| c.max_echo_size,
        set: |c, v| c.max_echo_size = v,
    },
    Knob {
        name: "max_sources",
        value_name: "N",
        unit: "sources",
        min: MIN_SOURCES,
        max: MAX_SOURCES,
        default: defaults::MAX_SOURCES,
        help: "Source prefixes tracked at once, about 112 bytes each whatever the CPU count; \
               fixed when the guard is attached",
        summary: ", up to {} sources",
        get: |c| c.max_sources,
        set: |c, v| c.max_sources = v,
    },
];

/// The knob called `name`.
#[must_use]
pub fn by_name(name: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.name == name)
}

/// The policy in one line, for `attach`, `set`, `status` and `config check`.
#[must_use]
pub fn describe(cfg: &Config) -> String {
    let mut out: String = KNOBS
        .iter()
        .map(|k| k.summary.replace("{}", &(k.get)(cfg).to_string()))
        .collect();
    if cfg.dry_run() {
        out.push_str(", DRY RUN (nothing dropped)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_the_common_crates_and_in_range() {
        let cfg = Config::with_defaults();
        for knob in &KNOBS {
            assert_eq!((knob.get)(&cfg), knob.default, "{}", knob.name);
            assert!(knob.range().contains(&knob.default), "{}", knob.name);
            assert_eq!(knob.summary.matches("{}").count(), 1, "{}", knob.name);
        }
    }

    #[test]
    fn set_then_get_round_trips() {
        for knob in &KNOBS {
            let mut cfg = Config::with_defaults();
            (knob.set)(&mut cfg, knob.min);
            assert_eq!((knob.get)(&cfg), knob.min, "{}", knob.name);
        }
    }

    #[test]
    fn names_are_unique_and_flags_follow_them() {
        for (i, a) in KNOBS.iter().enumerate() {
            assert!(
                KNOBS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
        assert_eq!(KNOBS[0].flag(), "--echo-rate");
        assert_eq!(by_name("v6_prefix").map(|k| k.max), Some(128));
    }

    #[test]
    fn the_summary_reads_as_before() {
        let mut cfg = Config::with_defaults();
        assert_eq!(
            describe(&cfg),
            "echo 20/s burst 50 per source, replies 100/s burst 200, global 2000/s burst 4000, new sources 100/s burst 200, exempt 10000/s burst 20000, sources by /32 and /64, max echo size 9216 bytes, up to 65536 sources"
        );
        cfg.flags |= icmp_guard_common::config::flags::DRY_RUN;
        assert!(describe(&cfg).ends_with("65536 sources, DRY RUN (nothing dropped)"));
    }
}
