//! The program's maps as the fixture runners drive them, whether the program was loaded by
//! the test (`BPF_PROG_TEST_RUN`) or attached by the CLI and opened from its pins. Built on
//! the product's own typed handles ([`icmp_guard::pinned::maps::Maps`]), so the tests write
//! limits and lists exactly as the CLI does.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use aya::Ebpf;
use icmp_guard::pinned::{Guard, Pins, maps::Maps};
use icmp_guard_common::{Reason, policy::List};

use crate::fixtures::Case;

/// Handles on every map of one program instance.
pub struct ProgramMaps(Maps);

impl ProgramMaps {
    /// Takes the maps out of a loaded object.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Ok(Self(Maps::from_ebpf("the test program", ebpf)?))
    }

    /// Opens the maps the CLI pinned for `iface` under `bpffs`.
    pub fn from_pins(bpffs: &Path, iface: &str) -> Result<Self> {
        let iface = iface.parse().context("the lab's interface name")?;
        Ok(Self(Guard::open(Pins::new(bpffs, &iface))?.maps))
    }

    /// Loads a case: its config, its lists, and fresh buckets.
    pub fn prepare(&mut self, case: &Case) -> Result<()> {
        self.0.set_config(&case.effective_config())?;
        self.0.set_list(List::Allow, &case.allow)?;
        self.0.set_list(List::Deny, &case.deny)?;
        self.0.reset_buckets()?;
        Ok(())
    }

    /// Every counter, summed over CPUs, in `Reason::ALL` order.
    pub fn counters(&self) -> Result<Vec<u64>> {
        Ok(self.0.counters()?.into_iter().map(|(_, n)| n).collect())
    }
}

/// Checks that the counters moved exactly as the case says.
pub fn check_counters(case: &Case, before: &[u64], after: &[u64]) -> Result<()> {
    for (i, reason) in Reason::ALL.iter().enumerate() {
        let moved = after[i] - before[i];
        ensure!(
            moved == case.expected(*reason),
            "{}: counter {} moved by {moved}, expected {}",
            case.what,
            reason.name(),
            case.expected(*reason)
        );
    }
    Ok(())
}
