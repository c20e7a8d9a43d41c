//! The XDP program's verdict logic run on the host: the shared `judge` over a `HashMap` of
//! buckets and a clock that stands still (like a burst inside one `BPF_PROG_TEST_RUN` call).

use std::{cell::RefCell, collections::HashMap};

use icmp_guard_common::{
    Config, Limit, Reason, SourceKey, SourceState,
    policy::{self, Env},
    reason::COUNTER_SLOTS,
};

/// Buckets, counters and a clock.
pub struct HostEnv {
    pub config: Config,
    pub now_ns: u64,
    pub buckets: RefCell<HashMap<SourceKey, SourceState>>,
    pub counters: [u64; COUNTER_SLOTS as usize],
}

impl HostEnv {
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            config,
            now_ns: 1_000_000_000,
            buckets: RefCell::default(),
            counters: [0; COUNTER_SLOTS as usize],
        }
    }

    /// Judges one frame and counts its reason, as the program's single exit does.
    pub fn run(&mut self, frame: &[u8]) -> Reason {
        let reason = policy::judge(frame, &*self);
        self.counters[reason.slot() as usize] += 1;
        reason
    }
}

impl Env for HostEnv {
    fn config(&self) -> Option<&Config> {
        Some(&self.config)
    }

    fn charge(&self, key: SourceKey, limit: &Limit) -> Reason {
        let mut buckets = self.buckets.borrow_mut();
        let state = buckets.entry(key).or_default();
        if state.charge(self.now_ns, limit) {
            Reason::Passed
        } else {
            Reason::DroppedRateSource
        }
    }
}
