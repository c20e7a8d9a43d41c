//! The XDP program's verdict logic run on the host: the shared `judge` over `HashMap`s and a
//! clock that stands still (like a burst inside one `BPF_PROG_TEST_RUN` call) unless the
//! caller moves it (the differential fuzzer sets it to the program's clock before each frame).

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use icmp_guard::policy::Cidr;
use icmp_guard_common::{
    Config, Reason, SourceKey, SourceRecord, SourceState,
    bucket::{Bucket, Class},
    config::prefix_mask,
    policy::{self, Env, List},
    reason::COUNTER_SLOTS,
    seen,
};

/// Buckets, lists, counters and a clock.
pub struct HostEnv {
    pub config: Config,
    pub now_ns: u64,
    pub sources: RefCell<HashMap<SourceKey, SourceState>>,
    pub global: Bucket,
    pub exempt: Bucket,
    pub admission: [Bucket; 2],
    pub seen: Vec<seen::Line>,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub counters: [u64; COUNTER_SLOTS as usize],
}

impl HostEnv {
    /// An environment with `config` and the lists, whose sizes go into the config as the
    /// CLI records them.
    #[must_use]
    pub fn new(mut config: Config, allow: &[Cidr], deny: &[Cidr]) -> Self {
        config.allow_entries = allow.len() as u32;
        config.deny_entries = deny.len() as u32;
        Self {
            config,
            now_ns: 1_000_000_000,
            sources: RefCell::default(),
            global: Bucket::default(),
            exempt: Bucket::default(),
            admission: [Bucket::default(), Bucket::default()],
            seen: (0..seen::LINES).map(|_| seen::Line::new()).collect(),
            allow: allow.to_vec(),
            deny: deny.to_vec(),
            counters: [0; COUNTER_SLOTS as usize],
        }
    }

    /// Judges one frame and counts its reason, as the program's single exit does.
    pub fn run(&mut self, frame: &[u8]) -> Reason {
        let reason = policy::judge(frame, &*self);
        self.counters[reason.slot() as usize] += 1;
        reason
    }

    /// Forgets every source and refills the global, exempt and admission budgets, like the CLI's
    /// reset of the program's maps; the recently-seen filter is left alone, as there.
    pub fn reset_buckets(&mut self) {
        self.sources.get_mut().clear();
        self.global = Bucket::default();
        self.exempt = Bucket::default();
        self.admission = [Bucket::default(), Bucket::default()];
    }

    /// Every tracked source with its record, as userspace reads the program's table.
    #[must_use]
    pub fn records(&self) -> BTreeMap<SourceKey, SourceRecord> {
        self.sources
            .borrow()
            .iter()
            .map(|(key, s)| {
                let record = SourceRecord {
                    echo_tat_ns: s.echo.load(Relaxed),
                    reply_tat_ns: s.reply.load(Relaxed),
                    passed: s.passed.load(Relaxed),
                    dropped: s.dropped.load(Relaxed),
                };
                (*key, record)
            })
            .collect()
    }

    /// Starts tracking `key` with `record`, as a write to the program's table would.
    pub fn set_source(&mut self, key: SourceKey, record: &SourceRecord) {
        let state = SourceState {
            echo: AtomicU64::new(record.echo_tat_ns),
            reply: AtomicU64::new(record.reply_tat_ns),
            passed: AtomicU64::new(record.passed),
            dropped: AtomicU64::new(record.dropped),
        };
        self.sources.get_mut().insert(key, state);
    }
}

impl Env for HostEnv {
    fn config(&self) -> Option<&Config> {
        Some(&self.config)
    }

    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn with_source<R>(&self, key: &SourceKey, f: impl FnOnce(&SourceState) -> R) -> Option<R> {
        self.sources.borrow().get(key).map(f)
    }

    fn insert_source(&self, key: &SourceKey, state: &SourceState) -> bool {
        let copy = |cell: &AtomicU64| AtomicU64::new(cell.load(Relaxed));
        let state = SourceState {
            echo: copy(&state.echo),
            reply: copy(&state.reply),
            passed: copy(&state.passed),
            dropped: copy(&state.dropped),
        };
        self.sources.borrow_mut().insert(*key, state);
        true
    }

    fn with_global<R>(&self, f: impl FnOnce(&Bucket) -> R) -> Option<R> {
        Some(f(&self.global))
    }

    fn with_exempt<R>(&self, f: impl FnOnce(&Bucket) -> R) -> Option<R> {
        Some(f(&self.exempt))
    }

    fn with_admission<R>(&self, class: Class, f: impl FnOnce(&Bucket) -> R) -> Option<R> {
        self.admission.get(class.slot() as usize).map(f)
    }

    fn with_seen<R>(&self, line: u32, f: impl FnOnce(&seen::Line) -> R) -> Option<R> {
        self.seen.get(line as usize).map(f)
    }

    fn listed(&self, list: List, _bank: u32, addr: &[u8; 16]) -> bool {
        // One bank: the model holds the list in force.
        let prefixes = match list {
            List::Allow => &self.allow,
            List::Deny => &self.deny,
        };
        prefixes.iter().any(|p| {
            let mask = prefix_mask(p.len);
            (0..16).all(|i| addr[i] & mask[i] == p.addr[i])
        })
    }
}
