//! A disagreement as a file to replay: JSON with the policy (every knob by its config-file
//! name, dry-run, the filter's seed, the clock tick the limits were derived for, the lists),
//! the preset state (times as offsets from the batch's start), the frames in hex with their
//! repeat counts, and what each side did with the frame where they parted, with every
//! difference spelled out. `icmp-guard-fuzz --replay FILE` runs it again ([`super::replay`]).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, ensure};
use icmp_guard::policy::{Overrides, describe, knobs};
use icmp_guard_common::{Reason, bucket::Class};
use serde_json::{Map, Value, json};

use super::{
    engine::{
        Batch, Disagreement, Offset, Outcome, Preset, PresetSource, Sent, action_name, key_text,
        parse_key,
    },
    mutate::MIN_FRAME,
    policy::Policy,
};

/// What a disagreement file holds.
#[derive(Clone, Debug)]
pub struct Record {
    /// The run's seed and the batch's number in it.
    pub seed: u64,
    pub batch_number: u64,
    pub policy: Policy,
    /// The frames to replay: the smallest of the disagreeing frame alone, the frame after the
    /// preset, and the batch up to the frame, that disagreed again when replayed.
    pub batch: Batch,
    /// Whether `batch` disagreed again right after (when none did, `batch` is the whole batch
    /// up to the frame, and the disagreement may depend on timing).
    pub reproduced: bool,
    /// The disagreement as found, in the original batch.
    pub found: Disagreement,
}

/// What a replay needs from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayable {
    pub policy: Policy,
    pub batch: Batch,
}

impl Record {
    /// The file's name in the output folder.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!("disagreement-{:016x}-{}.json", self.seed, self.batch_number)
    }

    /// The record as JSON.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let culprit = &self.found;
        json!({
            "about": "icmp-guard differential fuzzer: a frame the host model and the XDP \
                      program judged differently; replay with `cargo xtask fuzz --replay FILE`",
            "seed": self.seed,
            "batch": self.batch_number,
            "reproduced": self.reproduced,
            "policy": policy_json(&self.policy),
            "preset": preset_json(&self.batch.preset),
            "frames": self.batch.sent.iter().map(|s| json!({
                "hex": hex(&s.frame),
                "repeat": s.repeat,
            })).collect::<Vec<_>>(),
            "disagreement": {
                "frame_in_batch": culprit.index,
                "repetition": culprit.repetition,
                "clock_ns": culprit.clock_ns,
                "differences": culprit.differences(),
                "model": outcome_json(&culprit.model),
                "program": outcome_json(&culprit.program),
            },
        })
    }

    /// Writes the record into `dir` (created if missing); the file's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(self.file_name());
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Replayable {
    /// Reads the policy and the frames of a record file.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_json(&json).with_context(|| format!("reading {}", path.display()))
    }

    /// The policy and the frames of a record's JSON.
    pub fn from_json(json: &Value) -> Result<Self> {
        let policy = read_policy(field(json, "policy")?)?;
        let preset = read_preset(field(json, "preset")?)?;
        let sent = array(json, "frames")?
            .iter()
            .map(|f| {
                let frame = unhex(text(f, "hex")?)?;
                let repeat = u32::try_from(number(f, "repeat")?)?;
                ensure!(repeat >= 1, "a frame is sent at least once");
                ensure!(frame.len() >= MIN_FRAME, "a frame holds an Ethernet header");
                Ok(Sent { frame, repeat })
            })
            .collect::<Result<Vec<_>>>()?;
        ensure!(!sent.is_empty(), "no frames to replay");
        Ok(Self {
            policy,
            batch: Batch { preset, sent },
        })
    }
}

fn policy_json(policy: &Policy) -> Value {
    let limits: Map<String, Value> = policy
        .limits
        .given()
        .map(|(knob, value)| (knob.name.to_owned(), json!(value)))
        .collect();
    json!({
        "limits": limits,
        "dry_run": policy.limits.dry_run.unwrap_or(false),
        "seen_seed": policy.seen_seed,
        "tick_ns": policy.tick_ns,
        "allow": policy.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "deny": policy.deny.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "summary": policy.config().map_or_else(|e| format!("{e:#}"), |c| describe(&c)),
    })
}

fn read_policy(json: &Value) -> Result<Policy> {
    let mut limits = Overrides::default();
    limits.dry_run = Some(
        field(json, "dry_run")?
            .as_bool()
            .context("dry_run is true or false")?,
    );
    for (name, value) in field(json, "limits")?
        .as_object()
        .context("limits is a table")?
    {
        let knob = knobs::by_name(name).with_context(|| format!("no knob {name}"))?;
        let value = value
            .as_u64()
            .with_context(|| format!("{name} is a number"))?;
        limits.set(knob, u32::try_from(value)?);
    }
    let list = |name| -> Result<Vec<_>> {
        array(json, name)?
            .iter()
            .map(|p| {
                let p = p.as_str().context("a prefix is a string")?;
                p.parse().map_err(|e: String| anyhow::anyhow!(e))
            })
            .collect()
    };
    let policy = Policy {
        limits,
        seen_seed: number(json, "seen_seed")?,
        tick_ns: number(json, "tick_ns")?,
        allow: list("allow")?,
        deny: list("deny")?,
    };
    policy.config()?;
    Ok(policy)
}

fn preset_json(preset: &Preset) -> Value {
    json!({
        "global_offset_ns": preset.global,
        "exempt_offset_ns": preset.exempt,
        "admission_offset_ns": preset.admission,
        "sources": preset.sources.iter().map(|s| json!({
            "key": key_text(&s.key),
            "echo_offset_ns": s.echo,
            "reply_offset_ns": s.reply,
            "passed": s.passed,
            "dropped": s.dropped,
        })).collect::<Vec<_>>(),
        "seen": preset.seen.iter().map(|(key, offset)| json!({
            "key": key_text(key),
            "offset_ns": offset,
        })).collect::<Vec<_>>(),
    })
}

fn read_preset(json: &Value) -> Result<Preset> {
    let admission = array(json, "admission_offset_ns")?;
    ensure!(admission.len() == 2, "two admission budgets");
    Ok(Preset {
        global: offset(field(json, "global_offset_ns")?)?,
        exempt: offset(field(json, "exempt_offset_ns")?)?,
        admission: [offset(&admission[0])?, offset(&admission[1])?],
        sources: array(json, "sources")?
            .iter()
            .map(|s| {
                Ok(PresetSource {
                    key: parse_key(text(s, "key")?)?,
                    echo: offset(field(s, "echo_offset_ns")?)?,
                    reply: offset(field(s, "reply_offset_ns")?)?,
                    passed: number(s, "passed")?,
                    dropped: number(s, "dropped")?,
                })
            })
            .collect::<Result<_>>()?,
        seen: array(json, "seen")?
            .iter()
            .map(|s| {
                let stamp = field(s, "offset_ns")?
                    .as_i64()
                    .context("offset_ns is a number")?;
                Ok((parse_key(text(s, "key")?)?, stamp))
            })
            .collect::<Result<_>>()?,
    })
}

fn outcome_json(outcome: &Outcome) -> Value {
    let counters: Map<String, Value> = Reason::ALL
        .iter()
        .zip(&outcome.counters)
        .filter(|(_, n)| **n != 0)
        .map(|(r, n)| (r.name().to_owned(), json!(n)))
        .collect();
    let state = &outcome.state;
    json!({
        "action": action_name(outcome.action),
        "counters": counters,
        "sources": state.sources.iter().map(|(key, r)| json!({
            "key": key_text(key),
            "echo_tat_ns": r.echo_tat_ns,
            "reply_tat_ns": r.reply_tat_ns,
            "passed": r.passed,
            "dropped": r.dropped,
        })).collect::<Vec<_>>(),
        "global_tat_ns": state.global,
        "exempt_tat_ns": state.exempt,
        "admission_tat_ns": {
            "echo": state.admission[Class::Echo.slot() as usize],
            "reply": state.admission[Class::Reply.slot() as usize],
        },
        "seen": state.seen.iter().map(|(line, words)| json!({
            "line": line,
            "words": words,
        })).collect::<Vec<_>>(),
    })
}

fn field<'a>(json: &'a Value, name: &str) -> Result<&'a Value> {
    json.get(name).with_context(|| format!("no field {name}"))
}

fn array<'a>(json: &'a Value, name: &str) -> Result<&'a Vec<Value>> {
    field(json, name)?
        .as_array()
        .with_context(|| format!("{name} is a list"))
}

fn text<'a>(json: &'a Value, name: &str) -> Result<&'a str> {
    field(json, name)?
        .as_str()
        .with_context(|| format!("{name} is a string"))
}

fn number(json: &Value, name: &str) -> Result<u64> {
    field(json, name)?
        .as_u64()
        .with_context(|| format!("{name} is a number"))
}

fn offset(json: &Value) -> Result<Offset> {
    if json.is_null() {
        return Ok(None);
    }
    json.as_i64()
        .map(Some)
        .context("an offset is a number or null")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    ensure!(
        text.len().is_multiple_of(2) && text.is_ascii(),
        "hex of whole bytes"
    );
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).context("hex digits"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::{
        engine::{Outcome, State},
        rng::Rng,
    };
    use icmp_guard_common::SourceKey;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(unhex(&hex(&[0, 0xab, 0xff])).unwrap(), [0, 0xab, 0xff]);
        for bad in ["abc", "zz", "é1"] {
            assert!(unhex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_reads_back_as_the_policy_and_frames_it_was_written_with() {
        let mut rng = Rng::new(4);
        let policy = Policy::random(&mut rng, 4_000_000);
        let key = SourceKey::v4([198, 51, 100, 2]);
        let batch = Batch {
            preset: Preset {
                global: Some(-5),
                exempt: Some(-7),
                admission: [None, Some(1_000)],
                sources: vec![PresetSource {
                    key,
                    echo: Some(20),
                    reply: None,
                    passed: 3,
                    dropped: 1,
                }],
                seen: vec![(key, -61_000_000_000)],
            },
            sent: vec![Sent {
                frame: crate::packet::echo_from(crate::fixtures::SRC),
                repeat: 3,
            }],
        };
        let outcome = Outcome {
            action: 2,
            counters: vec![0; Reason::ALL.len()],
            state: State {
                sources: std::collections::BTreeMap::new(),
                global: 0,
                exempt: 0,
                admission: [0, 0],
                seen: std::collections::BTreeMap::new(),
            },
        };
        let record = Record {
            seed: 1,
            batch_number: 2,
            policy: policy.clone(),
            batch: batch.clone(),
            reproduced: true,
            found: Disagreement {
                index: 0,
                repetition: 2,
                clock_ns: 9,
                model: outcome.clone(),
                program: Outcome {
                    action: 1,
                    ..outcome
                },
            },
        };
        let json = record.to_json();
        assert_eq!(
            json["disagreement"]["differences"][0],
            "action: model XDP_PASS, program XDP_DROP"
        );
        assert_eq!(
            Replayable::from_json(&json).unwrap(),
            Replayable { policy, batch }
        );
    }

    /// An edit of a record's JSON.
    type Edit = fn(&mut Value);

    /// Files the replay refuses: (what is wrong, the JSON edit).
    #[test]
    fn broken_records_are_refused() {
        let mut rng = Rng::new(8);
        let good = json!({
            "policy": policy_json(&Policy::random(&mut rng, 4_000_000)),
            "preset": preset_json(&Preset::default()),
            "frames": [{"hex": hex(&[0; 14]), "repeat": 1}],
        });
        assert!(Replayable::from_json(&good).is_ok());
        let cases: [(&str, Edit); 5] = [
            ("no frames", |j| j["frames"] = json!([])),
            ("a runt frame", |j| j["frames"][0]["hex"] = json!("00")),
            ("repeat zero", |j| j["frames"][0]["repeat"] = json!(0)),
            ("an unknown knob", |j| {
                j["policy"]["limits"]["warp"] = json!(1);
            }),
            ("a knob out of range", |j| {
                j["policy"]["limits"]["echo_rate"] = json!(0);
            }),
        ];
        for (what, edit) in cases {
            let mut bad = good.clone();
            edit(&mut bad);
            assert!(Replayable::from_json(&bad).is_err(), "{what}");
        }
    }
}
