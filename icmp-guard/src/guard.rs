//! The pinned state of one guarded interface: its link and maps.

use aya::{
    maps::{Array, Map, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues},
    programs::links::PinnedLink,
};
use icmp_guard_common::{Config, Reason, SourceKey, SourceState, maps};

use crate::{Error, pins::Pins};

/// Open handles on a guarded interface's pinned maps.
pub struct Guard {
    pub pins: Pins,
    config: Array<MapData, Config>,
    counters: PerCpuArray<MapData, u64>,
    sources: PerCpuHashMap<MapData, SourceKey, SourceState>,
}

/// One source's bucket totals, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceTotals {
    pub key: SourceKey,
    pub passed: u64,
    pub dropped: u64,
}

impl Guard {
    /// Opens the pins of `pins.iface`; fails with [`Error::NotGuarded`] if there are none.
    pub fn open(pins: Pins) -> Result<Self, Error> {
        if !pins.exist() {
            return Err(Error::NotGuarded {
                iface: pins.iface,
                dir: pins.dir,
            });
        }
        let config = open_map(&pins, maps::CONFIG)?;
        let counters = open_map(&pins, maps::COUNTERS)?;
        let sources = open_map(&pins, maps::SOURCES)?;
        Ok(Self {
            config: Array::try_from(config).map_err(Error::map(maps::CONFIG))?,
            counters: PerCpuArray::try_from(counters).map_err(Error::map(maps::COUNTERS))?,
            sources: PerCpuHashMap::try_from(sources).map_err(Error::map(maps::SOURCES))?,
            pins,
        })
    }

    /// The current configuration.
    pub fn config(&self) -> Result<Config, Error> {
        self.config.get(&0, 0).map_err(Error::map(format!(
            "reading the config of {}",
            self.pins.iface
        )))
    }

    /// Replaces the configuration, in one map update.
    pub fn set_config(&mut self, cfg: &Config) -> Result<(), Error> {
        let what = format!("writing the config of {}", self.pins.iface);
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
                        self.pins.iface
                    )))?;
                Ok((reason, values.iter().sum()))
            })
            .collect()
    }

    /// Every tracked source with its totals over CPUs. Entries evicted while the map is walked
    /// are skipped.
    pub fn sources(&self) -> Result<Vec<SourceTotals>, Error> {
        let mut out = Vec::new();
        for key in self.sources.keys() {
            let key = key.map_err(Error::map(format!(
                "listing sources of {}",
                self.pins.iface
            )))?;
            // The LRU may evict the key between listing and lookup.
            let Ok(values) = self.sources.get(&key, 0) else {
                continue;
            };
            out.push(totals(key, &values));
        }
        Ok(out)
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

fn totals(key: SourceKey, values: &PerCpuValues<SourceState>) -> SourceTotals {
    values.iter().fold(
        SourceTotals {
            key,
            passed: 0,
            dropped: 0,
        },
        |acc, v| SourceTotals {
            passed: acc.passed + v.passed,
            dropped: acc.dropped + v.dropped,
            ..acc
        },
    )
}

fn open_map(pins: &Pins, name: &str) -> Result<Map, Error> {
    let path = pins.map(name);
    let data = MapData::from_pin(&path).map_err(Error::pin("opening the pinned map", &path))?;
    Map::from_map_data(data).map_err(Error::pin("opening the pinned map", &path))
}
