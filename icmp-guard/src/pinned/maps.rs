//! Typed handles on the program's maps, whether they were pinned by an attach ([`Guard`])
//! or taken out of an object the caller loaded ([`Maps::from_ebpf`], as the test harness
//! does for `BPF_PROG_TEST_RUN`).

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, IterableMap as _, Map, MapData, MapError, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
    programs::links::PinnedLink,
};
use icmp_guard_common::{Config, Reason, SourceKey, SourceRecord, maps, policy::List};

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
            return Err(Error::NotGuarded {
                iface: pins.iface.to_string(),
                dir: pins.dir,
            });
        }
        let maps = Maps::from_fn(pins.iface.to_string(), |name| {
            let path = pins.map(name);
            let data =
                MapData::from_pin(&path).map_err(Error::pin("opening the pinned map", &path))?;
            Map::from_map_data(data).map_err(Error::pin("opening the pinned map", &path))
        })?;
        Ok(Self { pins, maps })
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
    /// The global budget's one bucket, and the admission budgets' two, as plain TATs.
    global: Array<MapData, u64>,
    admission: Array<MapData, u64>,
    allow: LpmTrie<MapData, [u8; 16], u8>,
    deny: LpmTrie<MapData, [u8; 16], u8>,
}

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

impl Maps {
    /// Takes the maps out of an object the caller loaded; `label` names them in messages.
    pub fn from_ebpf(label: impl Into<String>, ebpf: &mut Ebpf) -> Result<Self, Error> {
        Self::from_fn(label.into(), |name| {
            ebpf.take_map(name)
                .ok_or_else(|| Error::Load(format!("map {name} missing from the object").into()))
        })
    }

    fn from_fn(
        label: String,
        mut open: impl FnMut(&str) -> Result<Map, Error>,
    ) -> Result<Self, Error> {
        Ok(Self {
            config: Array::try_from(open(maps::CONFIG)?).map_err(Error::map(maps::CONFIG))?,
            counters: PerCpuArray::try_from(open(maps::COUNTERS)?)
                .map_err(Error::map(maps::COUNTERS))?,
            sources: HashMap::try_from(open(maps::SOURCES)?).map_err(Error::map(maps::SOURCES))?,
            global: Array::try_from(open(maps::GLOBAL)?).map_err(Error::map(maps::GLOBAL))?,
            admission: Array::try_from(open(maps::ADMISSION)?)
                .map_err(Error::map(maps::ADMISSION))?,
            allow: LpmTrie::try_from(open(maps::ALLOW)?).map_err(Error::map(maps::ALLOW))?,
            deny: LpmTrie::try_from(open(maps::DENY)?).map_err(Error::map(maps::DENY))?,
            label,
        })
    }

    /// The current configuration.
    pub fn config(&self) -> Result<Config, Error> {
        self.config
            .get(&0, 0)
            .map_err(Error::map(format!("reading the config of {}", self.label)))
    }

    /// Replaces the configuration, in one map update.
    pub fn set_config(&mut self, cfg: &Config) -> Result<(), Error> {
        let what = format!("writing the config of {}", self.label);
        self.config.set(0, cfg, 0).map_err(Error::map(what))
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
        let fd = self.sources.map().fd().as_fd();
        let entries = super::batch::sources(fd).map_err(|source| Error::Io {
            what: "reading the sources of",
            path: format!("{} ({})", self.label, maps::SOURCES).into(),
            source,
        })?;
        Ok(entries
            .into_iter()
            .map(|(key, record)| SourceTotals {
                key,
                passed: record.passed,
                dropped: record.dropped,
            })
            .collect())
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

    /// The prefixes of a list, sorted.
    pub fn list(&self, list: List) -> Result<Vec<Cidr>, Error> {
        let trie = self.trie(list);
        let mut out = trie
            .keys()
            .map(|key| key.map(|k| Cidr::from_stored(k.data(), k.prefix_len())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::map(format!(
                "listing the {} list of {}",
                list_name(list),
                self.label
            )))?;
        out.sort();
        Ok(out)
    }

    /// Adds a prefix to a list and records the list's size in the config; true if it was new.
    pub fn list_add(&mut self, list: List, cidr: Cidr) -> Result<bool, Error> {
        let known = self.list(list)?.contains(&cidr);
        let key = Key::new(cidr.len, cidr.addr);
        let (iface, name) = (self.label.clone(), list_name(list));
        self.trie_mut(list)
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
                    what: format!("adding {cidr} to the {name} list of {iface}"),
                    source,
                },
            })?;
        self.sync_list_size(list)?;
        Ok(!known)
    }

    /// Removes a prefix from a list and records the list's size; false if it was not there.
    pub fn list_del(&mut self, list: List, cidr: Cidr) -> Result<bool, Error> {
        if !self.list(list)?.contains(&cidr) {
            return Ok(false);
        }
        let key = Key::new(cidr.len, cidr.addr);
        let what = format!(
            "removing {cidr} from the {} list of {}",
            list_name(list),
            self.label
        );
        self.trie_mut(list).remove(&key).map_err(Error::map(what))?;
        self.sync_list_size(list)?;
        Ok(true)
    }

    /// Makes a list exactly `prefixes`: adds the missing, removes the others.
    pub fn set_list(&mut self, list: List, prefixes: &[Cidr]) -> Result<(), Error> {
        let current = self.list(list)?;
        for cidr in prefixes.iter().filter(|p| !current.contains(p)) {
            self.list_add(list, *cidr)?;
        }
        for cidr in current.iter().filter(|p| !prefixes.contains(p)) {
            self.list_del(list, *cidr)?;
        }
        Ok(())
    }

    /// Writes the list's entry count into the config, so the program looks it up only when
    /// it holds something.
    fn sync_list_size(&mut self, list: List) -> Result<(), Error> {
        let entries = self.list(list)?.len() as u32;
        let mut cfg = self.config()?;
        match list {
            List::Allow => cfg.allow_entries = entries,
            List::Deny => cfg.deny_entries = entries,
        }
        self.set_config(&cfg)
    }

    fn trie(&self, list: List) -> &LpmTrie<MapData, [u8; 16], u8> {
        match list {
            List::Allow => &self.allow,
            List::Deny => &self.deny,
        }
    }

    fn trie_mut(&mut self, list: List) -> &mut LpmTrie<MapData, [u8; 16], u8> {
        match list {
            List::Allow => &mut self.allow,
            List::Deny => &mut self.deny,
        }
    }

    /// Forgets every bucket: every source, the global budget and the admission budgets start
    /// afresh, as on a new attach. Counters, limits and lists are kept.
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
        self.global.set(0, 0, 0).map_err(Error::map(what()))?;
        for class in 0..self.admission.len() {
            self.admission
                .set(class, 0, 0)
                .map_err(Error::map(what()))?;
        }
        Ok(())
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
