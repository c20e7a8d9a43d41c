//! `replay --kernel`: every judged frame also goes through the real, verifier-checked program,
//! loaded from the embedded object without attaching it or pinning anything and run with
//! `BPF_PROG_TEST_RUN`; its reason is the counter that moved.
//!
//! The two are compared by stage, not by exact reason: the program meters against its own
//! clock (the time of the test run, not the capture's), so whether a metered frame passed,
//! was over a bucket or was not admitted may differ without either being wrong. Every other
//! reason (parse, martian, oversize, lists, types, broadcast) must be the same.

use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp},
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

/// The comparison so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub compared: u64,
    /// The first [`LISTED_MAX`] differences.
    pub differences: Vec<Difference>,
    pub total: u64,
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
}

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
            .map_err(|e| Error::Load(Box::new(e)))?;
        let program: &mut Xdp = ebpf
            .program_mut(maps::PROGRAM)
            .ok_or_else(|| Error::Load("the object has no XDP program".into()))?
            .try_into()
            .map_err(|e| Error::Load(Box::new(e)))?;
        program.load().map_err(|e| Error::Load(Box::new(e)))?;
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

    /// Runs `frame` through the program once; the reason whose counter moved.
    pub fn judge(&mut self, frame: &[u8]) -> Result<Reason, Error> {
        let program: &Xdp = self
            .ebpf
            .program(maps::PROGRAM)
            .ok_or_else(|| Error::Load("the object has no XDP program".into()))?
            .try_into()
            .map_err(|e| Error::Load(Box::new(e)))?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = 1;
        program.test_run(opts).map_err(|e| {
            Error::Load(format!("BPF_PROG_TEST_RUN on a {}-byte frame: {e}", frame.len()).into())
        })?;
        let after = Self::read(&self.maps)?;
        let moved = Reason::ALL
            .iter()
            .zip(after.iter().zip(&self.counters))
            .find(|(_, (a, b))| a != b)
            .map(|(r, _)| *r);
        self.counters = after;
        moved.ok_or_else(|| {
            Error::Load(
                format!(
                    "the program moved no counter on a {}-byte frame",
                    frame.len()
                )
                .into(),
            )
        })
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
}
