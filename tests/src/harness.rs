//! The program's maps as the fixture runners and the differential fuzzer drive them, whether
//! the program was loaded by the test ([`TestProgram`], run with `BPF_PROG_TEST_RUN`) or
//! attached by the CLI and opened from its pins. Limits, lists and counters go through the
//! product's own typed handles ([`icmp_guard::pinned::maps::Maps`]), so the tests write them
//! exactly as the CLI does; [`MeterMaps`] reads and writes the metering state those handles
//! keep to themselves (bucket times, the recently-seen filter), for the fuzzer's comparison.

use std::{collections::BTreeMap, os::fd::AsFd as _};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Ebpf,
    maps::{Array, HashMap, IterableMap as _, Map, MapData, MapError},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use icmp_guard::{
    kernel::object,
    pinned::{
        Guard, Pins, batch,
        maps::{Lists, Maps},
    },
    policy::Cidr,
};
use icmp_guard_common::{
    Config, Limit, Reason, SourceKey, SourceRecord, bucket::Class, floor, maps, seen,
};

use crate::fixtures::Case;

/// Runs `program` of the loaded `ebpf` once on `frame` through `BPF_PROG_TEST_RUN`: its XDP
/// action and the frame as the program left it.
pub fn run_once(ebpf: &Ebpf, program: &str, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
    let prog: &Xdp = ebpf
        .program(program)
        .with_context(|| format!("no program {program} in the object"))?
        .try_into()?;
    let mut out = vec![0; frame.len()];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    let result = prog
        .test_run(opts)
        .with_context(|| format!("BPF_PROG_TEST_RUN of {program}"))?;
    Ok((result.return_value, out))
}

/// The bench's floor object (`xdp-floor`) with the programs `programs` loaded, the CPU count
/// set as icmp-guard's loader sets its own, and the source bucket's and the global budget's
/// limits set to `echo` and `global`: as the bench runs it and as its test checks it.
pub fn load_floor(programs: &[&str], echo: Limit, global: Limit) -> Result<Ebpf> {
    let loaded = aya::EbpfLoader::new()
        .override_global(floor::POSSIBLE_CPUS, &object::possible_cpus(), true)
        .load(object::XDP_FLOOR)
        .context("the floor object")?;
    let mut ebpf = load_programs(loaded, programs)?;
    let mut limits: Array<&mut MapData, Limit> = Array::try_from(
        ebpf.map_mut(floor::LIMITS)
            .context("the floor's limits map")?,
    )?;
    limits.set(floor::ECHO_SLOT, echo, 0)?;
    limits.set(floor::GLOBAL_SLOT, global, 0)?;
    Ok(ebpf)
}

/// `ebpf` with its XDP programs `programs` loaded into the kernel (the verifier runs here).
pub fn load_programs(mut ebpf: Ebpf, programs: &[&str]) -> Result<Ebpf> {
    for &name in programs {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("no program {name} in the object"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("the verifier refused {name}"))?;
    }
    Ok(ebpf)
}

/// The real, verifier-checked program loaded from the CLI's embedded object, not attached:
/// frames reach it through `BPF_PROG_TEST_RUN`.
pub struct TestProgram {
    ebpf: Ebpf,
    pub maps: ProgramMaps,
    pub meters: MeterMaps,
}

impl TestProgram {
    /// Loads the object and the program (the verifier runs here) and takes its maps.
    pub fn load() -> Result<Self> {
        let loaded = object::loader()
            .load(object::ICMP_GUARD)
            .context("loading the object")?;
        let mut ebpf = load_programs(loaded, &[maps::PROGRAM])?;
        let meters = MeterMaps::from_ebpf(&mut ebpf)?;
        let maps = ProgramMaps::from_ebpf(&mut ebpf)?;
        Ok(Self { ebpf, maps, meters })
    }

    /// Runs the program on `frame` `repeat` times in one call; the XDP action of the last run.
    pub fn run(&self, frame: &[u8], repeat: u32) -> Result<u32> {
        self.run_split(frame, repeat, None)
            .with_context(|| format!("BPF_PROG_TEST_RUN on a {}-byte frame", frame.len()))
    }

    /// [`run`](Self::run) with, given `linear`, only the frame's first `linear` bytes in the
    /// linear part and the rest in fragments, as a multi-buffer driver may hand it over.
    /// Returns the XDP action, or the kernel's refusal.
    pub fn run_split(
        &self,
        frame: &[u8],
        repeat: u32,
        linear: Option<u32>,
    ) -> std::io::Result<u32> {
        let program: &Xdp = self
            .ebpf
            .program(maps::PROGRAM)
            .ok_or_else(|| std::io::Error::other("the object has no program"))?
            .try_into()
            .map_err(std::io::Error::other)?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex. A data_end short of the frame's length is the size of the linear
        // part.
        let ctx: Vec<u8> = linear
            .map(|linear| {
                let data_end = linear.min(u32::try_from(frame.len()).unwrap_or(u32::MAX));
                [0, data_end, 0, 0, 0, 0]
                    .iter()
                    .flat_map(|v: &u32| v.to_ne_bytes())
                    .collect()
            })
            .unwrap_or_default();
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.ctx_in = linear.map(|_| ctx.as_slice());
        opts.repeat = repeat;
        program
            .test_run(opts)
            .map(|r| r.return_value)
            .map_err(|e| match e {
                aya::programs::ProgramError::SyscallError(e) => e.io_error,
                other => std::io::Error::other(other),
            })
    }
}

/// Handles on every map of one program instance.
pub struct ProgramMaps(Maps);

impl ProgramMaps {
    /// Takes the maps out of a loaded object.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Ok(Self(Maps::from_ebpf("the test program", ebpf)?))
    }

    /// Opens the maps the CLI pinned.
    pub fn from_pins(pins: Pins) -> Result<Self> {
        Ok(Self(Guard::open(pins)?.maps))
    }

    /// Loads a case: its config, its lists, and fresh buckets.
    pub fn prepare(&mut self, case: &Case) -> Result<()> {
        self.set_policy(&case.config, &case.allow, &case.deny)?;
        self.reset_buckets()
    }

    /// Puts `config` and the lists in force together, as the CLI does (the lists into the
    /// banks not in force, then one config write with the bank and the counts).
    pub fn set_policy(&mut self, config: &Config, allow: &[Cidr], deny: &[Cidr]) -> Result<()> {
        self.0.switch_lists(config, &Lists::new(allow, deny))?;
        Ok(())
    }

    /// Forgets every source and refills the global and admission budgets, as the CLI's
    /// reset does; the recently-seen filter is left alone (see [`MeterMaps`]).
    pub fn reset_buckets(&mut self) -> Result<()> {
        Ok(self.0.reset_buckets()?)
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

/// The metering state of a loaded program, which the product's handles do not expose whole:
/// every source's record (bucket times included), the global, exempt and admission budgets' times,
/// and the recently-seen filter. Second handles on the same maps, opened before
/// [`ProgramMaps`] takes them out of the object.
pub struct MeterMaps {
    sources: HashMap<MapData, SourceKey, SourceRecord>,
    global: Array<MapData, u64>,
    admission: Array<MapData, u64>,
    seen: Array<MapData, [u64; seen::WORDS]>,
}

impl MeterMaps {
    /// Opens the handles; call before [`ProgramMaps::from_ebpf`] takes the maps.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        let seen = ebpf
            .take_map(maps::SEEN)
            .with_context(|| format!("map {} missing from the object", maps::SEEN))?;
        Ok(Self {
            sources: HashMap::try_from(second_handle(ebpf, maps::SOURCES)?)?,
            global: Array::try_from(second_handle(ebpf, maps::GLOBAL)?)?,
            admission: Array::try_from(second_handle(ebpf, maps::ADMISSION)?)?,
            seen: Array::try_from(seen)?,
        })
    }

    /// Every tracked source and its record, read in one batch.
    pub fn sources(&self) -> Result<BTreeMap<SourceKey, SourceRecord>> {
        let fd = self.sources.map().fd().as_fd();
        Ok(batch::sources(fd)
            .context("reading the sources")?
            .into_iter()
            .collect())
    }

    /// One source's record, if it is tracked.
    pub fn source(&self, key: &SourceKey) -> Result<Option<SourceRecord>> {
        match self.sources.get(key, 0) {
            Ok(record) => Ok(Some(record)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes one source's record.
    pub fn set_source(&mut self, key: &SourceKey, record: &SourceRecord) -> Result<()> {
        Ok(self.sources.insert(key, record, 0)?)
    }

    /// The global budget's TAT.
    pub fn global(&self) -> Result<u64> {
        Ok(self.global.get(&maps::GLOBAL_SLOT, 0)?)
    }

    /// Sets the global budget's TAT.
    pub fn set_global(&mut self, tat_ns: u64) -> Result<()> {
        Ok(self.global.set(maps::GLOBAL_SLOT, tat_ns, 0)?)
    }

    /// The exempt budget's TAT.
    pub fn exempt(&self) -> Result<u64> {
        Ok(self.global.get(&maps::EXEMPT_SLOT, 0)?)
    }

    /// Sets the exempt budget's TAT.
    pub fn set_exempt(&mut self, tat_ns: u64) -> Result<()> {
        Ok(self.global.set(maps::EXEMPT_SLOT, tat_ns, 0)?)
    }

    /// The TAT of the admission budget of `class`.
    pub fn admission(&self, class: Class) -> Result<u64> {
        Ok(self.admission.get(&class.slot(), 0)?)
    }

    /// Sets the TAT of the admission budget of `class`.
    pub fn set_admission(&mut self, class: Class, tat_ns: u64) -> Result<()> {
        Ok(self.admission.set(class.slot(), tat_ns, 0)?)
    }

    /// Line `line` of the recently-seen filter, as [`seen::Line::words`] gives it.
    pub fn seen(&self, line: u32) -> Result<[u64; seen::WORDS]> {
        Ok(self.seen.get(&line, 0)?)
    }

    /// Overwrites line `line` of the recently-seen filter.
    pub fn set_seen(&mut self, line: u32, words: [u64; seen::WORDS]) -> Result<()> {
        Ok(self.seen.set(line, words, 0)?)
    }

    /// Every line of the recently-seen filter that holds a stamp: one lookup per line
    /// ([`seen::LINES`] of them), so for recovery, not for every frame.
    pub fn stamped_lines(&self) -> Result<Vec<u32>> {
        let mut stamped = Vec::new();
        for (line, words) in (0..seen::LINES).zip(self.seen.iter()) {
            if words? != [0; seen::WORDS] {
                stamped.push(line);
            }
        }
        Ok(stamped)
    }
}

/// Another handle on the map `name` of `ebpf`, which stays in the object.
fn second_handle(ebpf: &Ebpf, name: &str) -> Result<Map> {
    let map = ebpf
        .map(name)
        .with_context(|| format!("map {name} missing from the object"))?;
    let (Map::Array(data) | Map::LruHashMap(data)) = map else {
        bail!("map {name} is neither an array nor an LRU hash");
    };
    let fd = data.fd().as_fd().try_clone_to_owned()?;
    Ok(Map::from_map_data(MapData::from_fd(fd)?)?)
}
