//! `icmp-guard replay`: what a policy would have done to a capture, judged by the program's
//! own decision code on the host (and, with `--kernel`, by the real program too).

use std::{
    fs::File,
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use icmp_guard_common::Config;

use crate::{
    Error,
    cli::ReplayArgs,
    config_file::ConfigFile,
    error::shown,
    kernel::{clock_tick_ns, privilege},
    policy::{Cidr, KNOBS, Overrides},
    replay::{
        Replay,
        capture::{Capture, Record},
        kernel::{Comparison, Program},
        render,
        suggest::Suggestion,
    },
};

/// The policy to replay: the file's interface (if any) under the flags, and the lists.
fn policy(args: &ReplayArgs, tick_ns: u64) -> Result<(Config, Vec<Cidr>, Vec<Cidr>), Error> {
    let (mut limits, mut allow, mut deny) = (args.limits.clone(), Vec::new(), Vec::new());
    if let Some(path) = &args.config {
        let file = ConfigFile::load(path)?;
        let wanted = args.iface.as_ref().ok_or_else(|| {
            Error::Usage("--config needs --iface NAME: the interface whose policy to replay".into())
        })?;
        let iface = file
            .interfaces
            .iter()
            .find(|i| &i.name == wanted)
            .ok_or_else(|| {
                let names: Vec<String> =
                    file.interfaces.iter().map(|i| i.name.to_string()).collect();
                Error::ConfigFile {
                    path: path.clone(),
                    message: format!(
                        "has no interface {} (it has: {}); pass one of them to --iface",
                        shown(wanted.to_string()),
                        shown(names.join(", "))
                    ),
                }
            })?;
        limits = args.limits.over(&iface.limits);
        allow.clone_from(&iface.allow);
        deny.clone_from(&iface.deny);
    }
    allow.extend(args.allow.iter().copied());
    deny.extend(args.deny.iter().copied());
    let config = limits.apply(&Config::with_defaults(), tick_ns)?;
    Ok((config, allow, deny))
}

/// The suggested limits checked as `set` would check them.
fn checked(suggestion: &Suggestion, config: &Config, tick_ns: u64) -> Result<(), Error> {
    let mut overrides = Overrides::default();
    for (name, value) in suggestion.values() {
        if let Some(knob) = KNOBS.iter().find(|k| k.name == name) {
            overrides.set(knob, value);
        }
    }
    overrides.apply(config, tick_ns).map(|_| ())
}

pub fn run(args: &ReplayArgs) -> Result<(), Error> {
    let tick_ns = clock_tick_ns();
    let (config, allow, deny) = policy(args, tick_ns)?;
    let path = &args.file;
    let fail = |what: String| Error::Capture {
        path: path.clone(),
        message: what,
    };
    let file = File::open(path).map_err(Error::io("reading the capture", path))?;
    let capture = Capture::new(file).map_err(|e| fail(e.to_string()))?;
    let mut program = if args.kernel {
        privilege::require("replay --kernel", privilege::LOAD)?;
        Some((
            Program::load(&config, &allow, &deny)?,
            Comparison::default(),
        ))
    } else {
        None
    };
    let mut replay = Replay::new(config, &allow, &deny, tick_ns, args.suggest);
    let progress = std::io::stderr().is_terminal();
    let mut shown_at = Instant::now();
    for record in capture {
        let record = record.map_err(|e| fail(e.to_string()))?;
        let reason = replay.take(&record);
        if let (Some(host), Some((program, comparison)), Record::Frame { number, frame, .. }) =
            (reason, &mut program, &record)
        {
            comparison.record(*number, host, program.judge(frame)?);
        }
        if progress && shown_at.elapsed() >= Duration::from_millis(250) {
            shown_at = Instant::now();
            let n = match &record {
                Record::Frame { number, .. }
                | Record::Truncated { number, .. }
                | Record::Outgoing { number } => *number,
            };
            eprint!("\rreplaying {}: frame {n}", path.display());
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let summary = replay.finish();
    let iface = args
        .iface
        .as_ref()
        .map_or_else(|| "IFACE".to_owned(), ToString::to_string);
    let suggestion = summary.rates.as_ref().map(|measured| {
        Suggestion::new(
            measured,
            summary.duration_ns,
            &summary.config,
            args.percentile,
            args.headroom,
        )
    });
    if let Some(s) = &suggestion {
        checked(s, &summary.config, tick_ns)?;
    }
    let name = path.display().to_string();
    let kernel = program.as_ref().map(|(_, c)| c);
    let suggest = suggestion.as_ref().map(|s| (s, iface.as_str()));
    if args.json {
        let value = render::json(&name, &summary, args.top, kernel, suggest);
        println!("{}", serde_json::to_string(&value).map_err(Error::Json)?);
    } else {
        print!(
            "{}",
            render::text(&name, &summary, args.top, kernel, suggest)
        );
    }
    if let Some((number, captured, original)) = summary.first_truncated {
        return Err(fail(format!(
            "frame {number}: {} frame(s) were truncated in capture (frame {number} kept {captured} \
             of {original} bytes) and were skipped, so the report above leaves them out; \
             capture again with the whole frames (`tcpdump -s 0`)",
            summary.truncated
        )));
    }
    Ok(())
}
