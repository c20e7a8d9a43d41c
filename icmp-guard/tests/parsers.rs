//! Property tests of the parsers that take input from files and flags: the TOML config file,
//! CIDR prefixes, interface names and the command line. For arbitrary input and for input
//! built from each parser's own vocabulary, a parser returns (a value or an error) and never
//! panics; what it accepts keeps its promises. Each property runs on its own thread under a
//! deadline, so a parser that loops fails the test instead of hanging it. Fixed seeds: a
//! failure is the same on every run and prints the smallest input that shows it.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::Duration,
};

use clap::{CommandFactory as _, Parser as _};
use icmp_guard::{
    cli::Cli,
    config_file::{ConfigFile, apply},
    kernel::IfaceName,
    policy::{Cidr, KNOBS},
};
use icmp_guard_common::config::prefix_mask;
use proptest::{
    prelude::*,
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};

/// How long one property may take, all its cases together (each takes well under a second).
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `cases` cases of `property` over `strategy` with a fixed seed, on its own thread,
/// failing if any case fails or if they have not all finished by [`DEADLINE`].
fn check<S>(cases: u32, strategy: S, property: fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy + Send + 'static,
    S::Value: std::fmt::Debug,
{
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let result = TestRunner::new_with_rng(config, rng).run(&strategy, property);
        let _ = done.send(());
        if let Err(e) = result {
            panic!("{e}");
        }
    });
    match finished.recv_timeout(DEADLINE) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("not finished after {DEADLINE:?}: a parser does not terminate")
        }
    }
}

/// Any text, and text made of the characters parsers split on.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[0-9a-f.:/ \t\n\\[\\]=\"#,{}-]{0,40}",]
}

// ---- interface names ----

/// The kernel's `dev_valid_name()`, written out from net/core/dev.c as the oracle.
fn kernel_accepts(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| {
            matches!(
                b,
                b'/' | b':' | 0 | b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'
            )
        })
}

#[test]
fn interface_names_are_accepted_exactly_as_the_kernel_accepts_them() {
    let names = prop_oneof![
        text(),
        "[a-z0-9.:/ \t\n\u{b}\u{c}\r\u{0}é_@-]{0,18}",
        Just(".".to_owned()),
        Just("..".to_owned()),
    ];
    check(10_000, names, |name| {
        let parsed = name.parse::<IfaceName>();
        prop_assert_eq!(parsed.is_ok(), kernel_accepts(&name), "{:?}", name);
        if let Ok(iface) = parsed {
            prop_assert_eq!(iface.as_str(), name.as_str());
        }
        Ok(())
    });
}

// ---- CIDR prefixes ----

#[test]
fn any_text_parses_as_a_prefix_or_an_error_and_a_prefix_round_trips() {
    let inputs = prop_oneof![
        text(),
        (any::<[u8; 4]>(), 0u32..40).prop_map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(a))),
        (any::<[u8; 16]>(), 0u32..140).prop_map(|(a, l)| format!("{}/{l}", Ipv6Addr::from(a))),
    ];
    check(10_000, inputs, |input| {
        if let Ok(cidr) = input.parse::<Cidr>() {
            prop_assert!(cidr.len <= 128, "{:?}: length {}", input, cidr.len);
            let mask = prefix_mask(cidr.len);
            prop_assert!(
                (0..16).all(|i| cidr.addr[i] & !mask[i] == 0),
                "{:?}: host bits set in {:?}",
                input,
                cidr
            );
            prop_assert_eq!(cidr.to_string().parse::<Cidr>(), Ok(cidr), "{:?}", input);
        }
        Ok(())
    });
}

/// A prefix as text and whether the CLI must accept it: an IPv4 (`width` 32) or IPv6 address,
/// a length up to a few bits past the width, and with `clear` its host bits cleared. An IPv6
/// prefix that contains `::ffff:0:0/96`, where the lists keep IPv4, is refused too.
fn prefix_case(width: u32, addr: u128, len: u32, clear: bool) -> (String, bool) {
    let addr = addr & (u128::MAX >> (128 - width));
    let host = if len >= width {
        0
    } else {
        u128::MAX >> (128 - width + len)
    };
    let addr = if clear { addr & !host } else { addr };
    let text = if width == 32 {
        format!("{}/{len}", Ipv4Addr::from(addr as u32))
    } else {
        format!("{}/{len}", Ipv6Addr::from(addr))
    };
    let mapped: u128 = 0xffff << 32;
    let around_v4 = width == 128 && len < 96 && mapped & !host == addr;
    (text, len <= width && addr & host == 0 && !around_v4)
}

#[test]
fn a_prefix_is_accepted_exactly_when_its_length_fits_and_its_host_bits_are_clear() {
    let cases = (
        prop_oneof![Just(32u32), Just(128u32)],
        any::<u128>(),
        0u32..200,
        any::<bool>(),
    )
        .prop_map(|(width, addr, len, clear)| prefix_case(width, addr, len % (width + 9), clear));
    check(10_000, cases, |(text, valid)| {
        prop_assert_eq!(text.parse::<Cidr>().is_ok(), valid, "{}", text);
        Ok(())
    });
}

// ---- the TOML config file ----

/// The shipped example, which the mutations start from.
const EXAMPLE: &str = include_str!("../../contrib/icmp-guard.toml");

/// A TOML value of any kind, some of them in range for a knob.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (0u64..70_000).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        any::<bool>().prop_map(|v| v.to_string()),
        "[a-z0-9.:/ ]{0,16}".prop_map(|s| format!("{s:?}")),
        prop::collection::vec(
            prop_oneof![
                "[0-9.]{1,15}/[0-9]{1,3}",
                "[0-9a-f:]{2,20}/[0-9]{1,3}",
                ".{0,8}"
            ],
            0..4
        )
        .prop_map(|v| format!("{v:?}")),
        Just("{}".to_owned()),
        Just("[[]]".to_owned()),
    ]
}

/// A key the file knows (every knob, every table's fields), or another.
fn toml_key() -> impl Strategy<Value = String> {
    let mut known: Vec<String> = KNOBS.iter().map(|k| k.name.to_owned()).collect();
    known.extend(
        [
            "dry_run", "name", "mode", "allow", "deny", "limits", "metrics", "on_exit", "bpffs",
        ]
        .map(str::to_owned),
    );
    prop_oneof![4 => prop::sample::select(known), 1 => "[a-z_]{1,12}"]
}

/// A document of table headers and key/value lines in any order.
fn toml_document() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "[daemon]",
        "[defaults]",
        "[[interface]]",
        "[interface.limits]",
        "[interface]",
        "[limits]",
    ])
    .prop_map(str::to_owned);
    let line = (toml_key(), toml_value()).prop_map(|(k, v)| format!("{k} = {v}"));
    prop::collection::vec(prop_oneof![1 => header, 3 => line], 0..24)
        .prop_map(|lines| lines.join("\n"))
}

/// The example with bytes deleted, repeated and inserted.
fn mutated_example() -> impl Strategy<Value = String> {
    let edit = (0..EXAMPLE.len(), 0usize..24, "[0-9a-z\"'=.\\[\\]\n -]{0,6}");
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for (at, len, insert) in edits {
            let at = at.min(bytes.len());
            let end = (at + len).min(bytes.len());
            match len % 3 {
                0 => drop(bytes.drain(at..end)),
                1 => {
                    let copy = bytes[at..end].to_vec();
                    bytes.splice(at..at, copy);
                }
                _ => drop(bytes.splice(at..at, insert.into_bytes())),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[test]
fn the_shipped_example_parses() {
    let file = ConfigFile::parse(Path::new("icmp-guard.toml"), EXAMPLE).unwrap();
    assert_eq!(file.interfaces.len(), 2);
}

#[test]
fn any_config_file_parses_or_is_refused_and_what_parses_keeps_its_promises() {
    let documents = prop_oneof![text(), toml_document(), mutated_example()];
    check(10_000, documents, |text| {
        let Ok(file) = ConfigFile::parse(Path::new("fuzz.toml"), &text) else {
            return Ok(());
        };
        prop_assert!(!file.interfaces.is_empty(), "{:?}", text);
        for (i, ic) in file.interfaces.iter().enumerate() {
            prop_assert!(
                file.interfaces[..i].iter().all(|o| o.name != ic.name),
                "{:?}: {} twice",
                text,
                ic.name
            );
            // The limits may still be refused together (admission against the global
            // rate): `config check` says so. Deriving them must not panic.
            let _ = apply::policy(ic);
        }
        Ok(())
    });
}

// ---- the command line ----

/// Every subcommand name and long flag of the CLI, from its own definition.
fn cli_words() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        out.push(cmd.get_name().to_owned());
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}")),
        );
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut out);
    out.sort();
    out.dedup();
    out
}

#[test]
fn any_command_line_parses_or_is_refused() {
    Cli::command().debug_assert();
    let word = prop_oneof![
        3 => prop::sample::select(cli_words()),
        1 => "[a-z0-9.:/=-]{0,12}",
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => any::<String>(),
    ];
    check(10_000, prop::collection::vec(word, 0..8), |words| {
        let argv = std::iter::once("icmp-guard".to_owned()).chain(words);
        let _ = Cli::try_parse_from(argv);
        Ok(())
    });
}
