//! The tunable limits: the flags `attach` and `set` share, and how they change a [`Config`].

use clap::Args;
use icmp_guard_common::{Config, Limit, bucket::MAX_RATE, config::MAX_DATAGRAM};

use crate::Error;

/// Smallest meaningful `--max-echo-size`: an IPv4 header and an ICMP header.
pub const MIN_ECHO_SIZE: u32 = 28;

/// Limit flags; each one left out keeps its current value (on `attach`: its default).
#[derive(Args, Clone, Debug, Default)]
pub struct LimitArgs {
    /// Echo (and timestamp) requests per second allowed per source
    /// [attach default: 20]
    #[arg(long, value_name = "PPS", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RATE)))]
    pub echo_rate: Option<u32>,

    /// Echo requests a source may send back to back before the rate applies
    /// [attach default: 50]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub echo_burst: Option<u32>,

    /// Largest ICMP datagram in bytes (IP header included) for an echo, or for the reassembled
    /// end of any ICMP fragment; fragments past 65535 are always dropped
    /// [attach default: 9216]
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(i64::from(MIN_ECHO_SIZE)..=i64::from(MAX_DATAGRAM)))]
    pub max_echo_size: Option<u32>,
}

impl LimitArgs {
    /// Whether any limit was given.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.echo_rate.is_none() && self.echo_burst.is_none() && self.max_echo_size.is_none()
    }

    /// `cfg` with the given limits applied, validated as a whole.
    pub fn apply(&self, cfg: &Config) -> Result<Config, Error> {
        let rate = self.echo_rate.unwrap_or(cfg.echo.rate);
        let burst = self.echo_burst.unwrap_or(cfg.echo.burst);
        let echo = Limit::new(rate, burst).ok_or_else(|| Error::InvalidLimit {
            what: "echo limit",
            why: format!("rate {rate}/s with burst {burst}: both must be at least 1 and the rate at most {MAX_RATE}"),
        })?;
        let max_echo_size = self.max_echo_size.unwrap_or(cfg.max_echo_size);
        if !(MIN_ECHO_SIZE..=MAX_DATAGRAM).contains(&max_echo_size) {
            return Err(Error::InvalidLimit {
                what: "--max-echo-size",
                why: format!("{max_echo_size} is outside {MIN_ECHO_SIZE}..={MAX_DATAGRAM}"),
            });
        }
        Ok(Config {
            echo,
            max_echo_size,
            ..*cfg
        })
    }
}

/// One line describing the limits, for `attach`, `set` and `status`.
#[must_use]
pub fn describe(cfg: &Config) -> String {
    format!(
        "echo {}/s per source, burst {}, max echo size {} bytes",
        cfg.echo.rate, cfg.echo.burst, cfg.max_echo_size
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use icmp_guard_common::config::defaults;

    #[test]
    fn defaults_match_the_common_crate() {
        let cfg = LimitArgs::default()
            .apply(&Config::with_defaults())
            .unwrap();
        assert_eq!(cfg.echo.rate, defaults::ECHO_RATE);
        assert_eq!(cfg.echo.burst, defaults::ECHO_BURST);
        assert_eq!(cfg.max_echo_size, defaults::MAX_ECHO_SIZE);
    }

    #[test]
    fn only_given_limits_change() {
        let base = Config::with_defaults();
        let args = LimitArgs {
            echo_burst: Some(7),
            ..LimitArgs::default()
        };
        let cfg = args.apply(&base).unwrap();
        assert_eq!(cfg.echo.burst, 7);
        assert_eq!(cfg.echo.rate, base.echo.rate);
        assert_eq!(cfg.echo.interval_ns, base.echo.interval_ns);
        assert_eq!(cfg.echo.tolerance_ns, 7 * base.echo.interval_ns);
        assert_eq!(cfg.max_echo_size, base.max_echo_size);
    }

    #[test]
    fn rejects_invalid_values() {
        let base = Config::with_defaults();
        for args in [
            LimitArgs {
                echo_rate: Some(0),
                ..LimitArgs::default()
            },
            LimitArgs {
                echo_burst: Some(0),
                ..LimitArgs::default()
            },
            LimitArgs {
                echo_rate: Some(MAX_RATE + 1),
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
            assert!(args.apply(&base).is_err(), "{args:?}");
        }
    }
}
