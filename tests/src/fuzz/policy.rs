//! The policy both sides judge by: limits as the CLI accepts them (every knob in its range,
//! checked and derived for the clock's tick by the CLI's own [`Overrides::apply`]), the
//! recently-seen filter's seed, and allow and deny lists parsed by the CLI's [`Cidr`].

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result};
use icmp_guard::policy::{Cidr, KNOBS, Knob, Overrides};
use icmp_guard_common::Config;

use super::{
    mutate::{any_v4, any_v6},
    rng::Rng,
};
use crate::fixtures::Case;

/// The knob fixed when a guard's maps are created (the source table's capacity): the
/// program under test keeps the capacity it was loaded with, so no policy changes it.
const FIXED_AT_ATTACH: &str = "max_sources";

/// Prefixes on each list at most.
const MAX_LIST: u64 = 4;

/// Limits, seed and lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// A value for every knob but [`FIXED_AT_ATTACH`], and dry-run on or off.
    pub limits: Overrides,
    pub seen_seed: u64,
    /// The clock tick the limits are derived for: the program's, `clock_tick_ns()`.
    pub tick_ns: u64,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl Policy {
    /// The config the CLI would write for this policy (list sizes aside, which the writer
    /// records).
    pub fn config(&self) -> Result<Config> {
        let mut config = self
            .limits
            .apply(&Config::with_defaults(), self.tick_ns)
            .context("the fuzzer's policy is one the CLI accepts")?;
        config.seen_seed = self.seen_seed;
        Ok(config)
    }

    /// Random limits, each drawn from its knob's range (edges and small values more often,
    /// so buckets run dry within a batch), dry-run one time in eight, and lists of zero to
    /// [`MAX_LIST`] prefixes.
    pub fn random(rng: &mut Rng, tick_ns: u64) -> Self {
        loop {
            let mut limits = Overrides::default();
            limits.dry_run = Some(rng.one_in(8));
            for knob in tunable() {
                limits.set(knob, draw(rng, knob));
            }
            let policy = Self {
                limits,
                seen_seed: rng.next_u64(),
                tick_ns,
                allow: list(rng),
                deny: list(rng),
            };
            // About half the draws give twice the admission rate at or over the global rate,
            // which the CLI refuses: draw again.
            if policy.config().is_ok() {
                return policy;
            }
        }
    }

    /// The limits and lists of a fixture row, with a random seed; where the CLI would refuse
    /// the row's limits, they are moved just enough: into the knob's range (the rows of the
    /// exempt budget go below its floor), and the global rate above twice the admission rate.
    pub fn of_case(case: &Case, rng: &mut Rng, tick_ns: u64) -> Self {
        let mut limits = Overrides::default();
        limits.dry_run = Some(case.config.dry_run());
        for knob in tunable() {
            limits.set(knob, (knob.get)(&case.config).clamp(knob.min, knob.max));
        }
        let mut policy = Self {
            limits,
            seen_seed: rng.next_u64(),
            tick_ns,
            allow: case.allow.clone(),
            deny: case.deny.clone(),
        };
        if policy.config().is_err() {
            let global = KNOBS.iter().find(|k| k.name == "global_rate");
            if let Some(global) = global {
                let floor = 2 * case.config.new_source.rate + 1;
                policy
                    .limits
                    .set(global, floor.max(case.config.global.rate));
            }
        }
        policy
    }
}

/// The knobs a policy sets.
fn tunable() -> impl Iterator<Item = &'static Knob> {
    KNOBS.iter().filter(|k| k.name != FIXED_AT_ATTACH)
}

/// A value of `knob`: its minimum, default or maximum, a small value, or any in range.
fn draw(rng: &mut Rng, knob: &Knob) -> u32 {
    let (min, max) = (u64::from(knob.min), u64::from(knob.max));
    let value = match rng.below(8) {
        0 => min,
        1 => u64::from(knob.default),
        2 => max,
        3 => rng.between(min, max.min(min + 8)),
        4 => rng.between(min, max.min(100)),
        5 => rng.between(min, max.min(10_000)),
        _ => rng.between(min, max),
    };
    value as u32
}

/// Zero (half the time) to [`MAX_LIST`] prefixes, without duplicates.
fn list(rng: &mut Rng) -> Vec<Cidr> {
    let mut out: Vec<Cidr> = Vec::new();
    if rng.one_in(2) {
        return out;
    }
    for _ in 0..rng.between(1, MAX_LIST) {
        let cidr = prefix(rng);
        if !out.contains(&cidr) {
            out.push(cidr);
        }
    }
    out
}

/// A prefix as an operator would type it, parsed by the CLI's parser: around an address the
/// frames use, of a common or random length. The CLI refuses IPv6 prefixes that contain the
/// IPv4-mapped range (they would cover IPv4 too): those are drawn again.
pub fn prefix(rng: &mut Rng) -> Cidr {
    loop {
        let text = if rng.one_in(2) {
            let any = rng.between(0, 32) as u32;
            let len = *rng.pick(&[32, 24, 16, 0, any]);
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            let net = u32::from_be_bytes(any_v4(rng)) & mask;
            format!("{}/{len}", Ipv4Addr::from(net))
        } else {
            let any = rng.between(0, 128) as u32;
            let len = *rng.pick(&[128, 64, 48, 96, 8, 0, any]);
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            let net = u128::from_be_bytes(any_v6(rng)) & mask;
            format!("{}/{len}", Ipv6Addr::from(net))
        };
        match text.parse() {
            Ok(cidr) => return cidr,
            Err(e) if e.contains("would also match every IPv4 source") => {}
            Err(e) => panic!("{text}: a masked prefix parses: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cases;

    #[test]
    fn random_policies_are_valid_and_vary() {
        let mut rng = Rng::new(11);
        let policies: Vec<Policy> = (0..200)
            .map(|_| Policy::random(&mut rng, 4_000_000))
            .collect();
        let configs: Vec<Config> = policies.iter().map(|p| p.config().unwrap()).collect();
        let smallest_burst = configs.iter().map(|c| c.echo.burst).min();
        assert_eq!(smallest_burst, Some(1));
        assert!(configs.iter().any(Config::dry_run));
        assert!(configs.iter().any(|c| !c.dry_run()));
        assert!(policies.iter().any(|p| !p.allow.is_empty()));
        assert!(policies.iter().any(|p| p.deny.is_empty()));
        assert!(
            configs
                .iter()
                .all(|c| c.max_sources == Config::with_defaults().max_sources)
        );
    }

    #[test]
    fn every_fixture_row_gives_a_valid_policy_with_its_lists() {
        let mut rng = Rng::new(5);
        for case in cases() {
            let policy = Policy::of_case(&case, &mut rng, 4_000_000);
            let config = policy
                .config()
                .unwrap_or_else(|e| panic!("{}: {e:#}", case.what));
            assert_eq!(config.echo.rate, case.config.echo.rate, "{}", case.what);
            assert_eq!(config.echo.burst, case.config.echo.burst, "{}", case.what);
            assert_eq!(config.dry_run(), case.config.dry_run(), "{}", case.what);
            assert_eq!((&policy.allow, &policy.deny), (&case.allow, &case.deny));
        }
    }
}
