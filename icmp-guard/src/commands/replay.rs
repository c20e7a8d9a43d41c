//! `icmp-guard replay`: what a policy would have done to a capture, judged by the program's
//! own decision code on the host (and, with `--kernel`, by the real program too).

use std::fs::File;

use crate::{
    Error,
    cli::ReplayArgs,
    kernel::{clock_tick_ns, privilege},
    replay::{
        Replay,
        capture::{Capture, CaptureError, Record, unread_link},
        kernel::{Comparison, Program, Run},
        policy::Policy,
        progress::Progress,
        render,
        suggest::Suggestion,
    },
};

pub fn run(args: &ReplayArgs) -> Result<(), Error> {
    let tick_ns = clock_tick_ns();
    let Policy {
        config,
        allow,
        deny,
    } = Policy::resolve(
        args.config.as_deref(),
        args.iface.as_ref(),
        &args.limits,
        &args.allow,
        &args.deny,
        tick_ns,
    )?;
    let path = &args.file;
    let fail = |what: String| Error::Capture {
        path: path.clone(),
        message: what,
    };
    let file = File::open(path).map_err(Error::io("reading the capture", path))?;
    let mut capture = Capture::new(file).map_err(|e| fail(e.to_string()))?;
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
    let cut = judge_all(&mut capture, &mut replay, program.as_mut(), path)?;
    if capture.interfaces() > 1 {
        eprintln!(
            "note: the frames arrived on {} interfaces (a capture of `tcpdump -i any`?), and replay judges them all as if they had arrived on one; capture the guarded interface alone: `tcpdump -i IFACE -Q in`",
            capture.interfaces()
        );
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
        s.check(&summary.config, tick_ns)?;
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
    if let Some(e) = cut {
        let before = e.frame.unwrap_or(1) - 1;
        return Err(fail(format!(
            "{e}, so the report above covers the {before} record(s) before it: the capture was \
             cut short (its writer stopped, or the file was copied while being written)"
        )));
    }
    // Frames skipped for want of what the program would see leave the report incomplete:
    // each kind is named, with what to capture instead.
    let mut skipped = Vec::new();
    if let Some((number, linktype)) = summary.first_other_link {
        skipped.push(format!(
            "frame {number}: {} frame(s) arrived on interfaces replay does not read and were \
             skipped, so the report above leaves them out: {}",
            summary.other_link,
            unread_link(linktype)
        ));
    }
    if let Some((number, captured, original)) = summary.first_truncated {
        skipped.push(format!(
            "frame {number}: {} frame(s) were truncated in capture (frame {number} kept {captured} \
             of {original} bytes) and were skipped, so the report above leaves them out; \
             capture again with the whole frames (`tcpdump -s 0`)",
            summary.truncated
        ));
    }
    if !skipped.is_empty() {
        return Err(fail(skipped.join("; and ")));
    }
    Ok(())
}

/// Judges every record of `capture` (and, with `program`, compares the real program's
/// verdicts; a frame the kernel will not run is left out of the comparison and named in the
/// report). A file cut short inside a record after the first (tcpdump killed, a full disk)
/// ends the reading with that error returned, for the report of the records before it. The
/// progress line is cleared on every way out (`Progress`'s drop).
fn judge_all<R: std::io::Read>(
    capture: &mut Capture<R>,
    replay: &mut Replay,
    mut program: Option<&mut (Program, Comparison)>,
    path: &std::path::Path,
) -> Result<Option<CaptureError>, Error> {
    let mut progress = Progress::new(path);
    for record in capture.by_ref() {
        let record = match record {
            Ok(record) => record,
            Err(e) if e.cut && e.frame.is_some_and(|n| n > 1) => return Ok(Some(e)),
            Err(e) => {
                return Err(Error::Capture {
                    path: path.to_owned(),
                    message: e.to_string(),
                });
            }
        };
        let reason = replay.take(&record);
        if let (Some(host), Some((program, comparison)), Record::Frame { number, frame, .. }) =
            (reason, program.as_deref_mut(), &record)
        {
            match program.judge(frame) {
                Ok(Run::Judged(kernel)) => comparison.record(*number, host, kernel),
                Ok(Run::Refused(why)) => comparison.refuse(*number, frame.len(), &why),
                Err(e) => {
                    return Err(Error::Capture {
                        path: path.to_owned(),
                        message: format!(
                            "frame {number}: {e}, so `--kernel` cannot compare it or the frames \
                             after it; replay without `--kernel` for the host's report"
                        ),
                    });
                }
            }
        }
        progress.reached(&record);
    }
    Ok(None)
}
