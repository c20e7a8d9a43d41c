//! `icmp-guard run --config FILE`: the service. It guards every interface of the file and
//! keeps them guarded: SIGHUP re-reads the file and applies it only if all of it is valid;
//! an interface that disappears and comes back (new ifindex) is re-attached with its maps
//! kept; rare events logged by the program (aya-log) are forwarded to this log; `/metrics`
//! serves Prometheus text. SIGTERM or SIGINT stop it, leaving the guards attached
//! (`daemon.on_exit = "keep"`, the default) or detaching them (`"detach"`).
//!
//! On start, interfaces that are already guarded get this version's program through their
//! pinned link (an atomic swap that keeps counters and buckets), so restarting the service
//! after an upgrade never leaves a gap in protection.
//!
//! One service per bpffs and network namespace: a second one is refused, naming the first
//! one's pid (see [`ServiceLock`]). Under systemd (`Type=notify`) the service says READY once
//! every interface of the file has been dealt with, RELOADING and READY around a reload, and
//! its state in STATUS. A guard whose link the kernel dropped, or someone detached, or whose
//! pins someone removed, is attached again at the next check, saying what happened.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    signal::unix::{SignalKind, signal},
    task::JoinHandle,
};

use self::http::{Shared, serve};
use crate::{
    Error,
    config_file::{
        ConfigFile, InterfaceConfig, OnExit,
        apply::{self, Applied},
    },
    kernel::{
        IfaceName,
        iface::ifindex,
        loader::{self, ProgramLog},
    },
    pinned::{
        Lock, Pins,
        health::{self, Health},
        lock,
        service::ServiceLock,
    },
};

pub mod http;
pub mod journal;
pub mod systemd;

/// How often interfaces are checked and program logs flushed.
const TICK: Duration = Duration::from_secs(1);

/// The longest wait between two tries to attach an interface whose attach keeps failing
/// (another program holds it, the driver refuses the mode): the wait doubles from [`TICK`]
/// up to this, so a lasting failure costs a load of the program twice a minute, not every
/// second.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A test hook: with this variable set to a number of seconds, the interface check runs that
/// often and not at once on start, so a test can count the `bpf()` calls of a reload alone
/// (`tests/tests/crash.rs` kills the service at each of them). Not for operators.
const TEST_TICK_VAR: &str = "ICMP_GUARD_TEST_TICK_SECS";

/// The check's timer: every [`TICK`] from now, or as [`TEST_TICK_VAR`] says.
fn check_timer() -> tokio::time::Interval {
    let test_tick = std::env::var(TEST_TICK_VAR)
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map(Duration::from_secs);
    match test_tick {
        Some(period) => tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        None => tokio::time::interval(TICK),
    }
}

/// Stops a metrics server and waits until its listener is closed. Once per handle: an ended
/// handle must not be awaited again.
async fn stop_server(server: &mut JoinHandle<()>) {
    server.abort();
    let _ = server.await;
}

/// Runs the service for the file `config` until SIGTERM or SIGINT.
///
/// The service's own work (attach, reload, the interface check) runs on this thread and may
/// block: on the command lock for up to [`crate::pinned::lock::WAIT`], or on the kernel. The
/// metrics endpoint runs on a worker thread of its own, so a scrape is answered meanwhile.
pub fn run(cli_bpffs: &Path, config: &Path) -> Result<(), Error> {
    let cfg = ConfigFile::load(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime for", config))?;
    runtime.block_on(Daemon::new(cli_bpffs, cfg).run())
}

/// What the metrics endpoint reads: where the guards are, which interfaces the file names, and
/// how the last reload went. Updated on reload.
#[derive(Clone, Debug, Default)]
pub struct Served {
    pub bpffs: PathBuf,
    pub interfaces: Vec<IfaceName>,
    /// Whether the last reload (or the start) applied the whole file; `None` until the
    /// start has applied it (the endpoint answers meanwhile: a scrape then must not say
    /// that the file failed).
    pub last_reload_ok: Option<bool>,
    /// When the file was last applied whole, in seconds since the Unix epoch.
    pub last_reload_success: u64,
    /// Whether the top sources' series name the source (`daemon.metrics_source_labels`).
    pub source_labels: bool,
    /// Why the service is not ready (`GET /ready`), `None` when it is: the start has applied
    /// the file and every interface of it that the host has is guarded. Renewed every check.
    pub unready: Option<String>,
}

/// Why the service is not ready until the start has applied the file and the check after it
/// has looked at every interface.
const STARTING: &str = "the configuration is being applied";

/// An error about interface `iface` as a log line: its chain, after the name unless the error
/// names that interface already (a lock, a path or a map error does not), so every line of
/// the service's log says which interface it is about.
fn about(iface: &IfaceName, e: &Error) -> String {
    let text = crate::error::chain(e);
    if e.iface() == Some(iface.as_str()) {
        text
    } else {
        format!("{iface}: {text}")
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Daemon {
    cli_bpffs: PathBuf,
    cfg: ConfigFile,
    bpffs: PathBuf,
    /// Interfaces seen missing, so their absence is logged once.
    gone: BTreeSet<IfaceName>,
    /// The last problem logged for an interface the check could not mend, so a lasting one
    /// is logged once, not every second.
    failing: HashMap<IfaceName, String>,
    /// Program logs, by interface: taken from the programs this daemon loaded.
    loggers: HashMap<IfaceName, ProgramLog>,
    /// Interfaces whose last attach by the check failed: when to try again, and the wait
    /// after that try (see [`RETRY_MAX`]).
    retry: HashMap<IfaceName, (std::time::Instant, Duration)>,
    /// Whether the last start or reload applied the whole file, for the STATUS line.
    applied: bool,
    /// Whether all that kept the last start or reload from applying the whole file was
    /// interfaces in `refused`: once the check has applied the file to each, it is applied.
    refusals_only: bool,
    /// Interfaces the file no longer names whose guard a reload could not detach.
    undetached: BTreeSet<IfaceName>,
    /// Interfaces the start or a reload could not apply the file to (an attach, an upgrade
    /// or a list write failed): the check that attaches them later names that failure, not a
    /// removal of their pins; `/ready` names them; the next reload upgrades them again.
    refused: BTreeSet<IfaceName>,
    /// A start or reload that could not take the command lock and so applied nothing: the
    /// check applies the file as soon as it can (`true`: with the start's upgrade of
    /// attached guards).
    pending: Option<bool>,
    /// The last error of taking the command lock other than a wait that ran out (a lock
    /// file or folder that cannot be trusted), so the check's retries of a put-off apply log
    /// it once, not every second.
    lock_failing: Option<String>,
    shared: Shared,
}

impl Daemon {
    fn new(cli_bpffs: &Path, cfg: ConfigFile) -> Self {
        let bpffs = cfg.bpffs_or(cli_bpffs);
        let served = Served {
            bpffs: bpffs.clone(),
            interfaces: cfg.interfaces.iter().map(|i| i.name.clone()).collect(),
            last_reload_ok: None,
            last_reload_success: 0,
            source_labels: cfg.metrics_source_labels,
            unready: Some(STARTING.to_owned()),
        };
        Self {
            cli_bpffs: cli_bpffs.to_path_buf(),
            shared: Arc::new(Mutex::new(served)),
            cfg,
            bpffs,
            gone: BTreeSet::new(),
            failing: HashMap::new(),
            loggers: HashMap::new(),
            retry: HashMap::new(),
            applied: false,
            refusals_only: false,
            undetached: BTreeSet::new(),
            refused: BTreeSet::new(),
            pending: None,
            lock_failing: None,
        }
    }

    async fn run(mut self) -> Result<(), Error> {
        // Signals first: one that arrives while the guards are being attached must not kill
        // the process with its default action.
        let path = self.cfg.path.clone();
        let mut hangup =
            signal(SignalKind::hangup()).map_err(Error::io("handling SIGHUP for", &path))?;
        let mut terminate =
            signal(SignalKind::terminate()).map_err(Error::io("handling SIGTERM for", &path))?;
        let mut interrupt =
            signal(SignalKind::interrupt()).map_err(Error::io("handling SIGINT for", &path))?;
        // One service for these guards: a second one changes nothing.
        let mut service = ServiceLock::acquire(&self.bpffs, &path, &self.names())?;
        // Bind next: a daemon that cannot serve its metrics changes nothing.
        let mut server = serve(self.cfg.metrics, self.shared.clone()).await?;
        let ok = self.apply(true, lock::WAIT);
        self.record(ok);
        let mut tick = check_timer();
        systemd::ready(&self.summary(ok));
        log::info!(
            "icmp-guard daemon running with {}: {} interface(s), metrics on http://{}/metrics",
            crate::error::shown(&self.cfg.path),
            self.cfg.interfaces.len(),
            self.cfg.metrics
        );
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    systemd::reloading();
                    let ok = self.reload(&mut server).await;
                    if let Err(e) = service.update(&self.cfg.path, &self.names()) {
                        log::warn!("{}", crate::error::chain(&e));
                    }
                    systemd::ready(&self.summary(ok));
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = tick.tick() => {
                    if let Some(upgrade) = self.pending {
                        // Without waiting: a held lock must not hold up signals and logs.
                        let ok = self.apply(upgrade, Duration::ZERO);
                        if self.pending.is_none() {
                            log::info!(
                                "{} applied now that the command lock is free{}",
                                crate::error::shown(&self.cfg.path),
                                if ok { "" } else { ", in part (see the errors above)" }
                            );
                            self.record(ok);
                            systemd::status(&self.summary(ok));
                            // A reload's detaches were put off with it: the lock names what
                            // the service manages now.
                            if let Err(e) = service.update(&self.cfg.path, &self.names()) {
                                log::warn!("{}", crate::error::chain(&e));
                            }
                        }
                    }
                    // Until the file is applied, the check has nothing to keep (it would take
                    // the interfaces the file adds for ones whose pins were removed), and
                    // `/ready` keeps what it said.
                    if self.pending.is_none() {
                        self.watch();
                    }
                    self.flush_logs();
                }
            }
        }
        systemd::stopping();
        server.abort();
        self.flush_logs();
        self.stop()
    }

    /// The interfaces of the file, and those no longer in it that are still guarded
    /// (`undetached`).
    fn names(&self) -> Vec<IfaceName> {
        self.cfg
            .interfaces
            .iter()
            .map(|i| i.name.clone())
            .chain(self.undetached.iter().cloned())
            .collect()
    }

    /// A line for `systemctl status`.
    fn summary(&self, ok: bool) -> String {
        let names = self.names();
        let guarded = names
            .iter()
            .filter(|name| {
                Pins::new(&self.bpffs, name)
                    .and_then(Health::of_pins)
                    .is_ok_and(Health::attached)
            })
            .count();
        let applied = if ok {
            "configuration applied"
        } else {
            "configuration NOT fully applied (see the log)"
        };
        format!(
            "{applied}; {guarded} of {} interface(s) guarded; metrics on http://{}/metrics",
            names.len(),
            self.cfg.metrics
        )
    }

    /// Records how the last apply went, for the metrics and the STATUS line.
    fn record(&mut self, ok: bool) {
        self.applied = ok;
        if let Ok(mut served) = self.shared.lock() {
            served.bpffs.clone_from(&self.bpffs);
            served.interfaces = self.names();
            served.source_labels = self.cfg.metrics_source_labels;
            served.last_reload_ok = Some(ok);
            if ok {
                served.last_reload_success = unix_now();
            }
        }
    }

    /// Makes every configured interface match the file; `upgrade` swaps this version's
    /// program into guards that are attached. Returns whether everything was applied (an
    /// interface that does not exist yet is no failure: it is attached when it appears).
    fn apply(&mut self, upgrade: bool, wait: Duration) -> bool {
        // A start still waiting for the lock upgrades when a reload gets it first.
        let upgrade = upgrade || self.pending == Some(true);
        let _lock = match Lock::acquire_within(&self.bpffs, wait) {
            Ok(lock) => lock,
            Err(e @ Error::Busy { .. }) => {
                // Said by the start and each reload; the check's retries (no wait) say
                // nothing until one gets the lock.
                if !wait.is_zero() || self.pending.is_none() {
                    log::error!(
                        "{}; {} is applied as soon as the lock is free",
                        crate::error::chain(&e),
                        crate::error::shown(&self.cfg.path)
                    );
                }
                self.pending = Some(upgrade);
                if let Ok(mut served) = self.shared.lock() {
                    served.unready = Some(format!(
                        "{} waits for the command lock, which another command holds",
                        crate::error::shown(&self.cfg.path)
                    ));
                }
                return false;
            }
            // A lock file that cannot be trusted or opened: no wait cures that. A put-off
            // apply stays put off, and the check tries it again every second: said once.
            Err(e) => {
                let problem = crate::error::chain(&e);
                // Every start and reload says it; the check's retries only when it changed.
                if !wait.is_zero() || self.lock_failing.as_ref() != Some(&problem) {
                    log::error!("{problem}");
                }
                if self.pending.is_some()
                    && let Ok(mut served) = self.shared.lock()
                {
                    served.unready = Some(format!(
                        "{} waits for the command lock, which cannot be taken: {problem}",
                        crate::error::shown(&self.cfg.path)
                    ));
                }
                self.lock_failing = Some(problem);
                return false;
            }
        };
        self.lock_failing = None;
        self.pending = None;
        let mut ok = self.detach_dropped();
        let mut other_failures = !ok;
        for ic in &self.cfg.interfaces.clone() {
            if ifindex(&ic.name).is_err() {
                log::warn!(
                    "{}: no such interface yet; it is attached when it appears",
                    ic.name
                );
                self.gone.insert(ic.name.clone());
                continue;
            }
            // An interface the last apply failed on is upgraded too: a failed upgrade left
            // the old program, which a reload must not take for this version's.
            let upgrade = upgrade || self.refused.contains(&ic.name);
            let result = self.apply_one(ic, upgrade).map(|(applied, unchangeable)| {
                for e in &unchangeable {
                    ok = false;
                    other_failures = true;
                    log::error!("{}", about(&ic.name, e));
                }
                applied
            });
            match result {
                Ok(Applied::Attached(a)) => {
                    for note in a.notes(&ic.name) {
                        log::info!("{note}");
                    }
                    log::info!(
                        "{}: attached in {} mode as program {}",
                        ic.name,
                        a.mode,
                        a.program_id
                    );
                    if let Some(note) = a.fallback_note(&ic.name) {
                        log::warn!("{note}");
                    }
                    self.loggers.extend(a.log.map(|l| (ic.name.clone(), l)));
                    self.refused.remove(&ic.name);
                }
                Ok(Applied::Updated) => {
                    log::info!("{}: policy and lists applied", ic.name);
                    self.refused.remove(&ic.name);
                }
                Err(e) => {
                    ok = false;
                    log::error!("{}", about(&ic.name, &e));
                    self.refused.insert(ic.name.clone());
                }
            }
        }
        self.refusals_only = !ok && !other_failures;
        ok
    }

    /// Makes `ic` match the file, with the command lock held: upgrades its guard first if
    /// `upgrade` says so; what was applied and what the guard cannot change (see
    /// [`apply::apply`]).
    fn apply_one(
        &mut self,
        ic: &InterfaceConfig,
        upgrade: bool,
    ) -> Result<(Applied, Vec<Error>), Error> {
        let pins = Pins::to_change(&self.bpffs, &ic.name)?;
        if upgrade && pins.exist() {
            self.upgrade(&pins)?;
        }
        apply::apply(&self.bpffs, ic)
    }

    /// Detaches the interfaces a reload took out of the file (`undetached`), with the command
    /// lock held; whether every one was. One that could not be stays in view (the metrics,
    /// the service lock, `on_exit`), enforcing the limits it had, until an apply detaches it.
    fn detach_dropped(&mut self) -> bool {
        let mut ok = true;
        for name in std::mem::take(&mut self.undetached) {
            if self.detach(&name, "no longer in the configuration") {
                continue;
            }
            ok = false;
            let attached = Pins::new(&self.bpffs, &name)
                .and_then(|pins| health::link_attached(&pins))
                .unwrap_or(false);
            if attached {
                log::error!(
                    "{name}: still guarded, with the limits it had; the next reload tries to detach it again"
                );
                self.undetached.insert(name);
            }
        }
        ok
    }

    /// Swaps this version's program into an attached guard (one whose link is dead is
    /// attached again by `apply` instead).
    fn upgrade(&mut self, pins: &Pins) -> Result<(), Error> {
        if !health::link_attached(pins)? {
            return Ok(());
        }
        let r = loader::replace(pins)?;
        log::info!(
            "{}: program {} replaced with {}",
            pins.iface,
            r.old_program,
            r.new_program
        );
        self.loggers.extend(r.log.map(|l| (pins.iface.clone(), l)));
        Ok(())
    }

    /// SIGHUP: the new file, if all of it is valid (moving the metrics `server` when its
    /// address changed); whether the whole file was applied.
    async fn reload(&mut self, server: &mut JoinHandle<()>) -> bool {
        // Set again by the apply, if the reload gets that far.
        self.refusals_only = false;
        let new = match ConfigFile::load(&self.cfg.path) {
            Ok(new) => new,
            Err(e) => {
                log::error!(
                    "reload refused, nothing changed: {}",
                    crate::error::chain(&e)
                );
                self.record(false);
                return false;
            }
        };
        let bpffs = new.bpffs_or(&self.cli_bpffs);
        if bpffs != self.bpffs {
            log::error!(
                "reload refused, nothing changed: daemon.bpffs changed from {} to {}, and a reload does not move guards; the guards under {} keep enforcing. Restart the service to use the new bpffs (then remove the old guards with `icmp-guard --bpffs {} detach IFACE`), or put the old value back",
                crate::error::shown(&self.bpffs),
                crate::error::shown(&bpffs),
                crate::error::shown(&self.bpffs),
                crate::error::shown(&self.bpffs)
            );
            self.record(false);
            return false;
        }
        let names: BTreeSet<&IfaceName> = new.interfaces.iter().map(|i| &i.name).collect();
        let dropped: Vec<IfaceName> = self
            .cfg
            .interfaces
            .iter()
            .filter(|i| !names.contains(&i.name))
            .map(|i| i.name.clone())
            .collect();
        // Detached by the apply, under the lock it takes once; with those a reload before
        // could not detach, unless the file names them again.
        self.undetached.retain(|name| !names.contains(name));
        self.undetached.extend(dropped);
        let old_metrics = self.cfg.metrics;
        self.cfg = new;
        // The file's interfaces only: a failure of one the file dropped is no longer news.
        let in_file: BTreeSet<IfaceName> =
            self.cfg.interfaces.iter().map(|i| i.name.clone()).collect();
        self.refused.retain(|name| in_file.contains(name));
        let mut ok = self.apply(false, lock::WAIT);
        if self.cfg.metrics != old_metrics && !self.move_metrics(server, old_metrics).await {
            ok = false;
            self.refusals_only = false;
        }
        self.record(ok);
        if self.pending.is_some() {
            // Said by the apply: the file waits for the lock.
        } else if ok {
            log::info!("reloaded {}", crate::error::shown(&self.cfg.path));
        } else {
            log::error!(
                "reloaded {} only in part: see the errors above",
                crate::error::shown(&self.cfg.path)
            );
        }
        ok
    }

    /// Moves the metrics endpoint from `old` to the file's address; whether it could (if not,
    /// it stays on `old`). On the same port the old listener is closed first: a wildcard
    /// address (`0.0.0.0`, `[::]`, as `metrics_public` takes) cannot be bound while a
    /// specific one listens on its port, even with `SO_REUSEADDR`.
    async fn move_metrics(&mut self, server: &mut JoinHandle<()>, old: SocketAddr) -> bool {
        let same_port = self.cfg.metrics.port() == old.port();
        if same_port {
            stop_server(server).await;
        }
        match serve(self.cfg.metrics, self.shared.clone()).await {
            Ok(moved) => {
                if !same_port {
                    stop_server(server).await;
                }
                *server = moved;
                true
            }
            Err(e) => {
                log::error!("metrics stay on {old}: {}", crate::error::chain(&e));
                self.cfg.metrics = old;
                if same_port {
                    match serve(old, self.shared.clone()).await {
                        Ok(again) => *server = again,
                        Err(e) => {
                            log::error!(
                                "metrics endpoint down: {old} could not be bound again: {}",
                                crate::error::chain(&e)
                            );
                            // A handle that may be stopped again, unlike the ended one.
                            *server = tokio::spawn(async {});
                        }
                    }
                }
                false
            }
        }
    }

    /// Keeps every configured interface guarded: attaches the pinned state again when the
    /// kernel dropped the link (the interface was recreated, or the link detached from
    /// outside), and attaches anew when someone removed the pins, saying which.
    ///
    /// Also renews what `GET /ready` answers, from what it found: ready when the file was
    /// applied to every interface of it that the host has, each is guarded, and the host has
    /// at least one; otherwise the first reason it is not.
    fn watch(&mut self) {
        let interfaces = self.cfg.interfaces.clone();
        let mut changed = false;
        let mut unready = None;
        for ic in &interfaces {
            let (moved, why_not) = self.keep_guarded(ic);
            changed |= moved;
            unready = unready.or(why_not);
        }
        // A service that guards nothing is not ready: a file whose names no interface of
        // this host has (`eth0` on a host of `ens5`s) must stop a rollout, not pass it.
        if !interfaces.is_empty() && interfaces.iter().all(|ic| ifindex(&ic.name).is_err()) {
            let names: Vec<String> = interfaces.iter().map(|ic| ic.name.to_string()).collect();
            unready = Some(format!(
                "none of the interfaces of {} exists on this host ({}): it guards nothing",
                crate::error::shown(&self.cfg.path),
                names.join(", ")
            ));
        }
        if let Ok(mut served) = self.shared.lock() {
            served.unready = unready;
        }
        if changed {
            systemd::status(&self.summary(self.applied));
        }
    }

    /// One interface of the file, as [`Daemon::watch`] says: whether what is guarded changed,
    /// and why the interface keeps the service from being ready, if it does.
    fn keep_guarded(&mut self, ic: &InterfaceConfig) -> (bool, Option<String>) {
        let Ok(index) = ifindex(&ic.name) else {
            // Back within a second when it comes back, whatever failed before.
            self.retry.remove(&ic.name);
            if self.gone.insert(ic.name.clone()) {
                self.log_missing(&ic.name);
                return (true, None);
            }
            return (false, None);
        };
        let health = Pins::new(&self.bpffs, &ic.name).and_then(Health::of_pins);
        let unready = match &health {
            // An upgrade or a list write that failed leaves the guard attached, with the
            // old program or lists: not what the file asks, until a reload applies it.
            _ if self.refused.contains(&ic.name) => Some(format!(
                "the file could not be applied to {} (see the service's log)",
                ic.name
            )),
            Ok(Health::Attached) => None,
            Ok(health) => Some(format!("{} is not guarded: {health}", ic.name)),
            Err(e) => Some(format!(
                "{} is not guarded: {}",
                ic.name,
                crate::error::chain(e)
            )),
        };
        if self.refused.contains(&ic.name) && matches!(health, Ok(Health::Attached)) {
            let applied = self.apply_again(ic);
            return (false, if applied { None } else { unready });
        }
        match self.why_attach(ic, index, health) {
            Ok((why, news)) => {
                let attached = self.attach_again(ic, &why, news);
                (attached, if attached { None } else { unready })
            }
            Err(changed) => (changed, unready),
        }
    }

    /// Why `ic` (whose interface has the index `index`, its guard's health `health`) is to be
    /// attached, and whether that is news rather than a repair; or, when it is not to be,
    /// whether what is guarded changed.
    fn why_attach(
        &mut self,
        ic: &InterfaceConfig,
        index: u32,
        health: Result<Health, Error>,
    ) -> Result<(String, bool), bool> {
        match health {
            Ok(Health::Attached) => {
                self.failing.remove(&ic.name);
                self.retry.remove(&ic.name);
                Err(self.gone.remove(&ic.name))
            }
            Ok(health) if !health.needs_reattach() => {
                self.once(&ic.name, format!("{}: {health}", ic.name));
                Err(false)
            }
            Ok(Health::Recreated { .. }) => {
                Ok((format!("the interface is back (ifindex {index})"), false))
            }
            Ok(health) => Ok((health.to_string(), false)),
            // Never guarded here yet: named in the file before it existed (a bpffs path
            // not mounted yet is mounted by the attach).
            Err(Error::NotGuarded { .. } | Error::NotBpffs { .. })
                if self.gone.contains(&ic.name) =>
            {
                Ok((format!("the interface appeared (ifindex {index})"), true))
            }
            // The start or a reload tried and failed (said then): try again.
            Err(Error::NotGuarded { .. } | Error::NotBpffs { .. })
                if self.refused.contains(&ic.name) =>
            {
                Ok((
                    "the file could not be applied to it when it was read".to_owned(),
                    false,
                ))
            }
            Err(Error::NotGuarded { .. }) => Ok((
                format!(
                    "its pins were removed outside this service (e.g. `icmp-guard detach`), but {} names it; to stop guarding it, remove it from the file and reload",
                    crate::error::shown(&self.cfg.path)
                ),
                false,
            )),
            Err(e) => {
                self.once(&ic.name, about(&ic.name, &e));
                Err(false)
            }
        }
    }

    /// Applies the file again to a guard that stayed attached when applying it failed (an
    /// upgrade or a list write the kernel refused), with the upgrade, unless the last try is
    /// waiting out its back-off or another command holds the lock (then the next check tries);
    /// whether the file is applied now.
    fn apply_again(&mut self, ic: &InterfaceConfig) -> bool {
        let now = std::time::Instant::now();
        if self.retry.get(&ic.name).is_some_and(|(at, _)| now < *at) {
            return false;
        }
        let Ok(_lock) = Lock::acquire_within(&self.bpffs, Duration::ZERO) else {
            return false;
        };
        // What the guard cannot change was said when the file was read; not again.
        match self.apply_one(ic, true) {
            Ok(_) => {
                log::info!(
                    "{}: {} applied now (it could not be when it was read)",
                    ic.name,
                    crate::error::shown(&self.cfg.path)
                );
                self.refused.remove(&ic.name);
                self.failing.remove(&ic.name);
                self.retry.remove(&ic.name);
                // The last one the file could not be applied to: now it is, whole.
                if self.refused.is_empty() && !self.applied && self.refusals_only {
                    self.record(true);
                    systemd::status(&self.summary(true));
                }
                true
            }
            Err(e) => {
                let problem = format!(
                    "{}: applying {} again failed: {}",
                    ic.name,
                    crate::error::shown(&self.cfg.path),
                    crate::error::chain(&e)
                );
                self.retry_later(&ic.name, now, &problem);
                false
            }
        }
    }

    /// Puts off the next try for `name` (the wait doubling from [`TICK`] up to
    /// [`RETRY_MAX`]) and logs `problem` unless it is what was logged last.
    fn retry_later(&mut self, name: &IfaceName, now: std::time::Instant, problem: &str) {
        let wait = self
            .retry
            .get(name)
            .map_or(TICK, |(_, wait)| (*wait * 2).min(RETRY_MAX));
        self.retry.insert(name.clone(), (now + wait, wait));
        self.once(
            name,
            format!(
                "{problem} (tried again after 1, 2, 4, ... s, then every {} s, while this lasts)",
                RETRY_MAX.as_secs()
            ),
        );
    }

    /// Attaches `ic` for the reason `why` (logged as news, or as a repair), unless a failed
    /// attach is waiting out its back-off; whether it was attached.
    fn attach_again(&mut self, ic: &InterfaceConfig, why: &str, news: bool) -> bool {
        let now = std::time::Instant::now();
        if self.retry.get(&ic.name).is_some_and(|(at, _)| now < *at) {
            return false;
        }
        let result = self.locked(|| apply::apply(&self.bpffs, ic));
        let result = result.map(|(applied, unchangeable)| {
            for e in &unchangeable {
                self.once(&ic.name, about(&ic.name, e));
            }
            applied
        });
        match result {
            Ok(Applied::Attached(a)) => {
                for note in a.notes(&ic.name) {
                    log::info!("{note}");
                }
                let line = format!(
                    "{}: {why}; attached in {} mode as program {}",
                    ic.name, a.mode, a.program_id
                );
                if news {
                    log::info!("{line}");
                } else {
                    log::warn!("{line}");
                }
                if let Some(note) = a.fallback_note(&ic.name) {
                    log::warn!("{note}");
                }
                self.loggers.extend(a.log.map(|l| (ic.name.clone(), l)));
                self.gone.remove(&ic.name);
                self.refused.remove(&ic.name);
                self.failing.remove(&ic.name);
                self.retry.remove(&ic.name);
                true
            }
            Ok(Applied::Updated) => false,
            Err(e) => {
                let problem = format!("{}: {why}; {}", ic.name, crate::error::chain(&e));
                self.retry_later(&ic.name, now, &problem);
                false
            }
        }
    }

    /// Says that no interface has the name `name` now: gone (and its guard detached by the
    /// kernel), or renamed or moved to another namespace (and its guard still enforcing
    /// there).
    fn log_missing(&self, name: &IfaceName) {
        let health = Pins::new(&self.bpffs, name).and_then(Health::of_pins);
        match health {
            Ok(health @ (Health::Renamed { .. } | Health::Moved { .. })) => {
                log::warn!("{name}: no interface has this name now: {health}");
            }
            _ => log::warn!(
                "{name}: interface gone; the kernel detached its guard; waiting for it to come back"
            ),
        }
    }

    /// Logs `problem` as an error unless it is what was last logged for `name`.
    fn once(&mut self, name: &IfaceName, problem: String) {
        if self.failing.get(name) != Some(&problem) {
            log::error!("{problem}");
            self.failing.insert(name.clone(), problem);
        }
    }

    fn locked<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let _lock = Lock::acquire(&self.bpffs)?;
        f()
    }

    /// Forwards the programs' aya-log records (rare events) to this process's log.
    fn flush_logs(&mut self) {
        for log in self.loggers.values_mut() {
            log.flush();
        }
    }

    /// Detaches `name` and removes its pins, with the command lock held; returns whether it
    /// could.
    fn detach(&mut self, name: &IfaceName, why: &str) -> bool {
        let result = Pins::to_change(&self.bpffs, name).and_then(|pins| {
            let existed = pins.dir.exists();
            if existed {
                pins.remove()?;
            }
            Ok(existed)
        });
        if result.is_ok() {
            // Kept while the guard may still run (a detach that failed), for its rare events.
            self.loggers.remove(name);
        }
        match result {
            Ok(true) => log::info!("{name}: detached ({why})"),
            Ok(false) => log::info!("{name}: nothing to detach ({why}): it had no pins"),
            Err(e) => {
                log::error!("{}", about(name, &e));
                return false;
            }
        }
        true
    }

    /// `daemon.on_exit`; an error (the service's exit status) when a detach failed (the guard
    /// may still be attached, or its pins half removed), so that systemd and whoever stopped
    /// it learn it.
    fn stop(&mut self) -> Result<(), Error> {
        match self.cfg.on_exit {
            OnExit::Keep => {
                log::info!(
                    "stopping; guards stay attached and enforcing (daemon.on_exit = \"keep\")"
                );
                Ok(())
            }
            OnExit::Detach => {
                // One wait for the lock for every guard; without it none is touched.
                let lock = Lock::acquire(&self.bpffs)
                    .inspect_err(|e| log::error!("{}", crate::error::chain(e)));
                let names = self.names().into_iter();
                let failed: Vec<String> = if lock.is_ok() {
                    names
                        .filter(|name| !self.detach(name, "daemon.on_exit = \"detach\""))
                        .map(|name| name.as_str().to_owned())
                        .collect()
                } else {
                    names.map(|name| name.as_str().to_owned()).collect()
                };
                drop(lock);
                if failed.is_empty() {
                    Ok(())
                } else {
                    Err(Error::NotDetached {
                        interfaces: failed.join(", "),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error line names its interface once: after its name when the error is not about
    /// it, even if the name appears in the text (a lock under `/run` for an interface `run`).
    #[test]
    fn an_error_line_names_its_interface_once() {
        let busy = || Error::Busy {
            lock: "/run/icmp-guard/lock".into(),
            bpffs: "/sys/fs/bpf".into(),
            waited: Duration::from_secs(10),
        };
        let not_guarded = |iface: &str| Error::NotGuarded {
            iface: iface.into(),
            dir: "/sys/fs/bpf/icmp-guard/x".into(),
        };
        for (iface, error, line) in [
            ("eth0", not_guarded("eth0"), "eth0 is not guarded"),
            (
                "eth0",
                busy(),
                "eth0: another icmp-guard command has held the lock",
            ),
            ("run", busy(), "run: another icmp-guard command"),
            ("eth0", not_guarded("eth1"), "eth0: eth1 is not guarded"),
        ] {
            let text = about(&iface.parse().unwrap(), &error);
            assert!(text.starts_with(line), "{text}");
        }
    }
}
