//! The tunable policy: the flags `attach` and `set` share, and how they change a [`Config`].

use clap::Args;
use icmp_guard_common::{
    Config, Limit,
    bucket::MAX_RATE,
    config::{MAX_DATAGRAM, flags, prefix_mask},
};

use crate::Error;

/// Smallest meaningful `--max-echo-size`: an IPv4 header and an ICMP header.
pub const MIN_ECHO_SIZE: u32 = 28;

/// Policy flags; each one left out keeps its current value (on `attach`: its default).
#[derive(Args, Clone, Debug, Default)]
pub struct LimitArgs {
    /// Echo (and timestamp) requests per second allowed per source prefix
    /// [attach default: 20]
    #[arg(long, value_name = "PPS", value_parser = rate_parser())]
    pub echo_rate: Option<u32>,

    /// Echo requests a source prefix may send back to back [attach default: 50]
    #[arg(long, value_name = "N", value_parser = burst_parser())]
    pub echo_burst: Option<u32>,

    /// Echo replies per second allowed per source prefix: cuts reflected (Smurf) floods
    /// [attach default: 100]
    #[arg(long, value_name = "PPS", value_parser = rate_parser())]
    pub reply_rate: Option<u32>,

    /// Echo replies a source prefix may send back to back [attach default: 200]
    #[arg(long, value_name = "N", value_parser = burst_parser())]
    pub reply_burst: Option<u32>,

    /// Metered ICMP per second from all sources together (split evenly over the CPUs)
    /// [attach default: 2000]
    #[arg(long, value_name = "PPS", value_parser = rate_parser())]
    pub global_rate: Option<u32>,

    /// Metered ICMP from all sources that may arrive back to back [attach default: 4000]
    #[arg(long, value_name = "N", value_parser = burst_parser())]
    pub global_burst: Option<u32>,

    /// IPv4 sources share one bucket per prefix of this length [attach default: 32]
    #[arg(long, value_name = "LEN", value_parser = clap::value_parser!(u32).range(0..=32))]
    pub v4_prefix: Option<u32>,

    /// IPv6 sources share one bucket per prefix of this length [attach default: 64]
    #[arg(long, value_name = "LEN", value_parser = clap::value_parser!(u32).range(0..=128))]
    pub v6_prefix: Option<u32>,

    /// Largest ICMP datagram in bytes (IP header included) for an echo, or for the reassembled
    /// end of any ICMP fragment; fragments past 65535 are always dropped
    /// [attach default: 9216]
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(i64::from(MIN_ECHO_SIZE)..=i64::from(MAX_DATAGRAM)))]
    pub max_echo_size: Option<u32>,

    /// Count every verdict but drop nothing
    #[arg(long, conflicts_with = "enforce")]
    pub dry_run: bool,

    /// Drop what the policy drops (the default; ends a dry run)
    #[arg(long)]
    pub enforce: bool,
}

fn rate_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_RATE))
}

fn burst_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..)
}

impl LimitArgs {
    /// Whether any flag was given.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.echo_rate.is_none()
            && self.echo_burst.is_none()
            && self.reply_rate.is_none()
            && self.reply_burst.is_none()
            && self.global_rate.is_none()
            && self.global_burst.is_none()
            && self.v4_prefix.is_none()
            && self.v6_prefix.is_none()
            && self.max_echo_size.is_none()
            && !self.dry_run
            && !self.enforce
    }

    /// `cfg` with the given flags applied, validated as a whole; `cpus` is the number of CPUs
    /// the global budget is split over.
    pub fn apply(&self, cfg: &Config, cpus: u32) -> Result<Config, Error> {
        let limit = |what: &'static str, rate: Option<u32>, burst: Option<u32>, old: &Limit| {
            let (rate, burst) = (rate.unwrap_or(old.rate), burst.unwrap_or(old.burst));
            Limit::new(rate, burst).ok_or_else(|| Error::InvalidLimit {
                what,
                why: format!("rate {rate}/s with burst {burst}: both must be at least 1 and the rate at most {MAX_RATE}"),
            })
        };
        let echo = limit("echo limit", self.echo_rate, self.echo_burst, &cfg.echo)?;
        let reply = limit("reply limit", self.reply_rate, self.reply_burst, &cfg.reply)?;
        let global_rate = self.global_rate.unwrap_or(cfg.global_rate);
        let global_burst = self.global_burst.unwrap_or(cfg.global_burst);
        let global_per_cpu =
            Limit::per_cpu(global_rate, global_burst, cpus).ok_or_else(|| Error::InvalidLimit {
                what: "global limit",
                why: format!("rate {global_rate}/s with burst {global_burst} over {cpus} CPUs"),
            })?;
        let v4_prefix = self.v4_prefix.unwrap_or(cfg.v4_prefix);
        let v6_prefix = self.v6_prefix.unwrap_or(cfg.v6_prefix);
        if v4_prefix > 32 || v6_prefix > 128 {
            return Err(Error::InvalidLimit {
                what: "prefix length",
                why: format!("/{v4_prefix} (IPv4, at most 32) or /{v6_prefix} (IPv6, at most 128)"),
            });
        }
        let max_echo_size = self.max_echo_size.unwrap_or(cfg.max_echo_size);
        if !(MIN_ECHO_SIZE..=MAX_DATAGRAM).contains(&max_echo_size) {
            return Err(Error::InvalidLimit {
                what: "--max-echo-size",
                why: format!("{max_echo_size} is outside {MIN_ECHO_SIZE}..={MAX_DATAGRAM}"),
            });
        }
        let mut cfg_flags = cfg.flags;
        if self.dry_run {
            cfg_flags |= flags::DRY_RUN;
        }
        if self.enforce {
            cfg_flags &= !flags::DRY_RUN;
        }
        Ok(Config {
            echo,
            reply,
            global_per_cpu,
            global_rate,
            global_burst,
            v4_mask: prefix_mask(96 + v4_prefix),
            v6_mask: prefix_mask(v6_prefix),
            v4_prefix,
            v6_prefix,
            max_echo_size,
            flags: cfg_flags,
            ..*cfg
        })
    }
}

/// One line describing the policy, for `attach`, `set` and `status`.
#[must_use]
pub fn describe(cfg: &Config) -> String {
    format!(
        "echo {}/s burst {} per source, replies {}/s burst {}, global {}/s burst {}, sources by /{} and /{}, max echo size {} bytes{}",
        cfg.echo.rate,
        cfg.echo.burst,
        cfg.reply.rate,
        cfg.reply.burst,
        cfg.global_rate,
        cfg.global_burst,
        cfg.v4_prefix,
        cfg.v6_prefix,
        cfg.max_echo_size,
        if cfg.dry_run() {
            ", DRY RUN (nothing dropped)"
        } else {
            ""
        }
    )
}

/// CPUs that process packets, over which the global budget is split.
#[must_use]
pub fn online_cpus() -> u32 {
    aya::util::online_cpus().map_or(1, |cpus| cpus.len().max(1) as u32)
}

#[cfg(test)]
mod tests {
    use icmp_guard_common::config::defaults;

    use super::*;

    #[test]
    fn defaults_match_the_common_crate() {
        let cfg = LimitArgs::default()
            .apply(&Config::with_defaults(2), 2)
            .unwrap();
        assert_eq!(cfg, Config::with_defaults(2));
        assert_eq!(cfg.echo.rate, defaults::ECHO_RATE);
        assert_eq!(cfg.global_per_cpu.rate, defaults::GLOBAL_RATE / 2);
        assert!(!cfg.dry_run());
    }

    #[test]
    fn only_given_flags_change() {
        let base = Config::with_defaults(1);
        let args = LimitArgs {
            echo_burst: Some(7),
            v4_prefix: Some(24),
            dry_run: true,
            ..LimitArgs::default()
        };
        let cfg = args.apply(&base, 1).unwrap();
        assert_eq!(cfg.echo.burst, 7);
        assert_eq!(cfg.echo.rate, base.echo.rate);
        assert_eq!(cfg.echo.tolerance_ns, 7 * base.echo.interval_ns);
        assert_eq!(cfg.reply, base.reply);
        assert_eq!(cfg.v4_mask, prefix_mask(120));
        assert_eq!(cfg.v6_mask, base.v6_mask);
        assert!(cfg.dry_run());
        let back = LimitArgs {
            enforce: true,
            ..LimitArgs::default()
        }
        .apply(&cfg, 1)
        .unwrap();
        assert!(!back.dry_run());
        assert_eq!(back.echo.burst, 7);
    }

    #[test]
    fn global_budget_is_split_over_cpus() {
        let args = LimitArgs {
            global_rate: Some(1000),
            global_burst: Some(3),
            ..LimitArgs::default()
        };
        let cfg = args.apply(&Config::with_defaults(4), 4).unwrap();
        assert_eq!((cfg.global_rate, cfg.global_burst), (1000, 3));
        assert_eq!(
            (cfg.global_per_cpu.rate, cfg.global_per_cpu.burst),
            (250, 1)
        );
    }

    #[test]
    fn rejects_invalid_values() {
        let base = Config::with_defaults(1);
        for args in [
            LimitArgs {
                echo_rate: Some(0),
                ..LimitArgs::default()
            },
            LimitArgs {
                reply_burst: Some(0),
                ..LimitArgs::default()
            },
            LimitArgs {
                global_rate: Some(MAX_RATE + 1),
                ..LimitArgs::default()
            },
            LimitArgs {
                v4_prefix: Some(33),
                ..LimitArgs::default()
            },
            LimitArgs {
                v6_prefix: Some(129),
                ..LimitArgs::default()
            },
            LimitArgs {
                max_echo_size: Some(MIN_ECHO_SIZE - 1),
                ..LimitArgs::default()
            },
            LimitArgs {
                max_echo_size: Some(MAX_DATAGRAM + 1),
                ..LimitArgs::default()
            },
        ] {
            assert!(args.apply(&base, 1).is_err(), "{args:?}");
        }
    }
}
