//! The XDP program's verdict logic run on the host: the shared [`policy::judge`] over
//! userspace maps, with a clock the caller sets. `replay` runs captures through it with the
//! capture's timestamps as the clock; the tests run the fixture table through it and the
//! differential fuzzer holds it to the real program.
//!
//! The per-source table is bounded by the config's `max_sources`, as the program's LRU hash
//! is, but evicts differently: here the least recently used source is evicted exactly, and
//! only once the table is full; the kernel's common LRU (`BPF_MAP_TYPE_LRU_HASH`, flags 0)
//! marks entries as used with a reference bit, shrinks from per-CPU free lists and may evict
//! a little before the table is full. With fewer sources than `max_sources` the two agree.

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, HashMap},
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use icmp_guard_common::{
    Config, Reason, SourceKey, SourceRecord, SourceState,
    bucket::{Bucket, Class},
    config::prefix_mask,
    policy::{self, Budget, Env, Insert, List},
    reason::COUNTER_SLOTS,
    seen,
};

use crate::policy::Cidr;

/// Where the host clock starts (and where `replay` puts a capture's first frame): not 0, so
/// a bucket's empty time stamp is never mistaken for "now".
pub const CLOCK_START_NS: u64 = 1_000_000_000;

/// The per-source table: sources by key, with the order they were last used in.
#[derive(Default)]
pub struct Sources {
    entries: HashMap<SourceKey, (SourceState, u64)>,
    /// Last use (a counter, not a time) to key: the first entry is the least recently used.
    by_use: BTreeMap<u64, SourceKey>,
    uses: u64,
    /// Sources evicted to make room since the table was created.
    pub evicted: u64,
}

impl Sources {
    fn touch(&mut self, key: &SourceKey) -> bool {
        let Some((_, used)) = self.entries.get_mut(key) else {
            return false;
        };
        self.by_use.remove(used);
        self.uses += 1;
        *used = self.uses;
        self.by_use.insert(self.uses, *key);
        true
    }

    fn insert(&mut self, key: SourceKey, state: SourceState, capacity: usize) {
        if let Some((_, used)) = self.entries.remove(&key) {
            self.by_use.remove(&used);
        }
        while self.entries.len() >= capacity.max(1) {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
            self.evicted += 1;
        }
        self.uses += 1;
        self.by_use.insert(self.uses, key);
        self.entries.insert(key, (state, self.uses));
    }

    /// The state of `key`, if tracked (without counting as a use).
    #[must_use]
    pub fn get(&self, key: &SourceKey) -> Option<&SourceState> {
        self.entries.get(key).map(|(state, _)| state)
    }

    /// How many sources are tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no source is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Buckets, lists, counters and a clock.
pub struct HostEnv {
    pub config: Config,
    pub now_ns: u64,
    pub sources: RefCell<Sources>,
    pub global: Bucket,
    pub exempt: Bucket,
    /// The tokens of the global and exempt budgets taken ahead: the model is one CPU.
    pub ahead: [Cell<u64>; 2],
    /// The CPUs the model's budgets are shared by, which sizes what it takes ahead
    /// (`bucket::ahead`): 1 unless set, as if its one CPU were the host's only one.
    pub cpus: u32,
    pub admission: [Bucket; 2],
    pub seen: Vec<seen::Line>,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub counters: [u64; COUNTER_SLOTS as usize],
}

impl HostEnv {
    /// An environment with `config` and the lists, whose sizes go into the config as the
    /// CLI records them. The clock stands at [`CLOCK_START_NS`] until the caller moves it.
    #[must_use]
    pub fn new(mut config: Config, allow: &[Cidr], deny: &[Cidr]) -> Self {
        config.allow_entries = allow.len() as u32;
        config.deny_entries = deny.len() as u32;
        Self {
            config,
            now_ns: CLOCK_START_NS,
            sources: RefCell::default(),
            global: Bucket::default(),
            exempt: Bucket::default(),
            ahead: [Cell::new(0), Cell::new(0)],
            cpus: 1,
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
        *self.sources.get_mut() = Sources::default();
        self.global = Bucket::default();
        self.exempt = Bucket::default();
        self.ahead = [Cell::new(0), Cell::new(0)];
        self.admission = [Bucket::default(), Bucket::default()];
    }

    /// Every tracked source with its record, as userspace reads the program's table.
    #[must_use]
    pub fn records(&self) -> BTreeMap<SourceKey, SourceRecord> {
        self.sources
            .borrow()
            .entries
            .iter()
            .map(|(key, (s, _))| {
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
        let capacity = self.capacity();
        self.sources.get_mut().insert(key, state, capacity);
    }

    fn capacity(&self) -> usize {
        usize::try_from(self.config.max_sources).unwrap_or(usize::MAX)
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
        if !self.sources.borrow_mut().touch(key) {
            return None;
        }
        self.sources.borrow().entries.get(key).map(|(s, _)| f(s))
    }

    fn insert_source(&self, key: &SourceKey, state: &SourceState) -> Insert {
        // As the program's insert with BPF_NOEXIST. One thread never finds the entry here
        // (it has just looked); the program does when another CPU created it meanwhile.
        if self.sources.borrow().get(key).is_some() {
            return Insert::Exists;
        }
        let copy = |cell: &AtomicU64| AtomicU64::new(cell.load(Relaxed));
        let state = SourceState {
            echo: copy(&state.echo),
            reply: copy(&state.reply),
            passed: copy(&state.passed),
            dropped: copy(&state.dropped),
        };
        self.sources
            .borrow_mut()
            .insert(*key, state, self.capacity());
        Insert::Created
    }

    fn with_budget<R>(
        &self,
        budget: Budget,
        f: impl FnOnce(&Bucket, &Cell<u64>) -> R,
    ) -> Option<R> {
        let bucket = match budget {
            Budget::Global => &self.global,
            Budget::Exempt => &self.exempt,
        };
        Some(f(bucket, self.ahead.get(budget.slot() as usize)?))
    }

    fn cpus(&self) -> u32 {
        self.cpus
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

#[cfg(test)]
mod tests {
    use icmp_guard_common::bucket::SourceKey;

    use super::*;

    fn key(last: u8) -> SourceKey {
        SourceKey::v4([198, 51, 100, last])
    }

    /// (capacity, operations: a positive number inserts that source, a negative one uses it,
    /// the sources kept, how many were evicted).
    #[test]
    fn the_table_evicts_the_least_recently_used_once_full() {
        for (capacity, ops, kept, evicted) in [
            (3, &[1_i16, 2, 3][..], &[1_u8, 2, 3][..], 0),
            (2, &[1, 2, 3], &[2, 3], 1),
            (2, &[1, 2, -1, 3], &[1, 3], 1),
            (1, &[1, 2, 3], &[3], 2),
            (2, &[1, 1, 1, 2], &[1, 2], 0),
        ] {
            let mut sources = Sources::default();
            for &op in ops {
                let last = op.unsigned_abs() as u8;
                if op > 0 {
                    sources.insert(key(last), SourceState::first_dropped(), capacity);
                } else {
                    assert!(sources.touch(&key(last)), "{ops:?}");
                }
            }
            let mut got: Vec<u8> = sources.entries.keys().map(|k| k.addr[15]).collect();
            got.sort_unstable();
            assert_eq!(got, kept, "{capacity} {ops:?}");
            assert_eq!(sources.by_use.len(), sources.len(), "{ops:?}");
            assert_eq!(sources.evicted, evicted, "{ops:?}");
        }
    }
}
