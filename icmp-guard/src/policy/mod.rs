//! The tunable policy: the knobs ([`knobs`]), the values a command or a file gives for them
//! ([`Overrides`]), and how they change the program's [`Config`]. CIDR prefixes for the
//! allow and deny lists are in [`cidr`].

pub mod cidr;
pub mod knobs;

use std::collections::BTreeMap;

use clap::{Arg, ArgAction, ArgMatches, Command};
use icmp_guard_common::{Config, config::flags};

pub use self::{
    cidr::Cidr,
    knobs::{KNOBS, Knob, describe},
};
use crate::Error;

/// The knob values a command line or a config file gives; each one left out keeps its
/// current value (on `attach`: its default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// By knob name.
    values: BTreeMap<&'static str, u32>,
    /// `Some(true)`: count every verdict but drop nothing; `Some(false)`: enforce; `None`:
    /// leave as it is.
    pub dry_run: Option<bool>,
}

impl Overrides {
    /// The value given for `knob`, if any.
    #[must_use]
    pub fn get(&self, knob: &Knob) -> Option<u32> {
        self.values.get(knob.name).copied()
    }

    /// Gives `value` for `knob`.
    pub fn set(&mut self, knob: &Knob, value: u32) {
        self.values.insert(knob.name, value);
    }

    /// The knobs given, with their values.
    pub fn given(&self) -> impl Iterator<Item = (&'static Knob, u32)> + '_ {
        KNOBS
            .iter()
            .filter_map(|knob| self.get(knob).map(|value| (knob, value)))
    }

    /// Whether nothing was given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.given().next().is_none() && self.dry_run.is_none()
    }

    /// `self` over `defaults`: what `self` gives, else what `defaults` gives.
    #[must_use]
    pub fn over(&self, defaults: &Self) -> Self {
        let mut out = defaults.clone();
        for (knob, value) in self.given() {
            out.set(knob, value);
        }
        out.dry_run = self.dry_run.or(defaults.dry_run);
        out
    }

    /// `cfg` with these values applied and its derived fields recomputed for a clock that
    /// steps every `tick_ns`, validated as a whole.
    pub fn apply(&self, cfg: &Config, tick_ns: u64) -> Result<Config, Error> {
        let mut out = *cfg;
        for (knob, value) in self.given() {
            let value = knob
                .accept(i64::from(value))
                .map_err(|why| Error::InvalidLimit {
                    what: knob.name,
                    why,
                })?;
            (knob.set)(&mut out, value);
        }
        match self.dry_run {
            Some(true) => out.flags |= flags::DRY_RUN,
            Some(false) => out.flags &= !flags::DRY_RUN,
            None => {}
        }
        // Spoofed sources can take the admission budgets of both classes from the global
        // budget; the sources already known must keep the rest.
        if 2 * u64::from(out.new_source.rate) >= u64::from(out.global.rate) {
            return Err(Error::InvalidLimit {
                what: "new_source_rate",
                why: format!(
                    "{} per class, twice that ({}) must stay below global_rate ({}): a flood of \
                     spoofed sources takes up to that much of the global budget, and the \
                     sources already known need the rest; lower new_source_rate or raise \
                     global_rate (--new-source-rate, --global-rate)",
                    out.new_source.rate,
                    2 * u64::from(out.new_source.rate),
                    out.global.rate
                ),
            });
        }
        out.derive(tick_ns).ok_or_else(|| Error::InvalidLimit {
            what: "policy",
            why: format!("{} is not a valid policy", describe(&out)),
        })
    }

    /// Every flag `set` accepts, for the message when none is given.
    #[must_use]
    pub fn flags() -> String {
        let mut all: Vec<String> = KNOBS.iter().map(Knob::flag).collect();
        all.extend(["--dry-run".to_owned(), "--enforce".to_owned()]);
        all.join(", ")
    }
}

/// Refuses a change to a value fixed when the guard's maps were created: the per-source
/// table's capacity.
pub fn check_fixed(
    iface: &crate::kernel::IfaceName,
    current: &Config,
    wanted: &Config,
) -> Result<(), Error> {
    if current.max_sources == wanted.max_sources {
        return Ok(());
    }
    Err(Error::FixedAtAttach {
        iface: iface.as_str().to_owned(),
        knob: "max_sources",
        current: current.max_sources,
        wanted: wanted.max_sources,
    })
}

/// What a change of source prefix length does, for the operator: `None` when neither changes.
#[must_use]
pub fn prefix_note(
    iface: &crate::kernel::IfaceName,
    current: &Config,
    wanted: &Config,
) -> Option<String> {
    let changed: Vec<String> = [
        ("v4_prefix", current.v4_prefix, wanted.v4_prefix),
        ("v6_prefix", current.v6_prefix, wanted.v6_prefix),
    ]
    .into_iter()
    .filter(|(_, old, new)| old != new)
    .map(|(knob, old, new)| format!("{knob} /{old} -> /{new}"))
    .collect();
    (!changed.is_empty()).then(|| {
        format!(
            "{iface}: {}: the sources tracked under the old prefix were removed with their \
             buckets and counts; they start afresh, as new sources",
            changed.join(", ")
        )
    })
}

const DRY_RUN_ID: &str = "dry_run";
const ENFORCE_ID: &str = "enforce";

/// The knobs as flags, one per row of [`KNOBS`], plus `--dry-run` and `--enforce`.
impl clap::Args for Overrides {
    fn augment_args(mut cmd: Command) -> Command {
        for knob in &KNOBS {
            cmd = cmd.arg(
                Arg::new(knob.name)
                    .long(knob.name.replace('_', "-"))
                    .value_name(knob.value_name)
                    .value_parser(
                        clap::value_parser!(u32).range(i64::from(knob.min)..=i64::from(knob.max)),
                    )
                    .help(format!("{} [attach default: {}]", knob.help, knob.default)),
            );
        }
        cmd.arg(
            Arg::new(DRY_RUN_ID)
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .conflicts_with(ENFORCE_ID)
                .help("Count every verdict but drop nothing"),
        )
        .arg(
            Arg::new(ENFORCE_ID)
                .long("enforce")
                .action(ArgAction::SetTrue)
                .help("Drop what the policy drops (the default; ends a dry run)"),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut out = Self::default();
        for knob in &KNOBS {
            if let Some(value) = matches.get_one::<u32>(knob.name) {
                out.set(knob, *value);
            }
        }
        out.dry_run = if matches.get_flag(DRY_RUN_ID) {
            Some(true)
        } else if matches.get_flag(ENFORCE_ID) {
            Some(false)
        } else {
            None
        };
        Ok(out)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use icmp_guard_common::{
        bucket::MAX_RATE,
        config::{MAX_DATAGRAM, defaults, prefix_mask},
    };

    use super::{knobs::MIN_ECHO_SIZE, *};

    fn given(pairs: &[(&str, u32)], dry_run: Option<bool>) -> Overrides {
        let mut out = Overrides {
            dry_run,
            ..Overrides::default()
        };
        for &(name, value) in pairs {
            out.set(knobs::by_name(name).unwrap(), value);
        }
        out
    }

    #[test]
    fn defaults_match_the_common_crate() {
        let cfg = Overrides::default()
            .apply(&Config::with_defaults(), 0)
            .unwrap();
        assert_eq!(cfg, Config::with_defaults());
        assert_eq!(cfg.echo.rate, defaults::ECHO_RATE);
        assert_eq!(cfg.global.rate, defaults::GLOBAL_RATE);
        assert!(!cfg.dry_run());
    }

    #[test]
    fn only_given_values_change() {
        let base = Config::with_defaults();
        let args = given(&[("echo_burst", 7), ("v4_prefix", 24)], Some(true));
        let cfg = args.apply(&base, 0).unwrap();
        assert_eq!(cfg.echo.burst, 7);
        assert_eq!(cfg.echo.rate, base.echo.rate);
        assert_eq!(cfg.echo.tolerance_ns, 7 * base.echo.interval_ns);
        assert_eq!(cfg.reply, base.reply);
        assert_eq!(cfg.v4_mask, prefix_mask(120));
        assert_eq!(cfg.v6_mask, base.v6_mask);
        assert!(cfg.dry_run());
        let back = given(&[], Some(false)).apply(&cfg, 0).unwrap();
        assert!(!back.dry_run());
        assert_eq!(back.echo.burst, 7);
    }

    #[test]
    fn limits_are_derived_for_the_clock_tick() {
        // burst 1 at 1000/s on a 4 ms clock: the tolerance covers an interval and a tick.
        let args = given(&[("echo_rate", 1000), ("echo_burst", 1)], None);
        let cfg = args.apply(&Config::with_defaults(), 4_000_000).unwrap();
        assert_eq!(cfg.echo.interval_ns, 1_000_000);
        assert_eq!(cfg.echo.tolerance_ns, 5_000_000);
        // A tolerance already longer than that is kept.
        assert_eq!(cfg.reply.tolerance_ns, 200 * 10_000_000);
    }

    #[test]
    fn admission_must_leave_room_in_the_global_budget() {
        for (new, global, ok) in [(100, 2000, true), (999, 2000, true), (1000, 2000, false)] {
            let args = given(&[("new_source_rate", new), ("global_rate", global)], None);
            let result = args.apply(&Config::with_defaults(), 0);
            assert_eq!(result.is_ok(), ok, "{new} {global}");
            if let Err(e) = result {
                let text = e.to_string();
                assert!(
                    text.contains("new_source_rate") && text.contains("--global-rate"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn rejects_invalid_values() {
        let base = Config::with_defaults();
        for (name, value) in [
            ("echo_rate", 0),
            ("reply_burst", 0),
            ("global_rate", MAX_RATE + 1),
            ("v4_prefix", 33),
            ("v6_prefix", 129),
            ("max_echo_size", MIN_ECHO_SIZE - 1),
            ("max_echo_size", MAX_DATAGRAM + 1),
        ] {
            let err = given(&[(name, value)], None).apply(&base, 0).unwrap_err();
            assert!(err.to_string().contains(name), "{name} {value}: {err}");
        }
    }

    #[test]
    fn a_file_entry_over_the_defaults() {
        let defaults = given(&[("echo_rate", 5), ("echo_burst", 9)], Some(true));
        let own = given(&[("echo_burst", 3)], None);
        let merged = own.over(&defaults);
        assert_eq!(
            merged,
            given(&[("echo_rate", 5), ("echo_burst", 3)], Some(true))
        );
        assert_eq!(given(&[], Some(false)).over(&defaults).dry_run, Some(false));
    }
}
