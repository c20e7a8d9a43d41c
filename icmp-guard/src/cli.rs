//! The command line, as clap definitions.

use std::{path::PathBuf, time::Duration};

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::{
    kernel::{AttachMode, IfaceName},
    pinned::layout as pins,
    policy::{Cidr, Overrides},
};

/// XDP ICMP rate limiter: drops malformed, oversized and over-quota ICMP at the driver.
///
/// The program and its maps stay pinned in bpffs after each command exits, so the guard keeps
/// enforcing with no daemon running.
#[derive(Debug, Parser)]
#[command(
    name = "icmp-guard",
    version,
    after_help = "Examples:\n  icmp-guard attach eth0\n  icmp-guard attach eth0 --echo-rate 50 --echo-burst 100\n  icmp-guard set eth0 --echo-rate 5 --v4-prefix 24\n  icmp-guard allow add eth0 203.0.113.0/24\n  icmp-guard attach eth0 --dry-run\n  icmp-guard stats eth0\n  icmp-guard status --json\n  icmp-guard detach eth0"
)]
pub struct Cli {
    /// bpffs mount point holding the pins (under PATH/icmp-guard/netns:<INODE>:<COOKIE>/<IFACE>/);
    /// mounted if it is not a bpffs yet
    #[arg(long, global = true, value_name = "PATH", env = pins::BPFFS_ENV, default_value = pins::DEFAULT_BPFFS)]
    pub bpffs: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the guard, attach it to an interface and pin it; it keeps running after exit
    #[command(
        after_help = "Examples:\n  icmp-guard attach eth0\n  icmp-guard attach eth0 --mode native --echo-rate 50 --v6-prefix 56\n  icmp-guard attach --config /etc/icmp-guard/icmp-guard.toml\n  icmp-guard attach eth0 --replace   # upgrade the program in place, keeping state"
    )]
    Attach(AttachArgs),
    /// Change limits of a guarded interface live; counters, lists and buckets are kept (a new
    /// source prefix length starts that family's sources afresh)
    #[command(
        after_help = "Examples:\n  icmp-guard set eth0 --echo-rate 50 --echo-burst 100\n  icmp-guard set eth0 --global-rate 5000 --global-burst 10000\n  icmp-guard set eth0 --dry-run     # count what would be dropped, drop nothing\n  icmp-guard set eth0 --enforce"
    )]
    Set(SetArgs),
    /// Detach the guard from an interface and remove every pin it made
    #[command(after_help = "Example:\n  icmp-guard detach eth0")]
    Detach(IfaceArgs),
    /// List guarded interfaces with their program, mode and limits
    #[command(after_help = "Examples:\n  icmp-guard status\n  icmp-guard status --json")]
    Status(StatusArgs),
    /// Show drop counters and the top sources of a guarded interface
    #[command(
        after_help = "Examples:\n  icmp-guard stats eth0\n  icmp-guard stats eth0 --json\n  icmp-guard stats eth0 --watch --top 20\n  icmp-guard stats eth0 --watch 0.5 --json   # one JSON object per line"
    )]
    Stats(StatsArgs),
    /// Write the frames a guard drops (or, with --all, every ICMP frame it judges) to a pcapng
    /// file, each commented with its reason and source prefix
    #[command(
        after_help = "Examples:\n  icmp-guard capture eth0 -w drops.pcapng --count 100\n  icmp-guard capture eth0 -w - --reason dropped_rate_source | tcpdump -nr -\n  icmp-guard capture eth0 -w all.pcapng --all --rate 200 --snaplen 128\n\nThe program samples at most --rate frames a second and copies at most --snaplen bytes of each; a capture stops on Ctrl-C, SIGTERM, --count or the interface going away, and prints a summary on stderr."
    )]
    Capture(CaptureArgs),
    /// Remove every pin of an interface, even stale or incompatible ones (detaches the guard)
    #[command(
        after_help = "Example:\n  icmp-guard clean eth0   # when attach --replace reports a map of another layout"
    )]
    Clean(IfaceArgs),
    /// Run as a service: guard the interfaces of a config file and serve Prometheus metrics
    #[command(
        after_help = "Example:\n  icmp-guard run --config /etc/icmp-guard/icmp-guard.toml\n\nSignals: SIGHUP re-reads and applies the file (an invalid file changes nothing), SIGTERM stops (guards stay unless daemon.on_exit = \"detach\")."
    )]
    Run(RunArgs),
    /// Work with configuration files
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the man page or shell completions
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
    /// Sources never rate limited (CIDR prefixes, IPv4 or IPv6)
    #[command(
        subcommand,
        after_help = "Examples:\n  icmp-guard allow add eth0 198.51.100.0/24\n  icmp-guard allow add eth0 2001:db8::/48\n  icmp-guard allow del eth0 198.51.100.0/24\n  icmp-guard allow list eth0 --json"
    )]
    Allow(ListCommand),
    /// Sources whose ICMP is always dropped (CIDR prefixes, IPv4 or IPv6)
    #[command(
        subcommand,
        after_help = "Examples:\n  icmp-guard deny add eth0 203.0.113.0/24\n  icmp-guard deny del eth0 203.0.113.0/24\n  icmp-guard deny list eth0"
    )]
    Deny(ListCommand),
    /// What a policy would have done to a capture (pcap or pcapng), judged by the program's
    /// own decision code; no guard needed
    #[command(
        after_help = "Examples:\n  icmp-guard replay flood.pcap --echo-rate 5 --echo-burst 10\n  icmp-guard replay flood.pcapng --config /etc/icmp-guard/icmp-guard.toml --iface eth0 --json\n  icmp-guard replay flood.pcap --suggest --percentile 95 --iface eth0\n  icmp-guard replay flood.pcap --kernel   # also run every frame through the real program"
    )]
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The capture: pcap or pcapng of Ethernet (link type 1) or Linux cooked frames (SLL 113,
    /// SLL2 276), read as a stream. On the guarded host, capture what arrives on the
    /// interface: `tcpdump -i IFACE -Q in -w FILE icmp or ip6` (not `icmp6`, which misses
    /// ICMPv6 behind extension headers or in fragments), or with no filter at all
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Replay the policy and lists of --iface in this TOML file; limit flags override it.
    /// Example: --config /etc/icmp-guard/icmp-guard.toml --iface eth0
    #[arg(long, value_name = "FILE", requires = "iface")]
    pub config: Option<PathBuf>,

    /// The interface whose policy --config gives, and the one the suggested `set` names.
    /// Example: --iface eth0
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<IfaceName>,

    /// Treat this prefix as allow-listed (repeatable). Example: --allow 192.0.2.0/24
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<Cidr>,

    /// Treat this prefix as deny-listed (repeatable). Example: --deny 203.0.113.0/24
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<Cidr>,

    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,

    /// How many top sources to list
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Also run every frame through the real program (loaded, not attached, with
    /// BPF_PROG_TEST_RUN) and list the frames it judges otherwise; needs root
    #[arg(long)]
    pub kernel: bool,

    /// Measure each source's peak rates and suggest limits that pass the sources below
    /// --percentile, with --headroom
    #[arg(long)]
    pub suggest: bool,

    /// With --suggest: the percentile of sources the limits must pass, above 0 and up to 100.
    /// Example: --percentile 95
    #[arg(long, value_name = "P", default_value_t = 99.0, value_parser = percentile)]
    pub percentile: f64,

    /// With --suggest: the factor the measured peaks are multiplied by, 1 to 100.
    /// Example: --headroom 2
    #[arg(long, value_name = "X", default_value_t = 1.5, value_parser = headroom)]
    pub headroom: f64,

    #[command(flatten)]
    pub limits: Overrides,
}

/// `--percentile P`: above 0, at most 100.
pub fn percentile(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| {
            "the percentile must be above 0 and at most 100, e.g. --percentile 95".to_owned()
        })
}

/// `--headroom X`: from 1 to 100.
pub fn headroom(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| (1.0..=100.0).contains(x))
        .ok_or_else(|| "the headroom must be from 1 to 100, e.g. --headroom 1.5".to_owned())
}

#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// Network interface, e.g. eth0
    #[arg(value_name = "IFACE")]
    pub iface: IfaceName,

    /// pcapng file to write, or - for stdout; a FIFO is waited for until it has a reader.
    /// Example: -w drops.pcapng
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub file: PathBuf,

    /// Only these reasons, named as `stats` names them (comma-separated). Example: --reason
    /// dropped_rate_source,dropped_martian
    #[arg(long, value_name = "REASON", value_delimiter = ',', value_parser = crate::capture::reason_named)]
    pub reason: Vec<icmp_guard_common::Reason>,

    /// Stop after N frames. Example: --count 50
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Frames per second the program samples at most; the rest are counted as over rate.
    /// Example: --rate 200
    #[arg(long, value_name = "PPS", default_value_t = icmp_guard_common::capture::DEFAULT_RATE,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(icmp_guard_common::bucket::MAX_RATE)))]
    pub rate: u32,

    /// Bytes of each frame to keep (at most 256, the program's fixed copy; at least 96, so
    /// the source address is in every sample). Example: --snaplen 128
    #[arg(long, value_name = "N", default_value_t = icmp_guard_common::capture::MAX_SNAPLEN,
        value_parser = clap::value_parser!(u32).range(
            i64::from(icmp_guard_common::capture::MIN_SNAPLEN)..=i64::from(icmp_guard_common::capture::MAX_SNAPLEN)))]
    pub snaplen: u32,

    /// Every ICMP frame the guard judges, passed ones too (passes of ICMP then read the config
    /// once more while the capture runs)
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Add a prefix, e.g. 198.51.100.0/24 or 2001:db8::/48 (a bare address is a /32 or /128)
    Add {
        #[arg(value_name = "IFACE")]
        iface: IfaceName,
        #[arg(value_name = "CIDR")]
        cidr: Cidr,
    },
    /// Remove a prefix
    Del {
        #[arg(value_name = "IFACE")]
        iface: IfaceName,
        #[arg(value_name = "CIDR")]
        cidr: Cidr,
    },
    /// Show the prefixes
    List {
        #[arg(value_name = "IFACE")]
        iface: IfaceName,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct IfaceArgs {
    /// Network interface, e.g. eth0
    #[arg(value_name = "IFACE")]
    pub iface: IfaceName,
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Network interface, e.g. eth0 (with --config: only this one of the file's interfaces)
    #[arg(value_name = "IFACE", required_unless_present = "config")]
    pub iface: Option<IfaceName>,

    /// XDP mode: native (in the driver), generic (in the stack, any interface), or auto
    /// (native, falling back to generic); the kernel's names drv and skb are accepted for
    /// native and generic. Default: auto, but generic for a guard attached again (its
    /// interface recreated) that ran in generic mode. Example: --mode skb
    #[arg(long, value_enum, conflicts_with = "config")]
    pub mode: Option<AttachMode>,

    /// Attach the interfaces of this TOML file with their modes, limits and lists
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Swap the program of an already guarded interface for this version's, atomically and
    /// keeping its maps (counters, buckets, lists)
    #[arg(long)]
    pub replace: bool,

    #[command(flatten)]
    pub limits: Overrides,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The TOML configuration (see `icmp-guard config check`)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file without touching anything
    #[command(after_help = "Example:\n  icmp-guard config check /etc/icmp-guard/icmp-guard.toml")]
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// The main man page in roff on stdout; with --dir, every page written there
    #[command(
        after_help = "Examples:\n  icmp-guard generate man > icmp-guard.1\n  icmp-guard generate man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write the main page and one per subcommand (icmp-guard.1, icmp-guard-attach.1,
        /// icmp-guard-allow-add.1, ...) into DIR, created if missing, and print their paths.
        /// Example: --dir /usr/local/share/man/man1
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Completions for a shell
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Network interface, e.g. eth0
    #[arg(value_name = "IFACE")]
    pub iface: IfaceName,

    #[command(flatten)]
    pub limits: Overrides,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Network interface, e.g. eth0
    #[arg(value_name = "IFACE")]
    pub iface: IfaceName,

    /// Print one JSON object instead of tables; with --watch, one object per line
    #[arg(long)]
    pub json: bool,

    /// How many top sources (by drops) to list
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Refresh every SECS seconds (default 1; fractions allowed, 0.1 to 3600) with per-second
    /// rates over the time measured between reads, until Ctrl-C. The screen is redrawn only
    /// on a terminal. Example: --watch 0.5
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "1",
        allow_negative_numbers = true,
        value_parser = watch_interval
    )]
    pub watch: Option<Duration>,
}

/// Shortest `stats --watch` interval, in seconds: each refresh reads the whole per-source
/// table (up to 16 Mi entries), and no one reads a screen faster.
pub const WATCH_MIN_SECS: f64 = 0.1;

/// Longest `stats --watch` interval, in seconds: an hour. For rarer samples, run
/// `stats --json` from a timer (or scrape the service's /metrics).
pub const WATCH_MAX_SECS: f64 = 3600.0;

/// `--watch SECS`: seconds, fractions allowed, from [`WATCH_MIN_SECS`] to [`WATCH_MAX_SECS`]
/// (so not 0, negative, NaN or infinite).
pub fn watch_interval(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| (WATCH_MIN_SECS..=WATCH_MAX_SECS).contains(secs))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!(
                "the interval must be {WATCH_MIN_SECS} to {WATCH_MAX_SECS} seconds (fractions \
                 allowed), e.g. --watch 0.5"
            )
        })
}

/// Every man page, the main one first: one per visible subcommand at every depth, named as
/// the main page names them (`icmp-guard-attach(1)`, `icmp-guard-allow-add(1)`, ...). The
/// `help` subcommand has none, so no page names it (clap_mangen's own `generate_to` leaves it
/// out too); the hidden `generate` has none either.
#[must_use]
pub fn man_pages() -> Vec<clap_mangen::Man> {
    fn walk(cmd: &clap::Command, pages: &mut Vec<clap_mangen::Man>) {
        // Subcommands carry no version: every page names the same source as the main one.
        let source = concat!("icmp-guard ", env!("CARGO_PKG_VERSION"));
        pages.push(clap_mangen::Man::new(cmd.clone()).source(source));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, pages);
        }
    }
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Names each subcommand after its parents (`icmp-guard-allow-add`), as pages refer to it.
    cli.build();
    let mut pages = Vec::new();
    walk(&cli, &mut pages);
    pages
}

/// The pages a rendered man page refers to in its SUBCOMMANDS section (`icmp-guard-set(1)`),
/// as file names (`icmp-guard-set.1`): what a page promises exists, for the tests to check.
#[must_use]
pub fn named_pages(roff: &str) -> Vec<String> {
    roff.lines()
        .skip_while(|l| *l != ".SH SUBCOMMANDS")
        .skip(1)
        .take_while(|l| !l.starts_with(".SH"))
        .filter_map(|l| l.strip_suffix("(1)"))
        .map(|name| format!("{}.1", name.replace("\\-", "-")))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every command's `--help` shows examples, and every example parses: an example that
    /// names a flag that was renamed fails here, not in an operator's shell. A command with
    /// subcommands (`allow`, `config`) may show them for its subcommands, and each of those
    /// must have one there or in its own help.
    #[test]
    fn every_command_has_examples_that_parse() {
        /// The examples of `cmd`'s help, without the program's name.
        fn examples(cmd: &clap::Command) -> Vec<String> {
            let text = cmd
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("icmp-guard "))
                .map(str::to_owned)
                .collect()
        }
        fn walk(
            cmd: &clap::Command,
            path: &[String],
            parent: &[String],
            found: &mut Vec<(String, String)>,
        ) {
            let own = examples(cmd);
            let leaf = cmd.get_subcommands().next().is_none();
            if leaf && !path.is_empty() {
                let name = path.join(" ");
                let shown = own
                    .iter()
                    .chain(parent)
                    .any(|e| e == &name || e.starts_with(&format!("{name} ")));
                assert!(
                    shown,
                    "icmp-guard {name}: no example in its --help or its parent's"
                );
            }
            for example in &own {
                found.push((path.join(" "), example.clone()));
            }
            for sub in cmd.get_subcommands() {
                // `help` is clap's; a hidden command (`generate`) is for packagers.
                if sub.get_name() == "help" || sub.is_hide_set() {
                    continue;
                }
                let mut below = path.to_vec();
                below.push(sub.get_name().to_owned());
                // The top level's examples are a tour, not each command's own.
                let parent = if path.is_empty() {
                    Vec::new()
                } else {
                    own.clone()
                };
                walk(sub, &below, &parent, found);
            }
        }
        let mut found = Vec::new();
        walk(&Cli::command(), &[], &[], &mut found);
        assert!(found.len() > 30, "{found:?}");
        for (command, example) in found {
            // What the program gets: the command before a comment, a pipe or a redirection.
            let line = example.split(['#', '|', '>']).next().unwrap().trim();
            let words = std::iter::once("icmp-guard").chain(line.split_whitespace());
            if let Err(e) = Cli::try_parse_from(words) {
                panic!("icmp-guard {command}: the example `icmp-guard {line}` does not parse: {e}");
            }
        }
    }

    /// (`--watch` value, the interval or None for a usage error).
    #[test]
    fn watch_intervals_are_seconds_with_fractions_within_bounds() {
        for (text, wanted) in [
            ("1", Some(Duration::from_secs(1))),
            ("0.5", Some(Duration::from_millis(500))),
            ("0.1", Some(Duration::from_millis(100))),
            ("2.25", Some(Duration::from_millis(2250))),
            ("3600", Some(Duration::from_secs(3600))),
            ("1e1", Some(Duration::from_secs(10))),
            ("0", None),
            ("-0", None),
            ("-1", None),
            ("0.05", None),
            ("3600.5", None),
            ("1e9", None),
            ("NaN", None),
            ("inf", None),
            ("-inf", None),
            ("fast", None),
            ("", None),
        ] {
            match (watch_interval(text), wanted) {
                (Ok(got), Some(wanted)) => assert_eq!(got, wanted, "{text}"),
                (Err(why), None) => assert!(why.contains("0.1 to 3600 seconds"), "{text}: {why}"),
                (got, wanted) => panic!("{text}: {got:?}, wanted {wanted:?}"),
            }
        }
    }

    /// (arguments, the interval): `--watch` alone is one second, and combines with `--json`.
    #[test]
    fn stats_watch_parses_alone_with_a_value_and_with_json() {
        for (args, watch, json) in [
            (&["stats", "eth0"][..], None, false),
            (&["stats", "eth0", "--watch"], Some(1000), false),
            (&["stats", "eth0", "--watch", "0.5"], Some(500), false),
            (
                &["stats", "eth0", "--watch=0.25", "--json"],
                Some(250),
                true,
            ),
            (&["stats", "eth0", "--json", "--watch"], Some(1000), true),
        ] {
            let cli =
                Cli::try_parse_from(std::iter::once("icmp-guard").chain(args.iter().copied()))
                    .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let Command::Stats(stats) = cli.command else {
                panic!("{args:?}")
            };
            assert_eq!(stats.watch, watch.map(Duration::from_millis), "{args:?}");
            assert_eq!(stats.json, json, "{args:?}");
        }
    }

    #[test]
    fn every_page_a_page_names_is_generated() {
        let pages = man_pages();
        let files: BTreeSet<String> = pages.iter().map(clap_mangen::Man::get_filename).collect();
        assert_eq!(files.len(), pages.len(), "{files:?}");
        for file in [
            "icmp-guard.1",
            "icmp-guard-attach.1",
            "icmp-guard-stats.1",
            "icmp-guard-allow-add.1",
            "icmp-guard-deny-list.1",
            "icmp-guard-config-check.1",
        ] {
            assert!(files.contains(file), "{file} missing from {files:?}");
        }
        let mut named = 0;
        for page in &pages {
            let mut roff = Vec::new();
            page.render(&mut roff).unwrap();
            let roff = String::from_utf8(roff).unwrap();
            for name in named_pages(&roff) {
                assert!(
                    files.contains(&name),
                    "{} names {name}",
                    page.get_filename()
                );
                named += 1;
            }
        }
        // Every page but the main one is named by its parent.
        assert_eq!(named, pages.len() - 1);
        assert!(
            !files
                .iter()
                .any(|f| f.contains("help") || f.contains("generate"))
        );
    }
}
