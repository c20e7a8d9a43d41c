//! The TOML configuration shared by `attach --config FILE`, `run --config FILE` and
//! `config check FILE`: daemon settings, policy defaults, and one `[[interface]]` table per
//! guarded interface with its mode, limits and lists.
//!
//! ```toml
//! [daemon]
//! metrics = "127.0.0.1:9966"   # Prometheus /metrics; loopback unless you mean it
//! on_exit = "keep"             # or "detach": what SIGTERM does to the guards
//!
//! [defaults]                   # any limit below, for every interface
//! echo_rate = 20
//!
//! [[interface]]
//! name = "eth0"
//! mode = "auto"                # auto | native | generic
//! allow = ["192.0.2.0/24"]
//! deny = []
//! [interface.limits]
//! echo_burst = 100
//! dry_run = false
//! ```
//!
//! Validation is complete before anything is applied: every error names the file, the key
//! and the allowed range.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use icmp_guard_common::{bucket::MAX_RATE, config::MAX_DATAGRAM};
use serde::Deserialize;

use crate::{
    Error,
    cidr::Cidr,
    cli::Mode,
    iface::IfaceName,
    limits::{LimitArgs, MIN_ECHO_SIZE},
};

/// Default address of the metrics endpoint.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9966";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    defaults: RawLimits,
    #[serde(default)]
    interface: Vec<RawInterface>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    metrics: Option<String>,
    bpffs: Option<PathBuf>,
    on_exit: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    echo_rate: Option<i64>,
    echo_burst: Option<i64>,
    reply_rate: Option<i64>,
    reply_burst: Option<i64>,
    global_rate: Option<i64>,
    global_burst: Option<i64>,
    v4_prefix: Option<i64>,
    v6_prefix: Option<i64>,
    max_echo_size: Option<i64>,
    dry_run: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: String,
    mode: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    limits: RawLimits,
}

/// What SIGTERM does to the guards of a daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnExit {
    /// Leave every guard attached and enforcing (pinned).
    Keep,
    /// Detach every configured interface.
    Detach,
}

/// A validated configuration file.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub metrics: SocketAddr,
    /// `daemon.bpffs`, when the file sets it; otherwise the command line's `--bpffs` applies.
    pub bpffs: Option<PathBuf>,
    pub on_exit: OnExit,
    pub interfaces: Vec<InterfaceConfig>,
}

/// One guarded interface, validated.
#[derive(Clone, Debug)]
pub struct InterfaceConfig {
    pub name: IfaceName,
    pub mode: Mode,
    /// The policy, as flags over the defaults.
    pub limits: LimitArgs,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl ConfigFile {
    /// The bpffs to use: the file's, else the command line's.
    #[must_use]
    pub fn bpffs_or(&self, cli: &Path) -> PathBuf {
        self.bpffs.clone().unwrap_or_else(|| cli.to_path_buf())
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(Error::io("reading the config file", path))?;
        Self::parse(path, &text)
    }

    /// Validates `text` as the contents of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let fail = |message: String| Error::ConfigFile {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or_else(String::new, |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            fail(format!("{at}{}", e.message().trim()))
        })?;
        let metrics = raw.daemon.metrics.as_deref().unwrap_or(DEFAULT_METRICS);
        let metrics: SocketAddr = metrics.parse().map_err(|_| {
            fail(format!(
                "daemon.metrics: {metrics:?} is not an address:port such as {DEFAULT_METRICS}"
            ))
        })?;
        let on_exit = match raw.daemon.on_exit.as_deref() {
            None | Some("keep") => OnExit::Keep,
            Some("detach") => OnExit::Detach,
            Some(other) => {
                return Err(fail(format!(
                    "daemon.on_exit: {other:?} must be \"keep\" or \"detach\""
                )));
            }
        };
        let defaults = limits(&raw.defaults, "defaults").map_err(fail)?;
        let mut seen = BTreeSet::new();
        let mut interfaces = Vec::with_capacity(raw.interface.len());
        for (i, iface) in raw.interface.iter().enumerate() {
            let name: IfaceName = iface
                .name
                .parse()
                .map_err(|why| fail(format!("interface[{i}].name: {why}")))?;
            let at = format!("interface[{i}] ({name})");
            if !seen.insert(name.clone()) {
                return Err(fail(format!("{at}.name: {name} appears twice")));
            }
            let mode = match iface.mode.as_deref() {
                None | Some("auto") => Mode::Auto,
                Some("native") => Mode::Native,
                Some("generic") => Mode::Generic,
                Some(other) => {
                    return Err(fail(format!(
                        "{at}.mode: {other:?} must be \"auto\", \"native\" or \"generic\""
                    )));
                }
            };
            let own = limits(&iface.limits, &format!("{at}.limits")).map_err(fail)?;
            let prefixes = |list: &[String], key: &str| {
                list.iter()
                    .enumerate()
                    .map(|(j, p)| {
                        p.parse::<Cidr>()
                            .map_err(|why| fail(format!("{at}.{key}[{j}]: {why}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            interfaces.push(InterfaceConfig {
                name,
                mode,
                limits: merge(&defaults, &own),
                allow: prefixes(&iface.allow, "allow")?,
                deny: prefixes(&iface.deny, "deny")?,
            });
        }
        if interfaces.is_empty() {
            return Err(fail(
                "no [[interface]] table: name at least one interface to guard".into(),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            metrics,
            bpffs: raw.daemon.bpffs,
            on_exit,
            interfaces,
        })
    }
}

/// Checks the ranges of a limits table; `at` names it in messages.
fn limits(raw: &RawLimits, at: &str) -> Result<LimitArgs, String> {
    let check = |key: &str, value: Option<i64>, lo: i64, hi: i64| -> Result<Option<u32>, String> {
        value
            .map(|v| match u32::try_from(v) {
                Ok(v) if (lo..=hi).contains(&i64::from(v)) => Ok(v),
                _ => Err(format!("{at}.{key}: {v} is outside {lo}..={hi}")),
            })
            .transpose()
    };
    let rate = i64::from(MAX_RATE);
    let burst = i64::from(u32::MAX);
    Ok(LimitArgs {
        echo_rate: check("echo_rate", raw.echo_rate, 1, rate)?,
        echo_burst: check("echo_burst", raw.echo_burst, 1, burst)?,
        reply_rate: check("reply_rate", raw.reply_rate, 1, rate)?,
        reply_burst: check("reply_burst", raw.reply_burst, 1, burst)?,
        global_rate: check("global_rate", raw.global_rate, 1, rate)?,
        global_burst: check("global_burst", raw.global_burst, 1, burst)?,
        v4_prefix: check("v4_prefix", raw.v4_prefix, 0, 32)?,
        v6_prefix: check("v6_prefix", raw.v6_prefix, 0, 128)?,
        max_echo_size: check(
            "max_echo_size",
            raw.max_echo_size,
            i64::from(MIN_ECHO_SIZE),
            i64::from(MAX_DATAGRAM),
        )?,
        dry_run: raw.dry_run == Some(true),
        enforce: raw.dry_run == Some(false),
    })
}

/// `own` over `defaults`.
fn merge(defaults: &LimitArgs, own: &LimitArgs) -> LimitArgs {
    let explicit_mode = own.dry_run || own.enforce;
    LimitArgs {
        echo_rate: own.echo_rate.or(defaults.echo_rate),
        echo_burst: own.echo_burst.or(defaults.echo_burst),
        reply_rate: own.reply_rate.or(defaults.reply_rate),
        reply_burst: own.reply_burst.or(defaults.reply_burst),
        global_rate: own.global_rate.or(defaults.global_rate),
        global_burst: own.global_burst.or(defaults.global_burst),
        v4_prefix: own.v4_prefix.or(defaults.v4_prefix),
        v6_prefix: own.v6_prefix.or(defaults.v6_prefix),
        max_echo_size: own.max_echo_size.or(defaults.max_echo_size),
        dry_run: if explicit_mode {
            own.dry_run
        } else {
            defaults.dry_run
        },
        // Without a dry_run key anywhere the interface enforces.
        enforce: if explicit_mode {
            own.enforce
        } else {
            !defaults.dry_run
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("test.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_file() {
        let cfg = parse(
            r#"
            [daemon]
            metrics = "127.0.0.1:9100"
            on_exit = "detach"
            [defaults]
            echo_rate = 5
            dry_run = true
            [[interface]]
            name = "eth0"
            mode = "native"
            allow = ["192.0.2.0/24", "2001:db8::/48"]
            [interface.limits]
            echo_burst = 9
            [[interface]]
            name = "eth1"
            [interface.limits]
            dry_run = false
            echo_rate = 7
            "#,
        )
        .unwrap();
        assert_eq!(cfg.metrics.port(), 9100);
        assert_eq!(cfg.on_exit, OnExit::Detach);
        let eth0 = &cfg.interfaces[0];
        assert_eq!(
            (eth0.mode, eth0.limits.echo_rate, eth0.limits.echo_burst),
            (Mode::Native, Some(5), Some(9))
        );
        assert!(eth0.limits.dry_run && !eth0.limits.enforce);
        assert_eq!(eth0.allow.len(), 2);
        let eth1 = &cfg.interfaces[1];
        assert_eq!(eth1.limits.echo_rate, Some(7));
        assert!(!eth1.limits.dry_run && eth1.limits.enforce);
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_range() {
        for (text, needle) in [
            (
                "[[interface]]\nname = \"eth0\"\n[interface.limits]\necho_rate = 0",
                "interface[0] (eth0).limits.echo_rate: 0 is outside 1..=100000000",
            ),
            (
                "[[interface]]\nname = \"eth0\"\n[interface.limits]\nv4_prefix = 33",
                "v4_prefix: 33 is outside 0..=32",
            ),
            (
                "[defaults]\nv6_prefix = 129\n[[interface]]\nname = \"eth0\"",
                "defaults.v6_prefix: 129 is outside 0..=128",
            ),
            (
                "[[interface]]\nname = \"eth0\"\nallow = [\"198.51.100.7/24\"]",
                "interface[0] (eth0).allow[0]: \"198.51.100.7/24\" has host bits set",
            ),
            (
                "[[interface]]\nname = \"eth0\"\nmode = \"turbo\"",
                "mode: \"turbo\" must be",
            ),
            (
                "[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth0\"",
                "eth0 appears twice",
            ),
            (
                "[[interface]]\nname = \"eth0\"\nechorate = 5",
                "unknown field `echorate`",
            ),
            (
                "[daemon]\nmetrics = \"localhost\"\n[[interface]]\nname = \"eth0\"",
                "daemon.metrics",
            ),
            (
                "[[interface]]\nname = \"..\"",
                "interface[0].name: \"..\" is not a valid interface name",
            ),
            (
                "[[interface]]\nname = \"../../etc\"",
                "interface[0].name: \"../../etc\" is not a valid interface name",
            ),
            (
                "[[interface]]\nname = \"eth0\\nfake: line\"",
                r#"interface[0].name: "eth0\nfake: line" is not"#,
            ),
            ("", "no [[interface]] table"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("test.toml"), "{err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
