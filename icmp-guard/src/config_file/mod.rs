//! The TOML configuration shared by `attach --config FILE`, `run --config FILE` and
//! `config check FILE`: daemon settings, policy defaults, and one `[[interface]]` table per
//! guarded interface with its mode, limits and lists.
//!
//! ```toml
//! [daemon]
//! metrics = "127.0.0.1:9966"   # Prometheus /metrics; loopback unless metrics_public
//! metrics_public = false       # true: serve it beyond loopback (no TLS, no auth)
//! metrics_source_labels = false # true: top sources' series name the source (churns)
//! on_exit = "keep"             # or "detach": what SIGTERM does to the guards
//!
//! [defaults]                   # any limit below, for every interface
//! echo_rate = 20
//!
//! [[interface]]
//! name = "eth0"
//! mode = "auto"                # auto | native (or drv) | generic (or skb)
//! allow = ["192.0.2.0/24"]
//! deny = []
//! [interface.limits]
//! echo_burst = 100
//! dry_run = false
//! ```
//!
//! Validation is complete before anything is applied: every error names the file, the key
//! and the allowed range.

pub mod apply;

use std::{
    collections::BTreeSet,
    io::Read as _,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use icmp_guard_common::maps::LIST_MAX_ENTRIES;
use serde::Deserialize;

use crate::{
    Error,
    error::shown,
    kernel::{AttachMode, IfaceName},
    policy::{Cidr, KNOBS, Overrides, knobs},
};

/// The key of the tri-state dry-run in a limits table.
const DRY_RUN_KEY: &str = "dry_run";

/// The most bytes a configuration file may hold: 1 MiB, room for every interface with two
/// full lists (2 x 4096 prefixes of about 40 bytes each is 330 KiB).
pub const MAX_BYTES: u64 = 1 << 20;

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
    metrics_public: Option<bool>,
    metrics_source_labels: Option<bool>,
    bpffs: Option<PathBuf>,
    on_exit: Option<String>,
}

/// A limits table (`[defaults]`, `[interface.limits]`): checked key by key against the
/// knob table, so a new knob needs no change here.
type RawLimits = toml::Table;

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
    /// `daemon.metrics_source_labels`: whether the top sources' series carry the source
    /// address as a label (off by default: under spoofed floods it would mint a new series
    /// for every address an attacker picks).
    pub metrics_source_labels: bool,
    /// `daemon.bpffs`, when the file sets it; otherwise the command line's `--bpffs` applies.
    pub bpffs: Option<PathBuf>,
    pub on_exit: OnExit,
    pub interfaces: Vec<InterfaceConfig>,
}

/// One guarded interface, validated.
#[derive(Clone, Debug)]
pub struct InterfaceConfig {
    pub name: IfaceName,
    pub mode: AttachMode,
    /// The policy, as values over the defaults.
    pub limits: Overrides,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl ConfigFile {
    /// The bpffs to use: the file's, else the command line's.
    #[must_use]
    pub fn bpffs_or(&self, cli: &Path) -> PathBuf {
        self.bpffs.clone().unwrap_or_else(|| cli.to_path_buf())
    }

    /// Reads and validates `path`: a regular file of at most [`MAX_BYTES`]. A device, a
    /// FIFO or a folder is refused before it is read (`/dev/zero` was read without end), and
    /// so is a longer file (the read stops one byte past the cap).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let fail = |message: String| Error::ConfigFile {
            path: path.to_path_buf(),
            message,
        };
        // O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(Error::io("reading the config file", path))?;
        let meta = file
            .metadata()
            .map_err(Error::io("reading the config file", path))?;
        let kind = meta.file_type();
        let not_regular = if kind.is_dir() {
            Some("a folder")
        } else if kind.is_char_device() {
            Some("a character device")
        } else if kind.is_block_device() {
            Some("a block device")
        } else if kind.is_fifo() {
            Some("a FIFO")
        } else if kind.is_socket() {
            Some("a socket")
        } else if !kind.is_file() {
            Some("not a regular file")
        } else {
            None
        };
        if let Some(kind) = not_regular {
            return Err(fail(format!(
                "is {kind}, not a regular file: pass the path of a TOML file"
            )));
        }
        let too_long = |len: u64| {
            fail(format!(
                "is {len} bytes or more, over the {MAX_BYTES} bytes (1 MiB) a config file may hold; list fewer, shorter prefixes"
            ))
        };
        if meta.len() > MAX_BYTES {
            return Err(too_long(meta.len()));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading the config file", path))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(too_long(bytes.len() as u64));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(format!(
                "is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
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
            fail(format!("{at}{}", shown(e.message().trim())))
        })?;
        let metrics = raw.daemon.metrics.as_deref().unwrap_or(DEFAULT_METRICS);
        let metrics: SocketAddr = metrics.parse().map_err(|_| {
            fail(format!(
                "daemon.metrics: {metrics:?} is not an address:port such as {DEFAULT_METRICS}"
            ))
        })?;
        metrics_exposure(metrics, raw.daemon.metrics_public.unwrap_or(false)).map_err(fail)?;
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
                None => AttachMode::Auto,
                Some(name) => AttachMode::requested(name).ok_or_else(|| {
                    fail(format!(
                        "{at}.mode: {name:?} must be {}",
                        AttachMode::spellings()
                    ))
                })?,
            };
            let own = limits(&iface.limits, &format!("{at}.limits")).map_err(fail)?;
            // Each list fits its map (`LIST_MAX_ENTRIES`), counted without repeats, so that
            // a file that passes `config check` never fails half applied.
            let prefixes = |list: &[String], key: &str| {
                let unique = list
                    .iter()
                    .enumerate()
                    .map(|(j, p)| {
                        p.parse::<Cidr>()
                            .map_err(|why| fail(format!("{at}.{key}[{j}]: {why}")))
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?;
                if unique.len() > LIST_MAX_ENTRIES as usize {
                    return Err(fail(format!(
                        "{at}.{key}: {} prefixes, more than the {LIST_MAX_ENTRIES} a list holds; merge them into shorter prefixes",
                        unique.len()
                    )));
                }
                Ok(unique.into_iter().collect::<Vec<_>>())
            };
            let ic = InterfaceConfig {
                name,
                mode,
                limits: own.over(&defaults),
                allow: prefixes(&iface.allow, "allow")?,
                deny: prefixes(&iface.deny, "deny")?,
            };
            // The limits must also make a valid policy together (twice the admission rate
            // below the global rate, what the clock can honour): checked here, before a start
            // or a reload changes anything, not when the interface's turn comes.
            apply::policy(&ic).map_err(|e| fail(format!("{at}.limits: {e}")))?;
            interfaces.push(ic);
        }
        if interfaces.is_empty() {
            return Err(fail(
                "no [[interface]] table: name at least one interface to guard".into(),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            metrics,
            metrics_source_labels: raw.daemon.metrics_source_labels.unwrap_or(false),
            bpffs: raw.daemon.bpffs,
            on_exit,
            interfaces,
        })
    }
}

/// The key that lets the metrics endpoint listen beyond loopback.
pub const METRICS_PUBLIC_KEY: &str = "daemon.metrics_public";

/// Refuses a metrics address beyond loopback unless the file opts in with
/// `daemon.metrics_public = true`: the endpoint has no TLS and no authentication, so it is
/// served only to this host unless the operator says otherwise (and protects it).
fn metrics_exposure(addr: SocketAddr, public: bool) -> Result<(), String> {
    if addr.port() == 0 {
        return Err(format!(
            "daemon.metrics: {addr} has port 0, which binds a port of the kernel's choosing that no scraper can be told; name one, such as {DEFAULT_METRICS}"
        ));
    }
    if public || addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "daemon.metrics: {addr} is not a loopback address, and /metrics has no TLS and no authentication: any host that reaches port {} here can read it; bind it to 127.0.0.1 or [::1] and publish it through a reverse proxy with TLS and basic auth, or, if a firewall or the network already protects it, set {METRICS_PUBLIC_KEY} = true",
        addr.port()
    ))
}

/// Checks a limits table against the knob table; `at` names it in messages.
fn limits(raw: &RawLimits, at: &str) -> Result<Overrides, String> {
    let mut out = Overrides::default();
    for (key, value) in raw {
        if key == DRY_RUN_KEY {
            out.dry_run = Some(value.as_bool().ok_or_else(|| {
                format!("{at}.{key}: {} must be true or false", value_shown(value))
            })?);
            continue;
        }
        let Some(knob) = knobs::by_name(key) else {
            let known: Vec<&str> = KNOBS.iter().map(|k| k.name).collect();
            return Err(format!(
                "{at}: unknown field `{}`, expected one of {}, {DRY_RUN_KEY}",
                shown(key),
                known.join(", ")
            ));
        };
        let number = value.as_integer().ok_or_else(|| {
            format!(
                "{at}.{key}: {} must be a whole number of {}",
                value_shown(value),
                knob.unit
            )
        })?;
        let value = knob
            .accept(number)
            .map_err(|why| format!("{at}.{key}: {why}"))?;
        out.set(knob, value);
    }
    Ok(out)
}

/// A TOML value as a message shows it.
fn value_shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("a {}", other.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("test.toml"), text).map_err(|e| e.to_string())
    }

    /// (the file's `mode`, the mode attached): the names and the kernel's aliases, as
    /// `--mode` takes them.
    #[test]
    fn modes_are_spelled_as_on_the_command_line() {
        for (mode, wanted) in [
            (None, AttachMode::Auto),
            (Some("auto"), AttachMode::Auto),
            (Some("native"), AttachMode::Native),
            (Some("drv"), AttachMode::Native),
            (Some("generic"), AttachMode::Generic),
            (Some("skb"), AttachMode::Generic),
        ] {
            let line = mode.map_or_else(String::new, |m| format!("mode = {m:?}"));
            let cfg = parse(&format!("[[interface]]\nname = \"eth0\"\n{line}")).unwrap();
            assert_eq!(cfg.interfaces[0].mode, wanted, "{mode:?}");
        }
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
        let knob = |name| knobs::by_name(name).unwrap();
        assert_eq!(
            (
                eth0.mode,
                eth0.limits.get(knob("echo_rate")),
                eth0.limits.get(knob("echo_burst"))
            ),
            (AttachMode::Native, Some(5), Some(9))
        );
        assert_eq!(eth0.limits.dry_run, Some(true));
        assert_eq!(eth0.allow.len(), 2);
        let eth1 = &cfg.interfaces[1];
        assert_eq!(eth1.limits.get(knob("echo_rate")), Some(7));
        assert_eq!(eth1.limits.dry_run, Some(false));
    }

    /// Lists are checked against what their maps hold, so `config check` cannot pass a file
    /// that `attach --config` would apply half of (5,000 prefixes once passed).
    #[test]
    fn lists_that_overflow_their_map_are_refused_naming_the_key_the_count_and_the_limit() {
        let max = LIST_MAX_ENTRIES as usize;
        let prefixes = |n: usize| -> String {
            (0..n)
                .map(|i| format!("\"10.{}.{}.0/24\"", i >> 8, i & 0xff))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let file =
            |key: &str, list: &str| format!("[[interface]]\nname = \"eth0\"\n{key} = [{list}]\n");
        for (key, list, refused) in [
            ("allow", prefixes(max), None),
            (
                "allow",
                prefixes(max + 1),
                Some(format!(
                    "interface[0] (eth0).allow: {} prefixes, more than the {max} a list holds",
                    max + 1
                )),
            ),
            (
                "deny",
                prefixes(5000),
                Some(format!(
                    "interface[0] (eth0).deny: 5000 prefixes, more than the {max} a list holds"
                )),
            ),
            // Repeats are counted once.
            (
                "allow",
                format!("{}, {}", prefixes(max), prefixes(10)),
                None,
            ),
        ] {
            match (parse(&file(key, &list)), refused) {
                (Ok(cfg), None) => {
                    let ic = &cfg.interfaces[0];
                    assert_eq!(ic.allow.len() + ic.deny.len(), max, "{key}");
                }
                (Err(err), Some(needle)) => assert!(err.contains(&needle), "{err}"),
                (result, _) => panic!("{key}: {:?}", result.map(|_| ())),
            }
        }
    }

    /// Limits that are each in range but invalid together are refused when the file is read,
    /// naming the interface and the keys: a reload that only found out when applying had
    /// already detached the interfaces the file left out.
    #[test]
    fn limits_invalid_together_are_refused_when_the_file_is_read() {
        for (text, refused) in [
            (
                "[defaults]\nglobal_rate = 150\n[[interface]]\nname = \"eth0\"\n",
                Some("interface[0] (eth0).limits: invalid new_source_rate: 100 per class"),
            ),
            (
                "[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth1\"\n\
                 [interface.limits]\nnew_source_rate = 1000\n",
                Some("interface[1] (eth1).limits: invalid new_source_rate: 1000 per class"),
            ),
            (
                "[defaults]\nglobal_rate = 150\nnew_source_rate = 74\n[[interface]]\nname = \"eth0\"\n",
                None,
            ),
        ] {
            match (parse(text), refused) {
                (Ok(_), None) => {}
                (Err(err), Some(needle)) => {
                    assert!(err.contains(needle), "{err}");
                    assert!(err.contains("raise global_rate"), "{err}");
                }
                (result, _) => panic!("{text}: {:?}", result.map(|_| ())),
            }
        }
    }

    /// A file is read only if it is a regular file of at most `MAX_BYTES`: `/dev/zero` was
    /// read without end.
    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = std::env::temp_dir().join(format!("icmp-guard-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
        let valid = "[[interface]]\nname = \"eth0\"\n";
        let at_cap = dir.join("at-cap.toml");
        let filler = "#".repeat(MAX_BYTES as usize - valid.len() - 1);
        std::fs::write(&at_cap, format!("{valid}{filler}\n")).unwrap();
        let over = dir.join("over.toml");
        std::fs::write(&over, format!("{valid}{filler}\n\n")).unwrap();
        let binary = dir.join("binary.toml");
        std::fs::write(&binary, b"\xff\xfe").unwrap();
        for (path, refused) in [
            (
                Path::new("/dev/zero"),
                Some("is a character device, not a regular file"),
            ),
            (dir.as_path(), Some("is a folder, not a regular file")),
            (fifo.as_path(), Some("is a FIFO, not a regular file")),
            (at_cap.as_path(), None),
            (
                over.as_path(),
                Some("is 1048577 bytes or more, over the 1048576 bytes (1 MiB)"),
            ),
            (binary.as_path(), Some("is not UTF-8 text")),
        ] {
            let started = std::time::Instant::now();
            let result = ConfigFile::load(path).map_err(|e| e.to_string());
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{path:?} hangs"
            );
            match (result, refused) {
                (Ok(_), None) => {}
                (Err(err), Some(needle)) => {
                    assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
                    assert!(err.contains(needle), "{err}");
                }
                (result, _) => panic!("{path:?}: {:?}", result.map(|_| ())),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Keys and values of the file reach messages escaped: a newline in a key, a value or the
    /// file's name cannot split the error line.
    #[test]
    fn outside_text_in_errors_is_escaped() {
        for (path, text, needle) in [
            (
                "test.toml",
                "[[interface]]\nname = \"eth0\"\n\"a\\nforged\" = 1",
                r"unknown field `a\nforged`",
            ),
            (
                "test.toml",
                "[defaults]\n\"b\\nforged\" = 1\n[[interface]]\nname = \"eth0\"",
                r"defaults: unknown field `b\nforged`",
            ),
            (
                "test.toml",
                "[daemon]\non_exit = \"x\\ny\"\n[[interface]]\nname = \"eth0\"",
                r#"daemon.on_exit: "x\ny""#,
            ),
            ("a\nb.toml", "", r"a\nb.toml: no [[interface]]"),
        ] {
            let err = ConfigFile::parse(Path::new(path), text)
                .unwrap_err()
                .to_string();
            assert!(!err.contains('\n'), "{text:?}: {err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    /// Metrics stay on loopback unless the file opts in: each address without and with
    /// `daemon.metrics_public = true`.
    #[test]
    fn metrics_beyond_loopback_need_the_opt_in() {
        // (address, accepted without the opt-in)
        let cases = [
            ("127.0.0.1:9966", true),
            ("127.0.0.53:9966", true),
            ("[::1]:9966", true),
            ("[::ffff:127.0.0.1]:9966", true),
            ("0.0.0.0:9966", false),
            ("198.51.100.1:9966", false),
            ("[::]:9966", false),
            ("[2001:db8::1]:9966", false),
        ];
        for (addr, loopback) in cases {
            for public in [None, Some(false), Some(true)] {
                let opt_in = public.map_or_else(String::new, |p| format!("metrics_public = {p}\n"));
                let text = format!(
                    "[daemon]\nmetrics = \"{addr}\"\n{opt_in}[[interface]]\nname = \"eth0\""
                );
                match (parse(&text), loopback || public == Some(true)) {
                    (Ok(cfg), true) => assert_eq!(cfg.metrics.to_string(), addr),
                    (Err(err), false) => {
                        for words in [
                            "test.toml",
                            &format!("daemon.metrics: {addr} is not a loopback address"),
                            "no TLS and no authentication",
                            "bind it to 127.0.0.1 or [::1]",
                            "reverse proxy with TLS and basic auth",
                            "set daemon.metrics_public = true",
                        ] {
                            assert!(err.contains(words), "{addr} {public:?}: {err}");
                        }
                    }
                    (result, accepted) => {
                        panic!("{addr} {public:?}: {result:?}, expected accepted={accepted}")
                    }
                }
            }
        }
    }

    /// Port 0 would bind a port nobody can be told: refused, on any address.
    #[test]
    fn a_metrics_port_of_0_is_refused() {
        for addr in ["127.0.0.1:0", "[::]:0"] {
            let text = format!(
                "[daemon]\nmetrics = \"{addr}\"\nmetrics_public = true\n[[interface]]\nname = \"eth0\""
            );
            let err = parse(&text).map(|_| ()).unwrap_err();
            assert!(
                err.contains(&format!("daemon.metrics: {addr} has port 0")),
                "{err}"
            );
        }
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
                "mode: \"turbo\" must be \"auto\", \"native\" (or \"drv\") or \"generic\" (or \"skb\")",
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
                "[defaults]\nechorate = 5\n[[interface]]\nname = \"eth0\"",
                "defaults: unknown field `echorate`, expected one of echo_rate,",
            ),
            (
                "[defaults]\necho_rate = \"fast\"\n[[interface]]\nname = \"eth0\"",
                "defaults.echo_rate: \"fast\" must be a whole number of packets per second",
            ),
            (
                "[defaults]\ndry_run = 1\n[[interface]]\nname = \"eth0\"",
                "defaults.dry_run: 1 must be true or false",
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
