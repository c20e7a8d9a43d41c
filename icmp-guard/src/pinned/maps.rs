//! Typed handles on the program's maps, whether they were pinned by an attach ([`Guard`])
//! or taken out of an object the caller loaded ([`Maps::from_ebpf`], as the test harness
//! does for `BPF_PROG_TEST_RUN`).

use std::{
    collections::BTreeSet,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, IterableMap as _, Map, MapData, MapError, PerCpuArray, PerCpuValues,
        lpm_trie::{Key, LpmTrie},
    },
    programs::links::PinnedLink,
    sys::SyscallError,
};
use icmp_guard_common::{
    Config, Reason, SourceKey, SourceRecord,
    bucket::{self, Class, Limit},
    maps,
    policy::List,
};

use super::Pins;
use crate::{Error, policy::Cidr};

/// The pinned state of a guarded interface: where its pins are, and handles on its maps.
pub struct Guard {
    pub pins: Pins,
    pub maps: Maps,
}

impl Guard {
    /// Opens the pins of `pins.iface`; fails with [`Error::NotGuarded`] if there are none.
    pub fn open(pins: Pins) -> Result<Self, Error> {
        pins.check()?;
        if !pins.exist() {
            // A mistyped --bpffs says so, rather than that nothing is guarded there.
            let bpffs = pins.root().parent().unwrap_or(pins.root());
            if !super::bpffs::is_bpffs(bpffs) {
                return Err(Error::NotBpffs {
                    path: bpffs.to_path_buf(),
                });
            }
            return Err(Error::NotGuarded {
                iface: pins.iface.as_str().to_owned(),
                dir: pins.dir,
            });
        }
        // A pin that does not open as this version's map: the schema check names the map,
        // the field and the fix; a map missing or unreadable, at least the interface.
        let maps = Maps::from_pins(&pins).map_err(|e| match super::schema::check(&pins) {
            Err(incompatible) => incompatible,
            Ok(()) => Error::PinsUnreadable {
                iface: pins.iface.as_str().to_owned(),
                dir: pins.dir.clone(),
                cause: crate::error::chain(&e),
            },
        })?;
        Ok(Self { pins, maps })
    }

    /// Whether these maps are still the ones pinned for the interface: a guard detached and
    /// attached again (by a command or the service) has new maps, and a reader that kept the
    /// old ones would show counters nothing adds to any more.
    #[must_use]
    pub fn still_pinned(&self) -> bool {
        let path = self.pins.map(maps::CONFIG);
        let pinned = aya::maps::MapInfo::from_pin(&path).map(|info| info.id());
        let ours = self.maps.config.map().info().map(|info| info.id());
        matches!((pinned, ours), (Ok(pinned), Ok(ours)) if pinned == ours)
    }

    /// The id of the attached program, read through the pinned link.
    pub fn program_id(&self) -> Result<u32, Error> {
        let path = self.pins.link();
        let link =
            PinnedLink::from_pin(&path).map_err(Error::pin("opening the pinned link", &path))?;
        let info = aya::programs::links::FdLink::from(link)
            .info()
            .map_err(Error::pin("reading the pinned link", &path))?;
        Ok(info.program_id())
    }
}

/// Handles on every map of one program instance.
pub struct Maps {
    /// Whose maps these are, for messages (the interface name).
    label: String,
    config: Array<MapData, Config>,
    counters: PerCpuArray<MapData, u64>,
    sources: HashMap<MapData, SourceKey, SourceRecord>,
    /// The global and exempt budgets' buckets, and the admission budgets' two, as plain TATs.
    global: Array<MapData, u64>,
    /// The tokens of those two budgets each CPU took ahead; `None` while a guard attached by a
    /// version without it runs (its program holds no tokens).
    ahead: Option<PerCpuArray<MapData, u64>>,
    admission: Array<MapData, u64>,
    /// The allow list's two banks (`IG_ALLOW`, `IG_ALLOW_B`); the config says which is in
    /// force.
    allow: [Trie; 2],
    /// The deny list's two banks (`IG_DENY`, `IG_DENY_B`).
    deny: [Trie; 2],
}

type Trie = LpmTrie<MapData, [u8; 16], u8>;

/// The per-source table's size and cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceTable {
    pub capacity: u32,
    pub bytes: u64,
}

/// What one source's entry says became of its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceTotals {
    pub key: SourceKey,
    pub passed: u64,
    pub dropped: u64,
}

/// The best `n` of the sources offered to it by [`SourceTotals::rank`], and how many were
/// offered: a min-heap by rank, whose top is the weakest of the best so far.
struct Best {
    n: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Ranked>>,
    offered: usize,
}

/// A source ordered by [`SourceTotals::rank`].
#[derive(PartialEq, Eq)]
struct Ranked(SourceTotals);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.rank().cmp(&other.0.rank())
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Best {
    fn new(n: usize) -> Self {
        Self {
            n,
            // Grown as sources come: `--top` may ask for more than the table holds (any
            // number means "all of them"), which must not be allocated up front.
            heap: std::collections::BinaryHeap::with_capacity(n.saturating_add(1).min(1024)),
            offered: 0,
        }
    }

    fn offer(&mut self, source: SourceTotals) {
        self.offered += 1;
        self.heap.push(std::cmp::Reverse(Ranked(source)));
        if self.heap.len() > self.n {
            self.heap.pop();
        }
    }

    /// The best, best first, and how many were offered.
    fn finish(self) -> (Vec<SourceTotals>, usize) {
        let best = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|std::cmp::Reverse(Ranked(source))| source)
            .collect();
        (best, self.offered)
    }
}

impl SourceTotals {
    /// What sources are ranked by, greater first: the most drops, then the most passes, then
    /// the lowest key.
    #[must_use]
    pub fn rank(&self) -> (u64, u64, std::cmp::Reverse<SourceKey>) {
        (self.dropped, self.passed, std::cmp::Reverse(self.key))
    }
}

impl Maps {
    /// Takes the maps out of an object the caller loaded; `label` names them in messages.
    pub fn from_ebpf(label: impl Into<String>, ebpf: &mut Ebpf) -> Result<Self, Error> {
        Self::from_fn(label.into(), true, |name| {
            ebpf.take_map(name)
                .ok_or_else(|| Error::Object(format!("map {name} missing from it")))
        })
    }

    fn ahead_from(map: Map) -> Result<PerCpuArray<MapData, u64>, Error> {
        PerCpuArray::try_from(map).map_err(Error::map(maps::AHEAD))
    }

    /// Opens the maps pinned under `pins`, whether or not a link is pinned there.
    pub fn from_pins(pins: &Pins) -> Result<Self, Error> {
        // Not pinned for a guard attached by a version before it (whose program takes no
        // tokens ahead): the loader creates it when a newer program is swapped in.
        let has_ahead = pins.map(maps::AHEAD).exists();
        Self::from_fn(pins.iface.as_str().to_owned(), has_ahead, |name| {
            let path = pins.map(name);
            let data =
                MapData::from_pin(&path).map_err(Error::pin("opening the pinned map", &path))?;
            Map::from_map_data(data).map_err(Error::pin("opening the pinned map", &path))
        })
    }

    fn from_fn(
        label: String,
        has_ahead: bool,
        mut open: impl FnMut(&str) -> Result<Map, Error>,
    ) -> Result<Self, Error> {
        Ok(Self {
            config: Array::try_from(open(maps::CONFIG)?).map_err(Error::map(maps::CONFIG))?,
            counters: PerCpuArray::try_from(open(maps::COUNTERS)?)
                .map_err(Error::map(maps::COUNTERS))?,
            sources: HashMap::try_from(open(maps::SOURCES)?).map_err(Error::map(maps::SOURCES))?,
            global: Array::try_from(open(maps::GLOBAL)?).map_err(Error::map(maps::GLOBAL))?,
            ahead: if has_ahead {
                Some(Self::ahead_from(open(maps::AHEAD)?)?)
            } else {
                None
            },
            admission: Array::try_from(open(maps::ADMISSION)?)
                .map_err(Error::map(maps::ADMISSION))?,
            allow: [
                LpmTrie::try_from(open(maps::ALLOW)?).map_err(Error::map(maps::ALLOW))?,
                LpmTrie::try_from(open(maps::ALLOW_B)?).map_err(Error::map(maps::ALLOW_B))?,
            ],
            deny: [
                LpmTrie::try_from(open(maps::DENY)?).map_err(Error::map(maps::DENY))?,
                LpmTrie::try_from(open(maps::DENY_B)?).map_err(Error::map(maps::DENY_B))?,
            ],
            label,
        })
    }

    /// The current configuration.
    pub fn config(&self) -> Result<Config, Error> {
        self.config
            .get(&0, 0)
            .map_err(Error::map(format!("reading the config of {}", self.label)))
    }

    /// Replaces the configuration, in one map update. When a source prefix length changes,
    /// the entries of that family go too (see [`Maps::forget_sources`]).
    pub fn set_config(&mut self, cfg: &Config) -> Result<(), Error> {
        let old = self.config()?;
        let what = format!("writing the config of {}", self.label);
        self.config.set(0, cfg, 0).map_err(Error::map(what))?;
        // The config is in force: a failure now is no failure of the change, but leaves old
        // entries, which the LRU evicts in time.
        if let Err(e) = self.forget_sources(
            old.v4_prefix != cfg.v4_prefix,
            old.v6_prefix != cfg.v6_prefix,
        ) {
            log::warn!(
                "{}: some sources tracked under the old prefix may remain: {}",
                self.label,
                crate::error::chain(&e)
            );
        }
        if let Err(e) = self.rebase_budgets(&old, cfg) {
            log::warn!(
                "{}: a budget may refuse packets until the old limit's time has passed: {}",
                self.label,
                crate::error::chain(&e)
            );
        }
        Ok(())
    }

    /// Moves the shared budgets' TATs (global, exempt, and the admission budget of each
    /// class) from the limits of `old` to those of `new` (see [`bucket::rebase`]), so a smaller
    /// burst or a higher rate takes effect at once instead of refusing everything until the
    /// clock catches up with the old TAT. Run after the new config is written; what the
    /// program takes between the read and the write of a TAT is given back: a token of an
    /// admission budget, up to a CPU's take-ahead (`bucket::MAX_AHEAD`) of the global and
    /// exempt ones. The per-source buckets keep their TATs (rewriting an entry would lose the counts
    /// the program adds meanwhile): a source short of tokens under the old limit stays short
    /// for up to the old limit's time.
    fn rebase_budgets(&mut self, old: &Config, new: &Config) -> Result<(), Error> {
        let what = || format!("moving the budgets of {} to the new limits", self.label);
        let now = crate::kernel::clock_ns(libc::CLOCK_MONOTONIC_COARSE);
        let rebase = |map: &mut Array<MapData, u64>, slot: u32, was: &Limit, is: &Limit| {
            if was == is {
                return Ok(());
            }
            let tat = map.get(&slot, 0)?;
            let moved = bucket::rebase(tat, now, was, is);
            if moved != tat {
                map.set(slot, moved, 0)?;
            }
            Ok::<_, MapError>(())
        };
        rebase(
            &mut self.global,
            maps::GLOBAL_SLOT,
            &old.global,
            &new.global,
        )
        .and_then(|()| {
            rebase(
                &mut self.global,
                maps::EXEMPT_SLOT,
                &old.exempt,
                &new.exempt,
            )
        })
        .and_then(|()| {
            [Class::Echo, Class::Reply]
                .into_iter()
                .try_for_each(|class| {
                    rebase(
                        &mut self.admission,
                        class.slot(),
                        &old.new_source,
                        &new.new_source,
                    )
                })
        })
        .map_err(Error::map(what()))
    }

    /// Removes the source entries of IPv4 (`v4`) and of IPv6 (`v6`); how many it removed.
    ///
    /// For a prefix length that changed: the keys were masked with the old one, and nothing in
    /// an entry says which, so every view would print a `/32` host's entry as a `/24` with its
    /// host bits set, or a `/24`'s as its first host, and the program would never find them
    /// again. Run after the new config is written, so any entry made meanwhile with the old
    /// mask goes too (one made with the new mask merely starts afresh). The sources come back
    /// as new ones: through the admission budget, each with a full bucket.
    pub fn forget_sources(&mut self, v4: bool, v6: bool) -> Result<u64, Error> {
        if !v4 && !v6 {
            return Ok(0);
        }
        let mut keys = Vec::new();
        self.each_source(|source| {
            let v4_source = source.key.as_v4().is_some();
            if (v4_source && v4) || (!v4_source && v6) {
                keys.push(source.key);
            }
        })?;
        let mut removed = 0;
        for key in keys {
            match self.sources.remove(&key) {
                Ok(()) => removed += 1,
                // Evicted meanwhile.
                Err(MapError::SyscallError(SyscallError { io_error, .. }))
                    if io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    return Err(Error::map(format!(
                        "removing the sources of {} masked with the old prefix",
                        self.label
                    ))(e));
                }
            }
        }
        Ok(removed)
    }

    /// Every counter, summed over CPUs, in [`Reason::ALL`] order.
    pub fn counters(&self) -> Result<Vec<(Reason, u64)>, Error> {
        Reason::ALL
            .iter()
            .map(|&reason| {
                let values = self
                    .counters
                    .get(&reason.slot(), 0)
                    .map_err(Error::map(format!(
                        "reading counter {} of {}",
                        reason.name(),
                        self.label
                    )))?;
                Ok((reason, values.iter().sum()))
            })
            .collect()
    }

    /// Every tracked source with its totals, read in batches (see [`super::batch`]).
    pub fn sources(&self) -> Result<Vec<SourceTotals>, Error> {
        let mut all = Vec::new();
        self.each_source(|source| all.push(source))?;
        Ok(all)
    }

    /// The `n` sources with the most drops, then the most passes (the order of
    /// [`SourceTotals::rank`], best first), and how many sources there are; holding no more
    /// than `n` of them at a time, whatever the table's size.
    pub fn top_sources(&self, n: usize) -> Result<(Vec<SourceTotals>, usize), Error> {
        let mut best = Best::new(n);
        self.each_source(|source| best.offer(source))?;
        Ok(best.finish())
    }

    fn each_source(&self, mut f: impl FnMut(SourceTotals)) -> Result<(), Error> {
        let fd = self.sources.map().fd().as_fd();
        super::batch::for_each_source(fd, |key, record| {
            f(SourceTotals {
                key,
                passed: record.passed,
                dropped: record.dropped,
            });
        })
        .map_err(|source| Error::Io {
            what: "reading the sources of",
            path: format!("{} ({})", self.label, maps::SOURCES).into(),
            source,
        })
    }

    /// The per-source table's capacity and the bytes the kernel charges for it (`memlock`
    /// in the map's fdinfo: every element is preallocated, so this is what the table costs
    /// whatever its fill).
    pub fn source_table(&self) -> Result<SourceTable, Error> {
        let fd = self.sources.map().fd().as_fd().as_raw_fd();
        let path = std::path::PathBuf::from(format!("/proc/self/fdinfo/{fd}"));
        let fdinfo = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
        let field = |name: &str| {
            fdinfo.lines().find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
        };
        Ok(SourceTable {
            capacity: field("max_entries:").map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX)),
            bytes: field("memlock:").unwrap_or(0),
        })
    }

    /// The prefixes of a list, sorted: those of the bank the config says is in force.
    pub fn list(&self, list: List) -> Result<Vec<Cidr>, Error> {
        self.bank_list(list, self.config()?.list_bank())
    }

    /// The prefixes of one bank of a list, sorted, whether or not it is in force.
    pub fn bank_list(&self, list: List, bank: u32) -> Result<Vec<Cidr>, Error> {
        let mut out = self
            .trie(list, bank)
            .keys()
            .map(|key| key.map(|k| Cidr::from_stored(k.data(), k.prefix_len())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::map(format!(
                "listing bank {bank} of the {} list of {}",
                list_name(list),
                self.label
            )))?;
        out.sort();
        Ok(out)
    }

    /// Adds a prefix to a list (see [`Maps::switch_lists`]); true if it was new.
    pub fn list_add(&mut self, list: List, cidr: Cidr) -> Result<bool, Error> {
        let cfg = self.config()?;
        let mut lists = self.active(&cfg)?;
        if !lists.get_mut(list).insert(cidr) {
            return Ok(false);
        }
        self.switch_lists(&cfg, &lists)?;
        Ok(true)
    }

    /// Removes a prefix from a list (see [`Maps::switch_lists`]); false if it was not there.
    pub fn list_del(&mut self, list: List, cidr: Cidr) -> Result<bool, Error> {
        let cfg = self.config()?;
        let mut lists = self.active(&cfg)?;
        if !lists.get_mut(list).remove(&cidr) {
            return Ok(false);
        }
        self.switch_lists(&cfg, &lists)?;
        Ok(true)
    }

    /// Makes a list exactly `prefixes`, the other one kept (see [`Maps::switch_lists`]), and
    /// returns what that wrote to the list.
    pub fn set_list(&mut self, list: List, prefixes: &[Cidr]) -> Result<ListChanges, Error> {
        let cfg = self.config()?;
        let mut lists = self.active(&cfg)?;
        *lists.get_mut(list) = prefixes.iter().copied().collect();
        let [allow, deny] = self.switch_lists(&cfg, &lists)?;
        Ok(match list {
            List::Allow => allow,
            List::Deny => deny,
        })
    }

    /// The lists in force under `cfg`.
    pub fn active(&self, cfg: &Config) -> Result<Lists, Error> {
        let bank = cfg.list_bank();
        Ok(Lists {
            allow: self.bank_list(List::Allow, bank)?.into_iter().collect(),
            deny: self.bank_list(List::Deny, bank)?.into_iter().collect(),
        })
    }

    /// Puts `cfg` (its limits and flags) and `lists` in force together, in one config write.
    ///
    /// Both lists are written whole into the bank not in force (each made exactly the wanted
    /// set, [`ListChanges::between`] what that bank holds, n log n), then ONE config update
    /// carries the other bank, both counts and the rest of `cfg`: the program and every
    /// command see the old state until that update and the new one after it, whatever point
    /// a crash stops this at. When the lists are those in force already, only the config is
    /// written (keeping its bank and counts). Returns what was written to each list.
    pub fn switch_lists(&mut self, cfg: &Config, lists: &Lists) -> Result<[ListChanges; 2], Error> {
        let current = self.config()?;
        let max = maps::LIST_MAX_ENTRIES as usize;
        for list in [List::Allow, List::Deny] {
            if lists.get(list).len() > max {
                return Err(Error::ListFull {
                    iface: self.label.clone(),
                    list: list_name(list),
                    max: maps::LIST_MAX_ENTRIES,
                });
            }
        }
        let bank = current.list_bank();
        let unchanged = [List::Allow, List::Deny]
            .into_iter()
            .map(|list| {
                let now: BTreeSet<Cidr> = self.bank_list(list, bank)?.into_iter().collect();
                Ok(now == *lists.get(list))
            })
            .collect::<Result<Vec<bool>, Error>>()?;
        let counts = |bank| Config {
            list_bank: bank,
            allow_entries: lists.allow.len() as u32,
            deny_entries: lists.deny.len() as u32,
            ..*cfg
        };
        if unchanged.iter().all(|&same| same) {
            let new = counts(current.list_bank);
            if new != current {
                self.set_config(&new)?;
            }
            return Ok([ListChanges::default(), ListChanges::default()]);
        }
        let next = 1 - bank;
        let changes = [
            self.fill_bank(List::Allow, next, &lists.allow)?,
            self.fill_bank(List::Deny, next, &lists.deny)?,
        ];
        self.set_config(&counts(next))?;
        Ok(changes)
    }

    /// Makes bank `bank` of a list exactly `wanted`: one insert per missing prefix, one
    /// delete per extra one.
    fn fill_bank(
        &mut self,
        list: List,
        bank: u32,
        wanted: &BTreeSet<Cidr>,
    ) -> Result<ListChanges, Error> {
        let current: BTreeSet<Cidr> = self.bank_list(list, bank)?.into_iter().collect();
        let changes = ListChanges::between(&current, wanted, maps::LIST_MAX_ENTRIES as usize);
        if changes.remove_first {
            for cidr in &changes.remove {
                self.trie_remove(list, bank, *cidr)?;
            }
        }
        for cidr in &changes.add {
            self.trie_insert(list, bank, *cidr)?;
        }
        if !changes.remove_first {
            for cidr in &changes.remove {
                self.trie_remove(list, bank, *cidr)?;
            }
        }
        Ok(changes)
    }

    fn trie_insert(&mut self, list: List, bank: u32, cidr: Cidr) -> Result<(), Error> {
        let key = Key::new(cidr.len, cidr.addr);
        let (iface, name) = (self.label.clone(), list_name(list));
        self.trie_mut(list, bank)
            .insert(&key, 1, 0)
            .map_err(|source| match &source {
                MapError::SyscallError(e)
                    if e.io_error.raw_os_error() == Some(libc::ENOSPC)
                        || e.io_error.raw_os_error() == Some(libc::E2BIG) =>
                {
                    Error::ListFull {
                        iface: iface.clone(),
                        list: name,
                        max: maps::LIST_MAX_ENTRIES,
                    }
                }
                _ => Error::Map {
                    what: format!("adding {cidr} to bank {bank} of the {name} list of {iface}"),
                    source,
                },
            })
    }

    fn trie_remove(&mut self, list: List, bank: u32, cidr: Cidr) -> Result<(), Error> {
        let key = Key::new(cidr.len, cidr.addr);
        let what = format!(
            "removing {cidr} from bank {bank} of the {} list of {}",
            list_name(list),
            self.label
        );
        self.trie_mut(list, bank)
            .remove(&key)
            .map_err(Error::map(what))
    }

    fn trie(&self, list: List, bank: u32) -> &Trie {
        let banks = match list {
            List::Allow => &self.allow,
            List::Deny => &self.deny,
        };
        &banks[(bank & 1) as usize]
    }

    fn trie_mut(&mut self, list: List, bank: u32) -> &mut Trie {
        let banks = match list {
            List::Allow => &mut self.allow,
            List::Deny => &mut self.deny,
        };
        &mut banks[(bank & 1) as usize]
    }

    /// Forgets every bucket: every source, the global and exempt budgets and the admission
    /// budgets start afresh, as on a new attach. Counters, limits and lists are kept.
    pub fn reset_buckets(&mut self) -> Result<(), Error> {
        let what = || format!("resetting the buckets of {}", self.label);
        let keys: Vec<SourceKey> = self
            .sources
            .keys()
            .collect::<Result<_, _>>()
            .map_err(Error::map(what()))?;
        for key in keys {
            self.sources.remove(&key).map_err(Error::map(what()))?;
        }
        for slot in 0..self.global.len() {
            self.global.set(slot, 0, 0).map_err(Error::map(what()))?;
        }
        if let Some(ahead) = &mut self.ahead {
            let cpus = aya::util::nr_cpus()
                .map_err(|(path, e)| Error::io("reading the number of possible CPUs", path)(e))?;
            for slot in 0..ahead.len() {
                let none = PerCpuValues::try_from(vec![0_u64; cpus])
                    .map_err(Error::io("sizing one value per possible CPU", "/sys"))?;
                ahead.set(slot, none, 0).map_err(Error::map(what()))?;
            }
        }
        for class in 0..self.admission.len() {
            self.admission
                .set(class, 0, 0)
                .map_err(Error::map(what()))?;
        }
        Ok(())
    }
}

/// Both lists, as sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lists {
    pub allow: BTreeSet<Cidr>,
    pub deny: BTreeSet<Cidr>,
}

impl Lists {
    /// The lists `allow` and `deny`, without duplicates.
    #[must_use]
    pub fn new(allow: &[Cidr], deny: &[Cidr]) -> Self {
        Self {
            allow: allow.iter().copied().collect(),
            deny: deny.iter().copied().collect(),
        }
    }

    #[must_use]
    pub const fn get(&self, list: List) -> &BTreeSet<Cidr> {
        match list {
            List::Allow => &self.allow,
            List::Deny => &self.deny,
        }
    }

    pub const fn get_mut(&mut self, list: List) -> &mut BTreeSet<Cidr> {
        match list {
            List::Allow => &mut self.allow,
            List::Deny => &mut self.deny,
        }
    }
}

/// What making a list exactly a set of prefixes takes: the prefixes to insert, those to
/// delete, and in which order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListChanges {
    /// In the wanted set, not in the list: one insert each.
    pub add: Vec<Cidr>,
    /// In the list, not wanted: one delete each.
    pub remove: Vec<Cidr>,
    /// Deletes go first only when inserting first would overflow the bank (`capacity`).
    pub remove_first: bool,
}

impl ListChanges {
    /// The changes from `current` to `wanted`: one merge of two sorted sets.
    #[must_use]
    pub fn between(current: &BTreeSet<Cidr>, wanted: &BTreeSet<Cidr>, capacity: usize) -> Self {
        let add: Vec<Cidr> = wanted.difference(current).copied().collect();
        let remove: Vec<Cidr> = current.difference(wanted).copied().collect();
        let remove_first = current.len() + add.len() > capacity;
        Self {
            add,
            remove,
            remove_first,
        }
    }

    /// Map writes to the list these take (the size is written apart, with the bank, once).
    #[must_use]
    pub fn writes(&self) -> usize {
        self.add.len() + self.remove.len()
    }
}

/// The list's name in messages: "allow" or "deny".
#[must_use]
pub const fn list_name(list: List) -> &'static str {
    match list {
        List::Allow => "allow",
        List::Deny => "deny",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounded top agrees with sorting everything, for every `n`, ties included (equal
    /// drops and passes are ordered by key).
    #[test]
    fn the_best_n_are_the_first_n_of_the_whole_ranking() {
        let sources: Vec<SourceTotals> = (0..40_u8)
            .map(|i| SourceTotals {
                key: SourceKey::v4([198, 51, 100, i.wrapping_mul(7)]),
                passed: u64::from(i % 3),
                dropped: u64::from(i % 5) * 10,
            })
            .collect();
        let mut ranked = sources.clone();
        ranked.sort_unstable_by_key(|s| std::cmp::Reverse(s.rank()));
        for n in [0, 1, 2, 5, 10, 39, 40, 100] {
            let mut best = Best::new(n);
            for source in &sources {
                best.offer(*source);
            }
            let (top, offered) = best.finish();
            assert_eq!(offered, 40);
            assert_eq!(top, ranked[..n.min(40)], "n = {n}");
        }
    }

    fn set(prefixes: &[&str]) -> BTreeSet<Cidr> {
        prefixes.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn list(prefixes: &[&str]) -> Vec<Cidr> {
        set(prefixes).into_iter().collect()
    }

    #[test]
    fn list_changes_are_the_two_differences_in_a_safe_order() {
        /// The list, the wanted set, the capacity, then the changes expected.
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            usize,
            &'a [&'a str],
            &'a [&'a str],
            bool,
        );
        let cases: &[Case] = &[
            (&[], &[], 8, &[], &[], false),
            (&[], &["192.0.2.0/24"], 8, &["192.0.2.0/24"], &[], false),
            (&["192.0.2.0/24"], &[], 8, &[], &["192.0.2.0/24"], false),
            (
                &["192.0.2.0/24", "2001:db8::/32"],
                &["2001:db8::/32", "198.51.100.0/24"],
                8,
                &["198.51.100.0/24"],
                &["192.0.2.0/24"],
                false,
            ),
            // A full list swapped for another: deleting first keeps it within capacity.
            (
                &["192.0.2.1", "192.0.2.2"],
                &["192.0.2.3", "192.0.2.4"],
                2,
                &["192.0.2.3", "192.0.2.4"],
                &["192.0.2.1", "192.0.2.2"],
                true,
            ),
        ];
        for &(current, wanted, capacity, add, remove, remove_first) in cases {
            let changes = ListChanges::between(&set(current), &set(wanted), capacity);
            assert_eq!(
                changes,
                ListChanges {
                    add: list(add),
                    remove: list(remove),
                    remove_first
                },
                "{current:?} -> {wanted:?}"
            );
        }
    }

    /// A full list replaced by another that shares half of it: exactly one write per prefix
    /// that changes, none for those that stay.
    #[test]
    fn a_full_list_costs_one_write_per_changed_prefix() {
        let full = maps::LIST_MAX_ENTRIES as usize;
        let prefix = |i: usize| -> Cidr {
            let i = u32::try_from(i).unwrap();
            format!("10.{}.{}.0/24", i >> 8, i & 0xff).parse().unwrap()
        };
        let current: BTreeSet<Cidr> = (0..full).map(prefix).collect();
        let wanted: BTreeSet<Cidr> = (full / 2..full + full / 2).map(prefix).collect();
        let changes = ListChanges::between(&current, &wanted, full);
        assert_eq!(
            (changes.add.len(), changes.remove.len()),
            (full / 2, full / 2)
        );
        assert_eq!(changes.writes(), full);
        assert!(changes.remove_first);
        let empty = ListChanges::between(&BTreeSet::new(), &current, full);
        assert_eq!(empty.writes(), full);
        assert_eq!(ListChanges::between(&current, &current, full).writes(), 0);
    }
}
