//! Loading, attaching, replacing and re-attaching the program, for the CLI and the daemon.
//!
//! Maps are pinned under the interface's folder by the loader itself (`map_pin_path`): a
//! fresh attach creates and pins them, a replace or re-attach reuses them after
//! [`schema::check`] has made sure their layout still fits. The pinned link is what marks an
//! interface as guarded, and it is pinned last. A link only lives while a descriptor or a pin
//! holds it, so an attach killed before pinning it leaves pins without a link and nothing
//! attached: the next attach (the CLI's or the service's) recognises that state and finishes
//! it, reusing the maps whose layout fits.

use std::{
    os::fd::AsFd as _,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use icmp_guard_common::{Config, config::attach_mode, maps, policy::List};

use super::{
    AttachMode, IfaceName,
    iface::{ifindex, is_loopback},
    link, netlink,
    owner::{self, Foreign, Owner},
    refusal::NativeRefusal,
};
use crate::{
    Error,
    error::shown,
    pinned::{
        Guard, Pins, bpffs,
        health::{self, Health},
        maps::{Lists, Maps},
        schema,
    },
};

/// The program's aya-log records, read from the ring buffer of the program this process
/// loaded (no `CAP_SYS_ADMIN` needed, unlike looking a program up by id).
pub type ProgramLog = aya_log::EbpfLogger<&'static dyn log::Log>;

/// What an attach did.
pub struct Attached {
    pub ifindex: u32,
    /// Native or generic: what the kernel gave.
    pub mode: AttachMode,
    /// When `auto` fell back to generic: why native was refused.
    pub native_refused: Option<NativeRefusal>,
    pub program_id: u32,
    /// The new program's log, for a process that stays to forward it.
    pub log: Option<ProgramLog>,
    /// Whether this finished an attach that was interrupted (pins without a link).
    pub resumed: bool,
    /// When this attached pinned state again: why the guard was not attached.
    pub revived: Option<Health>,
}

impl Attached {
    /// The notes below that apply, for the caller to print or log.
    pub fn notes(&self, iface: &str) -> impl Iterator<Item = String> {
        [self.resumed_note(iface), self.revived_note(iface)]
            .into_iter()
            .flatten()
    }

    /// When this finished an interrupted attach: the line that says so, for the caller.
    #[must_use]
    pub fn resumed_note(&self, iface: &str) -> Option<String> {
        let iface = shown(iface);
        self.resumed.then(|| {
            format!(
                "finished an interrupted attach of {iface}: its pins had no link and nothing was attached; reused its maps and pinned the link"
            )
        })
    }

    /// When this attached pinned state again: the line that says so, for the caller.
    #[must_use]
    pub fn revived_note(&self, iface: &str) -> Option<String> {
        let iface = shown(iface);
        self.revived.map(|was| {
            format!(
                "{iface} was not attached ({}); attached it again with its pinned state (counters, buckets, lists)",
                was.label().replace('_', " ")
            )
        })
    }

    /// When `auto` fell back to generic: the line that says why, for the caller to report.
    #[must_use]
    pub fn fallback_note(&self, iface: &str) -> Option<String> {
        let iface = shown(iface);
        self.native_refused.as_ref().map(|refusal| {
            format!("generic mode because native XDP is not available on {iface}: {refusal}")
        })
    }
}

/// What a replace did.
pub struct Replaced {
    pub old_program: u32,
    pub new_program: u32,
    pub log: Option<ProgramLog>,
}

fn program_log(ebpf: &mut Ebpf) -> Option<ProgramLog> {
    aya_log::EbpfLogger::init(ebpf)
        .map_err(|e| log::debug!("no program log to forward: {e}"))
        .ok()
}

/// Loads the embedded object with every map at its pin under `pins` (created there if
/// missing, with `max_sources` entries in the per-source table; reused if present) and the
/// program loaded into the kernel.
fn load(pins: &Pins, max_sources: u32) -> Result<Ebpf, Error> {
    let paths: Vec<_> = crate::pinned::layout::MAPS
        .iter()
        .map(|name| (*name, pins.map(name)))
        .collect();
    let mut loader = super::object::loader();
    loader.map_max_entries(maps::SOURCES, max_sources);
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader
        .load(super::object::ICMP_GUARD)
        .map_err(|e| match e {
            aya::EbpfError::MapError(_) => Error::Maps {
                iface: pins.iface.as_str().to_owned(),
                source: Box::new(e),
            },
            e => Error::of_object_load(&pins.iface, e),
        })?;
    program(&mut ebpf)?
        .load()
        .map_err(Error::load(&pins.iface))?;
    Ok(ebpf)
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, Error> {
    ebpf.program_mut(maps::PROGRAM)
        .ok_or_else(|| Error::Object(format!("program {} missing from it", maps::PROGRAM)))?
        .try_into()
        .map_err(|e: ProgramError| Error::Object(format!("program {}: {e}", maps::PROGRAM)))
}

fn write_config(ebpf: &mut Ebpf, cfg: &Config) -> Result<(), Error> {
    let map = ebpf
        .map_mut(maps::CONFIG)
        .ok_or_else(|| Error::Object(format!("map {} missing from it", maps::CONFIG)))?;
    let mut config: Array<&mut MapData, Config> =
        Array::try_from(map).map_err(Error::map(maps::CONFIG))?;
    config
        .set(0, cfg, 0)
        .map_err(Error::map("writing the config"))
}

/// What refuses a new guard on `pins.iface` (index `ifindex`) with a table of `max_sources`
/// before anything is loaded: [`check_fits`], then [`refuse_foreign`]. `attach --config`
/// runs it for every new interface of the file before it attaches any, with `besides` the
/// bytes of the tables of the file's new guards checked before this one, which the memory
/// must hold as well.
pub fn check_new(pins: &Pins, ifindex: u32, max_sources: u32, besides: u64) -> Result<(), Error> {
    check_fits(pins, max_sources, besides)?;
    refuse_foreign(pins, ifindex)
}

/// Refuses the loopback, and a table that would not fit in memory beside `besides` bytes of
/// other new tables.
pub fn check_fits(pins: &Pins, max_sources: u32, besides: u64) -> Result<(), Error> {
    let iface = pins.iface.as_str();
    if is_loopback(iface) {
        return Err(Error::Loopback {
            iface: iface.to_owned(),
        });
    }
    table_fits(iface, max_sources, besides)
}

/// Refuses an interface another program holds, which would make the kernel refuse the link:
/// said before loading, which creates every map (a source table of up to about 1.8 GiB) for
/// nothing. A program offloaded to the NIC may stay beside a native or generic one.
fn refuse_foreign(pins: &Pins, ifindex: u32) -> Result<(), Error> {
    if matches!(netlink::xdp_state(ifindex), Ok(Some(state)) if state.mode != AttachMode::Offload) {
        let iface = pins.iface.as_str();
        return Err(Error::ForeignProgram {
            iface: iface.to_owned(),
            program: Box::new(foreign(iface, Some(&pins.netns_dir()))),
        });
    }
    Ok(())
}

/// Attaches a new guard to `pins.iface` with `cfg` (whose policy fields are used as given)
/// and, when given, `lists` (else the lists the maps hold: none on a first attach). Limits
/// and lists are in the maps before the link is pinned, so a guard never runs with some of
/// them. Nothing is left behind on failure, except pins found there (an interrupted attach).
/// Without a `mode`, a new guard takes `auto` and a revived one the mode it had (see
/// [`revive`]).
pub fn attach(
    bpffs_path: &Path,
    pins: &Pins,
    mode: Option<AttachMode>,
    cfg: &Config,
    lists: Option<&Lists>,
) -> Result<Attached, Error> {
    let iface = pins.iface.as_str();
    let ifindex = ifindex(iface)?;
    check_fits(pins, cfg.max_sources, 0)?;
    // Mounted (or refused) before anything under it is looked at: on a path that is no bpffs
    // yet, what is there now is what the mount will hide.
    bpffs::ensure_mounted(bpffs_path)?;
    pins.check()?;
    if pins.exist() {
        if let Some(revived) = revive(pins, mode)? {
            return Ok(revived);
        }
        return Err(Error::AlreadyGuarded {
            iface: iface.to_owned(),
            dir: pins.dir.clone(),
        });
    }
    let mut cfg = *cfg;
    let resumed = pins.dir.exists();
    if resumed {
        interrupted(pins, ifindex)?;
        if let Ok(capacity) = pinned_capacity(pins) {
            cfg.max_sources = capacity;
        }
    } else {
        refuse_foreign(pins, ifindex)?;
    }
    pins.make_dirs()?;
    let mode = mode.unwrap_or(AttachMode::Auto);
    let result = attach_in(pins, ifindex, mode, &cfg, lists).map(|a| Attached { resumed, ..a });
    if result.is_err() && !resumed {
        // Best effort: the attach error is the one to report. Pins found here are left as
        // they were, for the next attach to finish or `clean` to remove.
        let _ = pins.remove();
    }
    result
}

/// Pins without a link: an attach interrupted before it pinned the link (the kernel
/// detached the program when the process died). Finished only when nothing is attached to
/// the interface and every map pinned fits this version; otherwise `clean` is the way.
/// `attach --config` runs it for every such interface of the file before it attaches any.
pub fn interrupted(pins: &Pins, ifindex: u32) -> Result<(), Error> {
    let refuse = |why: String| Error::Stale {
        iface: pins.iface.as_str().to_owned(),
        why,
    };
    match netlink::xdp_state(ifindex) {
        Ok(None) => {}
        Ok(Some(state)) => {
            return Err(refuse(format!(
                "{} holds pins but no link, and program {} is attached to it",
                shown(&pins.dir),
                state.program_id
            )));
        }
        Err(e) => {
            return Err(refuse(format!(
                "{} holds pins but no link, and what is attached to it cannot be read: {e}",
                shown(&pins.dir)
            )));
        }
    }
    schema::check(pins)
}

fn attach_in(
    pins: &Pins,
    ifindex: u32,
    mode: AttachMode,
    cfg: &Config,
    lists: Option<&Lists>,
) -> Result<Attached, Error> {
    let mut ebpf = load(pins, cfg.max_sources)?;
    // Every map is pinned now: new ones empty, those of an interrupted attach as they were.
    // The config's bank and counts say what the bank in force holds.
    let mut maps = Maps::from_pins(pins)?;
    let bank = maps.config()?.list_bank();
    let mut cfg = Config {
        ifindex,
        attach_mode: AttachMode::Unknown.recorded(),
        attached_at: now(),
        seen_seed: super::random_seed(),
        list_bank: bank,
        allow_entries: maps.bank_list(List::Allow, bank)?.len() as u32,
        deny_entries: maps.bank_list(List::Deny, bank)?.len() as u32,
        ..*cfg
    };
    // Limits and lists go in before the program can see a packet.
    if let Some(lists) = lists {
        maps.switch_lists(&cfg, lists)?;
        cfg = maps.config()?;
    } else {
        write_config(&mut ebpf, &cfg)?;
    }
    link_and_pin(ebpf, pins, ifindex, mode, cfg)
}

/// Attaches the loaded program to `ifindex`, records the mode it got in `cfg`, and pins the
/// link: the last step, which makes the interface guarded.
fn link_and_pin(
    mut ebpf: Ebpf,
    pins: &Pins,
    ifindex: u32,
    mode: AttachMode,
    mut cfg: Config,
) -> Result<Attached, Error> {
    let program = program(&mut ebpf)?;
    let linked = attach_mode_of(program, &pins.iface, mode)?;
    let attached_mode = linked.mode;
    let link: FdLink = program
        .take_link(linked.id)
        .map_err(Error::pin(
            "taking the new link, to be pinned at",
            pins.link(),
        ))?
        .try_into()
        .map_err(Error::pin(
            "taking the new link, to be pinned at",
            pins.link(),
        ))?;
    let program_id = link
        .info()
        .map_err(Error::pin(
            "reading the new link, to be pinned at",
            pins.link(),
        ))?
        .program_id();
    cfg.ifindex = ifindex;
    cfg.attach_mode = attached_mode.recorded()
        | if linked.native_refused.is_some() {
            attach_mode::FELL_BACK
        } else {
            0
        };
    write_config(&mut ebpf, &cfg)?;
    // Pinned aside, then renamed over the link pin in one step: an old, dead link (a
    // re-attach) stays pinned until the new one is, so a failed attach loses nothing.
    let staging = pins.link_staging();
    link.pin(&staging)
        .map_err(Error::pin("pinning the link", &staging))?;
    let path = pins.link();
    std::fs::rename(&staging, &path).map_err(Error::io("pinning the link as", &path))?;
    Ok(Attached {
        ifindex,
        mode: attached_mode,
        native_refused: linked.native_refused,
        program_id,
        log: program_log(&mut ebpf),
        resumed: false,
        revived: None,
    })
}

/// Attaches the pinned state of `pins.iface` again when its link is dead but the interface
/// is there (recreated, or the link detached from outside): see [`Health`]. `None` when the
/// guard is attached, or its interface is gone. Without a `mode`: generic if the guard was
/// attached in generic mode (an operator who chose it for a driver keeps it), else `auto`:
/// a guard that ran native, or that ran generic only because `auto` found native refused,
/// tries native first on the interface that came back, and falls back, saying why, if it
/// cannot run native.
pub fn revive(pins: &Pins, mode: Option<AttachMode>) -> Result<Option<Attached>, Error> {
    // The link alone first: an attached guard's maps may be of another version's layout,
    // which only `replace` and `clean` deal with.
    if health::link_attached(pins)? {
        return Ok(None);
    }
    schema::check(pins)?;
    let guard = Guard::open(pins.clone())?;
    let health = Health::of(&guard)?;
    if !health.needs_reattach() {
        return Ok(None);
    }
    let mode = if let Some(mode) = mode {
        mode
    } else {
        let recorded = guard.maps.config()?.attach_mode;
        match AttachMode::from_recorded(recorded) {
            AttachMode::Generic if recorded & attach_mode::FELL_BACK == 0 => AttachMode::Generic,
            _ => AttachMode::Auto,
        }
    };
    drop(guard);
    let attached = reattach(pins, mode)?;
    Ok(Some(Attached {
        revived: Some(health),
        ..attached
    }))
}

/// Swaps the embedded program in for the one attached to `pins.iface`, atomically through
/// the pinned link (`bpf_link_update`), reusing the pinned maps: no unguarded moment, no lost
/// counter or bucket.
pub fn replace(pins: &Pins) -> Result<Replaced, Error> {
    schema::check(pins)?;
    if !health::link_attached(pins)? {
        // The kernel refuses to update a detached link ("Link has been severed").
        let health = Guard::open(pins.clone())
            .and_then(|guard| Health::of(&guard))
            .unwrap_or(Health::LinkDetached);
        return Err(Error::NotAttached {
            iface: pins.iface.as_str().to_owned(),
            health,
        });
    }
    let path = pins.link();
    let pinned =
        PinnedLink::from_pin(&path).map_err(Error::pin("opening the pinned link", &path))?;
    let link = FdLink::from(pinned);
    let old = link
        .info()
        .map_err(Error::pin("reading the pinned link", &path))?
        .program_id();
    let mut ebpf = load(pins, pinned_capacity(pins)?)?;
    let program = program(&mut ebpf)?;
    let link = XdpLink::try_from(link).map_err(Error::pin("reading the pinned link", &path))?;
    program
        .attach_to_link(link)
        .map_err(|source| Error::Replace {
            iface: pins.iface.as_str().to_owned(),
            source,
        })?;
    let new = program
        .info()
        .map_err(Error::pin(
            "reading the program swapped into the link",
            &path,
        ))?
        .id();
    // Dropping `ebpf` closes our descriptors; the pinned link keeps the new program attached.
    Ok(Replaced {
        old_program: old,
        new_program: new,
        log: program_log(&mut ebpf),
    })
}

/// Attaches again after the interface was deleted and recreated under the same name (a new
/// ifindex; the kernel detached the old link), or after the link was detached from outside:
/// the new link replaces the old link's pin once it is attached, the pinned maps stay.
pub fn reattach(pins: &Pins, mode: AttachMode) -> Result<Attached, Error> {
    schema::check(pins)?;
    let ifindex = ifindex(&pins.iface)?;
    let ebpf = load(pins, pinned_capacity(pins)?)?;
    let cfg = {
        let map = ebpf
            .map(maps::CONFIG)
            .ok_or_else(|| Error::Object(format!("map {} missing from it", maps::CONFIG)))?;
        let config: Array<&MapData, Config> =
            Array::try_from(map).map_err(Error::map(maps::CONFIG))?;
        config
            .get(&0, 0)
            .map_err(Error::map("reading the config"))?
    };
    let cfg = Config {
        attached_at: now(),
        ..cfg
    };
    link_and_pin(ebpf, pins, ifindex, mode, cfg)
}

/// A program attached through a link: the link, the mode the kernel gave, and, when `auto`
/// fell back to generic, why native was refused.
struct Linked {
    id: XdpLinkId,
    mode: AttachMode,
    native_refused: Option<NativeRefusal>,
}

/// Attaches in the requested mode; `auto` tries native first, then generic, and keeps the
/// reason native was refused.
fn attach_mode_of(program: &mut Xdp, iface: &str, mode: AttachMode) -> Result<Linked, Error> {
    let generic = |program: &mut Xdp| {
        program
            .attach(iface, XdpMode::Skb)
            .map_err(|source| refused(iface, AttachMode::Generic, source))
    };
    if !matches!(mode, AttachMode::Native | AttachMode::Auto) {
        return Ok(Linked {
            id: generic(program)?,
            mode: AttachMode::Generic,
            native_refused: None,
        });
    }
    let source = match program.attach(iface, XdpMode::Driver) {
        Ok(id) => {
            return Ok(Linked {
                id,
                mode: AttachMode::Native,
                native_refused: None,
            });
        }
        Err(source) => source,
    };
    let error = refused(iface, AttachMode::Native, source);
    let Error::Attach { source, .. } = error else {
        // Another program holds the interface: no mode would do.
        return Err(error);
    };
    let refusal = native_refusal(program, iface, &source);
    if let AttachMode::Native = mode {
        return Err(Error::NativeUnavailable {
            iface: iface.to_owned(),
            refusal: Box::new(refusal),
            source,
        });
    }
    Ok(Linked {
        id: generic(program)?,
        mode: AttachMode::Generic,
        native_refused: Some(refusal),
    })
}

/// Asks why the driver refused native XDP, in its own words (over rtnetlink; see
/// [`netlink::native_refusal`]), with the errno and the MTU.
fn native_refusal(program: &Xdp, iface: &str, source: &ProgramError) -> NativeRefusal {
    let index = ifindex(iface).ok();
    let driver_says = index.zip(program.fd().ok()).and_then(|(index, fd)| {
        netlink::native_refusal(index, fd.as_fd())
            .map_err(|e| log::debug!("no driver message for {iface}: {e}"))
            .ok()
            .flatten()
    });
    NativeRefusal {
        errno: errno(source),
        driver_says,
        mtu: index.and_then(|index| netlink::link(index).ok()?.mtu),
    }
}

/// The errno under an attach error, if the kernel gave one.
fn errno(source: &ProgramError) -> Option<i32> {
    std::error::Error::source(source)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error)
}

/// An attach refused in `mode`: the refusal to clobber another program when the kernel says
/// "busy" (naming that program), else the kernel's error.
fn refused(iface: &str, mode: AttachMode, source: ProgramError) -> Error {
    let busy = errno(&source).is_some_and(|errno| errno == libc::EBUSY || errno == libc::EEXIST);
    if !busy {
        return Error::Attach {
            iface: iface.to_owned(),
            mode,
            source,
        };
    }
    Error::ForeignProgram {
        iface: iface.to_owned(),
        program: Box::new(foreign(iface, None)),
    }
}

/// The program attached to `iface` and its owner, as far as they can be read; with `here`
/// (this namespace's folder of guards), a guard pinned there under another interface's name
/// is named (its interface was renamed).
fn foreign(iface: &str, here: Option<&Path>) -> Foreign {
    let index = ifindex(iface).ok();
    let state = index.and_then(|index| netlink::xdp_state(index).ok().flatten());
    let Some((index, state)) = index.zip(state) else {
        return Foreign {
            id: 0,
            name: None,
            mode: AttachMode::Unknown,
            owner: Owner::Unknown,
        };
    };
    let name = (state.program_id != 0)
        .then(|| netlink::program_name(state.program_id))
        .flatten();
    let pins = owner::Pins::find(iface, index, state.program_id);
    let ours = here.and_then(|dir| guard_holding(dir, iface, state.program_id));
    Foreign {
        id: state.program_id,
        owner: ours.map_or_else(
            || Owner::identify(name.as_deref(), &pins),
            |iface| Owner::GuardOf { iface },
        ),
        name,
        mode: state.mode,
    }
}

/// The interface name under which a guard in `dir` (a namespace's folder of guards) holds a
/// link to `program_id`, other than `iface`.
fn guard_holding(dir: &Path, iface: &str, program_id: u32) -> Option<String> {
    if program_id == 0 {
        return None;
    }
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let name = entry.file_name().to_str()?.to_owned();
        let holds = name != iface
            && name.parse::<IfaceName>().is_ok()
            && link::pinned_state(&entry.path().join(maps::LINK_PIN))
                .is_ok_and(|state| state.program_id == program_id);
        holds.then_some(name)
    })
}

/// The capacity of the per-source table pinned for `pins` (checked by [`schema::check`]).
pub fn pinned_capacity(pins: &Pins) -> Result<u32, Error> {
    let path = pins.map(maps::SOURCES);
    aya::maps::MapInfo::from_pin(&path)
        .map(|info| info.max_entries())
        .map_err(Error::pin("reading the pinned map", &path))
}

/// Bytes the kernel allocates for a per-source table of `entries`: one preallocated element
/// each (a 48-byte header, the 16-byte key, the 32-byte value) and a 16-byte bucket head per
/// entry rounded up to a power of two.
#[must_use]
pub fn table_bytes(entries: u32) -> u64 {
    const ELEMENT: u64 = 48 + 16 + 32;
    const BUCKET: u64 = 16;
    u64::from(entries) * ELEMENT + u64::from(entries.next_power_of_two()) * BUCKET
}

/// Refuses a per-source table for `iface` that would take, with `besides` bytes of the other
/// tables the command creates, more than half of the memory available now: the kernel
/// preallocates a table whole when the map is created, and charges it to the memory cgroup of
/// the process that creates it (a container's limit, or a unit's `MemoryMax=`), so the room
/// left under that limit counts too, where it is lower.
fn table_fits(iface: &str, entries: u32, besides: u64) -> Result<(), Error> {
    let host = mem_available().map(|bytes| (bytes, "available on the host (MemAvailable)"));
    let cgroup = cgroup_room();
    let Some((available, within)) = [host, cgroup].into_iter().flatten().min_by_key(|(b, _)| *b)
    else {
        return Ok(());
    };
    let needed = table_bytes(entries);
    if needed.saturating_add(besides) <= available / 2 {
        return Ok(());
    }
    let per_entry = table_bytes(1 << 20) >> 20;
    let fits =
        u32::try_from((available / 2).saturating_sub(besides) / per_entry).unwrap_or(u32::MAX);
    let fix = if fits >= crate::policy::knobs::MIN_SOURCES {
        format!("choose at most {fits}, or give it more memory")
    } else if besides > 0 {
        "attach fewer of the file's interfaces at once (`attach --config FILE IFACE`), or give them smaller max_sources or more memory".to_owned()
    } else {
        "give it more memory: not even the smallest table fits".to_owned()
    };
    Err(Error::TableTooLarge {
        iface: iface.to_owned(),
        wanted: entries,
        needed_mib: needed.div_ceil(1 << 20),
        besides: if besides == 0 {
            String::new()
        } else {
            format!(
                " (and {} MiB for the file's other new guards)",
                besides.div_ceil(1 << 20)
            )
        },
        available_mib: available >> 20,
        within,
        fix,
    })
}

/// The bytes this process's memory cgroup may still charge (its limit less its usage) and the
/// file that sets the limit; `None` without a limit, or when it cannot be read. cgroup v2
/// (`memory.max`) or v1's memory controller (`memory.limit_in_bytes`); the process's own
/// group only, not its parents'.
fn cgroup_room() -> Option<(u64, &'static str)> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut found = None;
    for line in groups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        let (dir, limit, usage, name) = if controllers.is_empty() {
            // v2: mounted at /sys/fs/cgroup, or at /sys/fs/cgroup/unified beside v1's.
            let Some(root) = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
                .into_iter()
                .map(Path::new)
                .find(|root| root.join("cgroup.controllers").exists())
            else {
                continue;
            };
            (
                root.join(path),
                "memory.max",
                "memory.current",
                "its memory cgroup allows (memory.max, less what the group uses)",
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                Path::new("/sys/fs/cgroup/memory").join(path),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "its memory cgroup allows (memory.limit_in_bytes, less what the group uses)",
            )
        } else {
            continue;
        };
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        // "max" (v2) or a number past any memory (v1's "no limit") parse as no limit.
        let Some(limit) = read(limit).and_then(|t| t.trim().parse::<u64>().ok()) else {
            continue;
        };
        let used = read(usage)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let room = limit.saturating_sub(used);
        if found.is_none_or(|(least, _)| room < least) {
            found = Some((room, name));
        }
    }
    found
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo.lines().find_map(|line| {
        let kib = line
            .strip_prefix("MemAvailable:")?
            .trim()
            .strip_suffix("kB")?;
        kib.trim().parse::<u64>().ok().map(|k| k * 1024)
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_costs_at_most_128_bytes() {
        for entries in [1024, 65_536, 100_000, 1 << 24] {
            let per_source = table_bytes(entries) / u64::from(entries);
            assert!(per_source <= 128, "{entries}: {per_source} bytes a source");
        }
        assert_eq!(table_bytes(65_536) >> 20, 7);
    }
}
