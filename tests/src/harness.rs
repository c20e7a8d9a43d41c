//! The program's maps as the fixture runners drive them, whether the program was loaded by
//! the test (`BPF_PROG_TEST_RUN`) or attached by the CLI and opened from its pins.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use aya::{
    Ebpf,
    maps::{
        Array, Map, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues,
        lpm_trie::{Key, LpmTrie},
    },
};
use icmp_guard::cidr::Cidr;
use icmp_guard_common::{Config, Reason, SourceKey, SourceState, bucket::Bucket, maps};

use crate::fixtures::Case;

/// Handles on every map of one program instance.
pub struct ProgramMaps {
    config: Array<MapData, Config>,
    counters: PerCpuArray<MapData, u64>,
    sources: PerCpuHashMap<MapData, SourceKey, SourceState>,
    global: PerCpuArray<MapData, Bucket>,
    allow: LpmTrie<MapData, [u8; 16], u8>,
    deny: LpmTrie<MapData, [u8; 16], u8>,
}

impl ProgramMaps {
    /// Takes the maps out of a loaded object.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Self::from_fn(|name| {
            ebpf.take_map(name)
                .with_context(|| format!("map {name} in the object"))
        })
    }

    /// Opens the maps an attached guard pinned in `dir`.
    pub fn from_pins(dir: &Path) -> Result<Self> {
        Self::from_fn(|name| {
            let data = MapData::from_pin(dir.join(name))
                .with_context(|| format!("opening pinned map {name}"))?;
            Ok(Map::from_map_data(data)?)
        })
    }

    fn from_fn(mut open: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        Ok(Self {
            config: open(maps::CONFIG)?.try_into()?,
            counters: open(maps::COUNTERS)?.try_into()?,
            sources: open(maps::SOURCES)?.try_into()?,
            global: open(maps::GLOBAL)?.try_into()?,
            allow: open(maps::ALLOW)?.try_into()?,
            deny: open(maps::DENY)?.try_into()?,
        })
    }

    /// Loads a case: its config, its lists, and fresh buckets.
    pub fn prepare(&mut self, case: &Case) -> Result<()> {
        self.config.set(0, case.effective_config(), 0)?;
        set_list(&mut self.allow, &case.allow)?;
        set_list(&mut self.deny, &case.deny)?;
        let keys: Vec<SourceKey> = self.sources.keys().collect::<Result<_, _>>()?;
        for key in keys {
            self.sources.remove(&key)?;
        }
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
        self.global
            .set(0, PerCpuValues::try_from(vec![Bucket::default(); cpus])?, 0)?;
        Ok(())
    }

    /// Every counter, summed over CPUs, in `Reason::ALL` order.
    pub fn counters(&self) -> Result<Vec<u64>> {
        Reason::ALL
            .iter()
            .map(|r| Ok(self.counters.get(&r.slot(), 0)?.iter().sum()))
            .collect()
    }
}

fn set_list(trie: &mut LpmTrie<MapData, [u8; 16], u8>, prefixes: &[Cidr]) -> Result<()> {
    let keys: Vec<Key<[u8; 16]>> = trie.keys().collect::<Result<_, _>>()?;
    for key in keys {
        trie.remove(&key)?;
    }
    for p in prefixes {
        trie.insert(&Key::new(p.len, p.addr), 1, 0)?;
    }
    Ok(())
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
