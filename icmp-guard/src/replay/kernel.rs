//! `replay --kernel`: every judged frame also goes through the real, verifier-checked program,
//! loaded from the embedded object without attaching it or pinning anything and run with
//! `BPF_PROG_TEST_RUN`; its reason is the counter that moved.
//!
//! The two are compared by stage, not by exact reason: the program meters against its own
//! clock (the time of the test run, not the capture's), so whether a metered frame passed,
//! was over a bucket or was not admitted may differ without either being wrong. Every other
//! reason (parse, martian, oversize, lists, types, broadcast) must be the same.
//!
//! A frame the kernel will not run (`BPF_PROG_TEST_RUN` takes no frame under the 14 bytes of
//! an Ethernet header, and none larger than it lays out in pages) is left out of the
//! comparison, counted and named; the host's report still judges it.

use aya::{
    Ebpf,
    programs::{ProgramError, TestRun as _, TestRunOptions, Xdp},
};
use icmp_guard_common::{Config, Reason, maps};

use crate::{
    Error,
    kernel::object,
    pinned::maps::{Lists, Maps},
    policy::Cidr,
};

use super::metered;

/// Differences kept to be listed; the rest are only counted.
pub const LISTED_MAX: usize = 1000;

/// The stage a reason belongs to, for comparing the host's reason with the program's.
#[must_use]
pub const fn stage(reason: Reason) -> &'static str {
    if metered(reason) {
        "metered"
    } else {
        match reason {
            Reason::PassedExempt | Reason::DroppedRateExempt => "exempt",
            other => other.name(),
        }
    }
}

/// A frame the host and the program judged differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    pub frame: u64,
    pub host: Reason,
    pub kernel: Reason,
}

/// A frame the kernel would not run, left out of the comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub frame: u64,
    pub bytes: usize,
    /// The kernel's error, in words.
    pub why: String,
}

/// The comparison so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub compared: u64,
    /// The first [`LISTED_MAX`] differences.
    pub differences: Vec<Difference>,
    pub total: u64,
    /// The first [`LISTED_MAX`] frames the kernel would not run.
    pub refusals: Vec<Refusal>,
    pub refused: u64,
}

impl Comparison {
    /// Records frame `frame`'s two reasons.
    pub fn record(&mut self, frame: u64, host: Reason, kernel: Reason) {
        self.compared += 1;
        if stage(host) == stage(kernel) {
            return;
        }
        self.total += 1;
        if self.differences.len() < LISTED_MAX {
            self.differences.push(Difference {
                frame,
                host,
                kernel,
            });
        }
    }

    /// Records that the kernel would not run frame `frame` of `bytes` bytes, and why.
    pub fn refuse(&mut self, frame: u64, bytes: usize, why: &std::io::Error) {
        self.refused += 1;
        if self.refusals.len() < LISTED_MAX {
            self.refusals.push(Refusal {
                frame,
                bytes,
                why: why.to_string(),
            });
        }
    }
}

/// What one test run of a frame gave.
#[derive(Debug)]
pub enum Run {
    /// The reason whose counter moved.
    Judged(Reason),
    /// The kernel would not run the frame: too short for an Ethernet header (`EINVAL`), or
    /// larger than a test run lays out (`ENOMEM`, `E2BIG`; `EINVAL` on kernels without
    /// multi-buffer test runs).
    Refused(std::io::Error),
}

/// Why the comparison cannot go on past a frame.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("BPF_PROG_TEST_RUN failed on its {bytes}-byte frame: {}", why(.source))]
    Run {
        bytes: usize,
        #[source]
        source: ProgramError,
    },
    #[error("reading the program's counters after its test run failed: {0}")]
    Counters(#[source] Box<Error>),
    #[error("the program moved no counter on its {bytes}-byte frame")]
    NoCounter { bytes: usize },
    #[error("the replay's object has no XDP program {0:?}")]
    NoProgram(&'static str),
}

/// A test run's error in words: the kernel's, for a failed system call.
fn why(e: &ProgramError) -> String {
    match e {
        ProgramError::SyscallError(s) => s.io_error.to_string(),
        other => other.to_string(),
    }
}

/// Whether the test run's error `e` is the kernel refusing the frame itself (see
/// [`Run::Refused`]) rather than the run failing.
#[must_use]
pub fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOMEM | libc::E2BIG)
    )
}

/// What a load error names the program's use as.
const TARGET: &str = "replay --kernel";

/// The program, loaded for test runs, with the replay's policy.
pub struct Program {
    ebpf: Ebpf,
    maps: Maps,
    counters: Vec<u64>,
}

impl Program {
    /// Loads the program (the verifier runs here) and puts `config` and the lists in force.
    pub fn load(config: &Config, allow: &[Cidr], deny: &[Cidr]) -> Result<Self, Error> {
        let mut ebpf = object::loader()
            .load(object::ICMP_GUARD)
            .map_err(|e| Error::of_object_load(TARGET, e))?;
        let program: &mut Xdp = ebpf
            .program_mut(maps::PROGRAM)
            .ok_or_else(|| Error::Object(format!("program {} missing from it", maps::PROGRAM)))?
            .try_into()
            .map_err(|e: ProgramError| Error::Object(format!("program {}: {e}", maps::PROGRAM)))?;
        program.load().map_err(Error::load(TARGET))?;
        let mut maps = Maps::from_ebpf("the replay's program", &mut ebpf)?;
        maps.switch_lists(config, &Lists::new(allow, deny))?;
        maps.reset_buckets()?;
        let counters = Self::read(&maps)?;
        Ok(Self {
            ebpf,
            maps,
            counters,
        })
    }

    fn read(maps: &Maps) -> Result<Vec<u64>, Error> {
        Ok(maps.counters()?.into_iter().map(|(_, n)| n).collect())
    }

    /// Runs `frame` through the program once: the reason whose counter moved, or the
    /// kernel's refusal of the frame.
    pub fn judge(&mut self, frame: &[u8]) -> Result<Run, JudgeError> {
        let bytes = frame.len();
        let program: &Xdp = self
            .ebpf
            .program(maps::PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or(JudgeError::NoProgram(maps::PROGRAM))?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = 1;
        match program.test_run(opts) {
            Ok(_) => {}
            Err(ProgramError::SyscallError(s)) if refused(&s.io_error) => {
                return Ok(Run::Refused(s.io_error));
            }
            Err(source) => return Err(JudgeError::Run { bytes, source }),
        }
        let after = Self::read(&self.maps).map_err(|e| JudgeError::Counters(Box::new(e)))?;
        let moved = Reason::ALL
            .iter()
            .zip(after.iter().zip(&self.counters))
            .find(|(_, (a, b))| a != b)
            .map(|(r, _)| *r);
        self.counters = after;
        moved
            .map(Run::Judged)
            .ok_or(JudgeError::NoCounter { bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (host reason, kernel reason, reported as a difference).
    #[test]
    fn only_differences_outside_metering_are_reported() {
        use Reason::{
            Allowed, DroppedMalformed, DroppedNewSource, DroppedRateExempt, DroppedRateGlobal,
            DroppedRateSource, Passed, PassedExempt, PassedNonIcmp,
        };
        let cases = [
            (Passed, Passed, false),
            (Passed, DroppedRateSource, false),
            (DroppedNewSource, DroppedRateGlobal, false),
            (PassedExempt, DroppedRateExempt, false),
            (DroppedMalformed, DroppedMalformed, false),
            (Passed, DroppedMalformed, true),
            (PassedNonIcmp, DroppedMalformed, true),
            (Allowed, Passed, true),
            (PassedExempt, Passed, true),
        ];
        let mut comparison = Comparison::default();
        for (frame, (host, kernel, _)) in (1..).zip(cases) {
            comparison.record(frame, host, kernel);
        }
        let wanted: Vec<Difference> = (1..)
            .zip(cases)
            .filter(|(_, c)| c.2)
            .map(|(frame, (host, kernel, _))| Difference {
                frame,
                host,
                kernel,
            })
            .collect();
        assert_eq!(comparison.compared, cases.len() as u64);
        assert_eq!(comparison.total, wanted.len() as u64);
        assert_eq!(comparison.differences, wanted);
    }

    /// (errno of a failed test run, a refusal of the frame: skipped rather than stopping).
    #[test]
    fn the_kernels_refusals_of_a_frame_are_told_from_failures() {
        for (errno, skipped) in [
            (libc::EINVAL, true),
            (libc::ENOMEM, true),
            (libc::E2BIG, true),
            (libc::EPERM, false),
            (libc::EFAULT, false),
            (libc::EOPNOTSUPP, false),
        ] {
            let e = std::io::Error::from_raw_os_error(errno);
            assert_eq!(refused(&e), skipped, "{e}");
        }
        assert!(!refused(&std::io::Error::other("no errno")));
    }

    #[test]
    fn refusals_are_counted_and_the_first_listed() {
        let mut comparison = Comparison::default();
        let e = std::io::Error::from_raw_os_error(libc::EINVAL);
        for frame in 1..=(LISTED_MAX as u64 + 5) {
            comparison.refuse(frame, 10, &e);
        }
        assert_eq!(comparison.refused, LISTED_MAX as u64 + 5);
        assert_eq!(comparison.refusals.len(), LISTED_MAX);
        assert_eq!(comparison.compared, 0);
        assert_eq!(
            comparison.refusals[0],
            Refusal {
                frame: 1,
                bytes: 10,
                why: e.to_string()
            }
        );
    }
}
