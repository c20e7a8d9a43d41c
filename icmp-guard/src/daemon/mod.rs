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

use std::{
    collections::{BTreeSet, HashMap},
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
        ConfigFile, OnExit,
        apply::{self, Applied},
    },
    kernel::{
        IfaceName,
        iface::ifindex,
        loader::{self, ProgramLog},
    },
    pinned::{Guard, Lock, Pins},
};

pub mod http;

/// How often interfaces are checked and program logs flushed.
const TICK: Duration = Duration::from_secs(1);

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

/// Runs the service for the file `config` until SIGTERM or SIGINT.
pub fn run(cli_bpffs: &Path, config: &Path) -> Result<(), Error> {
    let cfg = ConfigFile::load(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime for", config))?;
    runtime.block_on(Daemon::new(cli_bpffs, cfg).run())
}

struct Daemon {
    cli_bpffs: PathBuf,
    cfg: ConfigFile,
    bpffs: PathBuf,
    /// Interfaces seen missing, so their absence is logged once.
    gone: BTreeSet<IfaceName>,
    /// Program logs, by interface: taken from the programs this daemon loaded.
    loggers: HashMap<IfaceName, ProgramLog>,
    shared: Shared,
}

impl Daemon {
    fn new(cli_bpffs: &Path, cfg: ConfigFile) -> Self {
        let bpffs = cfg.bpffs_or(cli_bpffs);
        let names = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
        Self {
            cli_bpffs: cli_bpffs.to_path_buf(),
            shared: Arc::new(Mutex::new((bpffs.clone(), names))),
            cfg,
            bpffs,
            gone: BTreeSet::new(),
            loggers: HashMap::new(),
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
        // Bind next: a daemon that cannot serve its metrics changes nothing.
        let mut server = serve(self.cfg.metrics, self.shared.clone()).await?;
        self.apply(true);
        let mut tick = check_timer();
        log::info!(
            "icmp-guard daemon running with {}: {} interface(s), metrics on http://{}/metrics",
            crate::error::shown(&self.cfg.path),
            self.cfg.interfaces.len(),
            self.cfg.metrics
        );
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    if let Some(restarted) = self.reload().await {
                        server.abort();
                        server = restarted;
                    }
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = tick.tick() => {
                    self.watch();
                    self.flush_logs();
                }
            }
        }
        server.abort();
        self.flush_logs();
        self.stop();
        Ok(())
    }

    /// Makes every configured interface match the file; `upgrade` swaps this version's
    /// program into guards that already exist.
    fn apply(&mut self, upgrade: bool) {
        let _lock = match Lock::acquire(&self.bpffs) {
            Ok(lock) => lock,
            Err(e) => return log::error!("{e}"),
        };
        for ic in &self.cfg.interfaces {
            let pins = Pins::new(&self.bpffs, &ic.name);
            if upgrade && pins.exist() && ifindex(&ic.name).is_ok() {
                match loader::replace(&pins) {
                    Ok(r) => {
                        log::info!(
                            "{}: program {} replaced with {}",
                            ic.name,
                            r.old_program,
                            r.new_program
                        );
                        self.loggers.extend(r.log.map(|l| (ic.name.clone(), l)));
                    }
                    Err(e) => log::error!("{e}"),
                }
            }
            if ifindex(&ic.name).is_err() {
                log::warn!(
                    "{}: no such interface yet; it is attached when it appears",
                    ic.name
                );
                self.gone.insert(ic.name.clone());
                continue;
            }
            match apply::apply(&self.bpffs, ic) {
                Ok(Applied::Attached(a)) => {
                    if let Some(note) = a.resumed_note(&ic.name) {
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
                }
                Ok(Applied::Updated) => log::info!("{}: policy and lists applied", ic.name),
                Err(e) => log::error!("{e}"),
            }
        }
    }

    /// SIGHUP: the new file, if all of it is valid; returns a new metrics server when the
    /// address changed.
    async fn reload(&mut self) -> Option<JoinHandle<()>> {
        let new = match ConfigFile::load(&self.cfg.path) {
            Ok(new) => new,
            Err(e) => {
                log::error!("reload refused, nothing changed: {e}");
                return None;
            }
        };
        let names: BTreeSet<&IfaceName> = new.interfaces.iter().map(|i| &i.name).collect();
        let dropped: Vec<IfaceName> = self
            .cfg
            .interfaces
            .iter()
            .filter(|i| !names.contains(&i.name))
            .map(|i| i.name.clone())
            .collect();
        let old_metrics = self.cfg.metrics;
        self.bpffs = new.bpffs_or(&self.cli_bpffs);
        self.cfg = new;
        for name in dropped {
            self.detach(&name, "no longer in the configuration");
        }
        self.apply(false);
        if let Ok(mut shared) = self.shared.lock() {
            *shared = (
                self.bpffs.clone(),
                self.cfg.interfaces.iter().map(|i| i.name.clone()).collect(),
            );
        }
        log::info!("reloaded {}", crate::error::shown(&self.cfg.path));
        if self.cfg.metrics == old_metrics {
            return None;
        }
        match serve(self.cfg.metrics, self.shared.clone()).await {
            Ok(server) => Some(server),
            Err(e) => {
                log::error!("metrics stay on {old_metrics}: {e}");
                self.cfg.metrics = old_metrics;
                None
            }
        }
    }

    /// Re-attaches interfaces that came back with a new index, attaches new ones.
    fn watch(&mut self) {
        let interfaces = self.cfg.interfaces.clone();
        for ic in &interfaces {
            let Ok(index) = ifindex(&ic.name) else {
                if self.gone.insert(ic.name.clone()) {
                    log::warn!(
                        "{}: interface gone; the kernel detached its guard; waiting for it to come back",
                        ic.name
                    );
                }
                continue;
            };
            let pins = Pins::new(&self.bpffs, &ic.name);
            let pinned_index = Guard::open(pins.clone())
                .and_then(|g| g.maps.config())
                .map(|c| c.ifindex);
            let result = match pinned_index {
                Ok(pinned) if pinned == index => {
                    self.gone.remove(&ic.name);
                    continue;
                }
                Ok(_) => self.locked(|| {
                    loader::reattach(&pins, ic.mode).map(|a| {
                        let note = a.fallback_note(&ic.name);
                        ("re-attached", a.program_id, note)
                    })
                }),
                Err(_) => self.locked(|| {
                    apply::apply(&self.bpffs, ic).map(|applied| match applied {
                        Applied::Attached(a) => {
                            if let Some(note) = a.resumed_note(&ic.name) {
                                log::info!("{note}");
                            }
                            ("attached", a.program_id, a.fallback_note(&ic.name))
                        }
                        Applied::Updated => ("updated", 0, None),
                    })
                }),
            };
            match result {
                Ok((what, program, note)) => {
                    log::info!(
                        "{}: interface is back (ifindex {index}); {what} as program {program}",
                        ic.name
                    );
                    if let Some(note) = note {
                        log::warn!("{note}");
                    }
                    self.gone.remove(&ic.name);
                }
                Err(e) => log::error!("{e}"),
            }
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

    fn detach(&mut self, name: &IfaceName, why: &str) {
        self.loggers.remove(name);
        let result = self.locked(|| {
            let pins = Pins::new(&self.bpffs, name);
            if pins.dir.exists() {
                pins.remove()?;
            }
            Ok(())
        });
        match result {
            Ok(()) => log::info!("{name}: detached ({why})"),
            Err(e) => log::error!("{e}"),
        }
    }

    fn stop(&mut self) {
        match self.cfg.on_exit {
            OnExit::Keep => log::info!(
                "stopping; guards stay attached and enforcing (daemon.on_exit = \"keep\")"
            ),
            OnExit::Detach => {
                let names: Vec<IfaceName> =
                    self.cfg.interfaces.iter().map(|i| i.name.clone()).collect();
                for name in names {
                    self.detach(&name, "daemon.on_exit = \"detach\"");
                }
            }
        }
    }
}
