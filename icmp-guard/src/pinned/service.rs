//! One service per bpffs and network namespace. `icmp-guard run` holds an exclusive
//! open-file-description lock (`F_OFD_SETLK`) on a file in [`RUN_DIR`] for as long as it runs, and writes there its pid, its config file
//! and the interfaces it manages. A second service for the same guards is refused, naming
//! the first one's pid; a command that changes an interface the service manages warns that
//! the service will put its configuration back.
//!
//! Guards are filed by network namespace (see [`super::layout`]), so services in two
//! namespaces manage disjoint guards and may share a bpffs; within one namespace, two
//! services would undo each other's work, which is what the lock prevents.
//!
//! The file is never unlinked: a file that is gone while someone waits on it would let two
//! holders in. Whether a service runs is whether the lock is held, not whether the file is
//! there; the file says who held it last. A command asks with `F_OFD_GETLK`, which takes no
//! lock: a service starting at that moment is never refused because a command was looking.

use std::{
    fmt::Write as _,
    fs::File,
    io::{Read as _, Seek as _, Write as _},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use super::lock::{RUN_DIR, open_trusted, path_in};
use crate::{
    Error,
    error::shown,
    kernel::{IfaceName, netns::Netns},
    pinned::private,
};

/// The running service's hold on the guards of one bpffs and namespace; released on drop.
#[derive(Debug)]
pub struct ServiceLock {
    file: File,
    path: PathBuf,
}

/// What a running service says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its pid in its own PID namespace.
    pub pid: u32,
    /// Its PID namespace (the inode of `/proc/self/ns/pid`), when it said: a service in a
    /// container (the Kubernetes DaemonSet's pod) shares the lock folder with the host but
    /// not its pids, and is often pid 1 there.
    pub pidns: Option<u64>,
    /// Its file, as it sees it.
    pub config: PathBuf,
    pub interfaces: Vec<String>,
}

/// This process's PID namespace: the inode of `/proc/self/ns/pid`.
fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

impl Holder {
    /// Who it is, for a message: its pid and file, or, from another PID namespace (where
    /// neither means anything here), that it runs in a container.
    #[must_use]
    pub fn who(&self) -> String {
        self.who_from(pid_namespace())
    }

    /// How to stop it from a process in the PID namespace `own`: its pid means nothing
    /// from another one (and `kill 1` on a host signals init).
    fn stop_from(&self, own: Option<u64>) -> String {
        let here = matches!((self.pidns, own), (Some(theirs), Some(own)) if theirs == own);
        if self.elsewhere(own) {
            "stop it where it runs (its container: e.g. delete the DaemonSet's pod on this node, or the DaemonSet)".to_owned()
        } else if here && self.pid != 1 {
            "stop it (`systemctl stop icmp-guard`, or `kill` that pid)".to_owned()
        } else {
            // Its PID namespace unknown (a version that did not record it), or pid 1: no pid
            // to signal from here.
            "stop it (`systemctl stop icmp-guard`, or its container if it runs in one)".to_owned()
        }
    }

    /// Whether it runs in another PID namespace than `own`.
    fn elsewhere(&self, own: Option<u64>) -> bool {
        matches!((self.pidns, own), (Some(theirs), Some(own)) if theirs != own)
    }

    fn who_from(&self, own: Option<u64>) -> String {
        if self.elsewhere(own) {
            format!(
                "pid {} of another PID namespace, e.g. a container's, with {} as it sees it",
                self.pid,
                shown(&self.config)
            )
        } else {
            format!("pid {} with {}", self.pid, shown(&self.config))
        }
    }
}

/// The service file of the guards under `bpffs` in `netns`, in `run_dir`.
#[must_use]
pub fn path_of(run_dir: &Path, bpffs: &Path, netns: Netns) -> PathBuf {
    path_in(run_dir, bpffs).with_extension(format!("{}.service", netns.dir_name()))
}

impl ServiceLock {
    /// Takes the service lock of the guards under `bpffs` in this namespace, or says which
    /// process holds it.
    pub fn acquire(bpffs: &Path, config: &Path, interfaces: &[IfaceName]) -> Result<Self, Error> {
        Self::acquire_in(
            Path::new(RUN_DIR),
            bpffs,
            Netns::current()?,
            config,
            interfaces,
        )
    }

    /// The same in `run_dir` for the namespace `netns`.
    pub fn acquire_in(
        run_dir: &Path,
        bpffs: &Path,
        netns: Netns,
        config: &Path,
        interfaces: &[IfaceName],
    ) -> Result<Self, Error> {
        private::make_dir(run_dir)?;
        let path = path_of(run_dir, bpffs, netns);
        let mut file = open_trusted(&path)?;
        let mut lock = whole_file(libc::F_WRLCK);
        // SAFETY: fcntl on a descriptor we own with a flock struct we own.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &raw mut lock) } != 0 {
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) {
                return Err(Error::io("locking", &path)(err));
            }
            let holder = read_holder(&mut file);
            let own = pid_namespace();
            return Err(Error::ServiceRunning {
                bpffs: bpffs.to_path_buf(),
                lock: path,
                holder: holder.as_ref().map_or_else(
                    || "a process that has not said who it is yet".to_owned(),
                    |h| h.who_from(own),
                ),
                stop: holder.map_or_else(
                    || "stop it (`systemctl stop icmp-guard`)".to_owned(),
                    |h| h.stop_from(own),
                ),
            });
        }
        let mut lock = Self { file, path };
        lock.update(config, interfaces)?;
        Ok(lock)
    }

    /// Records the config file and the interfaces the service manages now (after a reload).
    pub fn update(&mut self, config: &Path, interfaces: &[IfaceName]) -> Result<(), Error> {
        let mut text = format!("pid {}\n", std::process::id());
        if let Some(pidns) = pid_namespace() {
            let _ = writeln!(text, "pidns {pidns}");
        }
        let _ = writeln!(text, "config {}", config.display());
        for iface in interfaces {
            let _ = writeln!(text, "interface {}", iface.as_str());
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| self.file.write_all(text.as_bytes()))
            .map_err(Error::io("writing", &self.path))
    }
}

/// The service running for the guards under `bpffs` in this namespace, if one is.
#[must_use]
pub fn running(bpffs: &Path) -> Option<Holder> {
    running_in(Path::new(RUN_DIR), bpffs, Netns::current().ok()?)
}

/// The same in `run_dir` for the namespace `netns`.
#[must_use]
pub fn running_in(run_dir: &Path, bpffs: &Path, netns: Netns) -> Option<Holder> {
    let path = path_of(run_dir, bpffs, netns);
    // Read-only, never created: a command only looks, and takes no lock.
    let mut file = File::open(&path).ok()?;
    let mut probe = whole_file(libc::F_WRLCK);
    // SAFETY: fcntl on a descriptor we own with a flock struct we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &raw mut probe) } != 0 {
        return None;
    }
    if i32::from(probe.l_type) == libc::F_UNLCK {
        return None;
    }
    read_holder(&mut file)
}

/// A lock request of `kind` over the whole file, for `F_OFD_SETLK` and `F_OFD_GETLK`.
fn whole_file(kind: libc::c_int) -> libc::flock {
    // SAFETY: an all-zero flock is valid; OFD locks need l_pid 0.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

/// Parses what [`ServiceLock::update`] wrote.
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<Holder> {
    let mut pid = None;
    let mut pidns = None;
    let mut config = None;
    let mut interfaces = Vec::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("pidns", v)) => pidns = v.parse().ok(),
            Some(("config", v)) => config = Some(PathBuf::from(v)),
            Some(("interface", v)) => interfaces.push(v.to_owned()),
            _ => {}
        }
    }
    Some(Holder {
        pid: pid?,
        pidns,
        config: config?,
        interfaces,
    })
}

/// A warning for a command about to change `iface`, when a running service manages it.
#[must_use]
pub fn warning(bpffs: &Path, iface: &IfaceName, action: &str) -> Option<String> {
    let holder = running(bpffs)?;
    holder.interfaces.iter().any(|i| i == iface.as_str()).then(|| {
        format!(
            "warning: the icmp-guard service ({}) manages {iface}: it puts back what the file says (a detached guard within a second, limits and lists at its next reload), so {action} may not last; change the file and reload the service instead",
            holder.who()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_service_is_refused_naming_the_first() {
        let base = std::env::temp_dir().join(format!("icmp-guard-svc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let run = base.join("run");
        let bpffs = base.join("bpffs");
        std::fs::create_dir_all(&bpffs).unwrap();
        let (here, there) = (
            Netns {
                inode: 1,
                cookie: 1,
            },
            Netns {
                inode: 1,
                cookie: 2,
            },
        );
        let eth0: IfaceName = "eth0".parse().unwrap();
        let config = Path::new("/etc/icmp-guard/icmp-guard.toml");

        assert_eq!(running_in(&run, &bpffs, here), None, "nothing runs yet");
        let first =
            ServiceLock::acquire_in(&run, &bpffs, here, config, std::slice::from_ref(&eth0))
                .unwrap();
        let holder = running_in(&run, &bpffs, here).expect("the first service is seen");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.pidns, pid_namespace());
        assert!(holder.pidns.is_some());
        assert_eq!(holder.config, config);
        assert_eq!(holder.interfaces, ["eth0"]);

        // OFD locks belong to the open file: a second open in this process conflicts like
        // another process would.
        let err = ServiceLock::acquire_in(&run, &bpffs, here, config, &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        // Another namespace's guards are another service's.
        let other = ServiceLock::acquire_in(&run, &bpffs, there, config, &[]).unwrap();
        drop((first, other));
        assert_eq!(running_in(&run, &bpffs, here), None, "released on drop");
        ServiceLock::acquire_in(&run, &bpffs, here, config, &[]).unwrap();
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn what_the_file_says_reads_back() {
        assert_eq!(
            parse("pid 42\npidns 7\nconfig /etc/x.toml\ninterface eth0\ninterface eth1\n"),
            Some(Holder {
                pid: 42,
                pidns: Some(7),
                config: PathBuf::from("/etc/x.toml"),
                interfaces: vec!["eth0".into(), "eth1".into()],
            })
        );
        // As a version before the PID namespace wrote it.
        assert_eq!(
            parse("pid 42\nconfig /etc/x.toml\n").map(|h| h.pidns),
            Some(None)
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("config /x\n"), None);
    }

    #[test]
    fn only_a_service_of_this_pid_namespace_is_to_be_killed_by_pid() {
        let holder = |pid, pidns| Holder {
            pid,
            pidns,
            config: PathBuf::from("/etc/icmp-guard/icmp-guard.toml"),
            interfaces: vec![],
        };
        // (pid, its PID namespace, this one's, whether `kill` is advised)
        for (pid, theirs, own, kill) in [
            (42, Some(7), Some(7), true),
            (1, Some(7), Some(7), false),
            (42, Some(7), Some(8), false),
            (42, None, Some(7), false),
            (42, Some(7), None, false),
        ] {
            assert_eq!(
                holder(pid, theirs).stop_from(own).contains("kill"),
                kill,
                "{pid} {theirs:?} {own:?}"
            );
        }
    }

    #[test]
    fn a_service_in_another_pid_namespace_is_named_as_such() {
        let holder = Holder {
            pid: 1,
            pidns: Some(7),
            config: PathBuf::from("/etc/icmp-guard/icmp-guard.toml"),
            interfaces: vec![],
        };
        let unsaid = Holder {
            pidns: None,
            ..holder.clone()
        };
        // (the holder, the reader's PID namespace, what it is called)
        let cases = [
            (
                &holder,
                Some(7),
                "pid 1 with /etc/icmp-guard/icmp-guard.toml",
            ),
            (
                &holder,
                Some(8),
                "pid 1 of another PID namespace, e.g. a container's, with /etc/icmp-guard/icmp-guard.toml as it sees it",
            ),
            (&holder, None, "pid 1 with /etc/icmp-guard/icmp-guard.toml"),
            (
                &unsaid,
                Some(8),
                "pid 1 with /etc/icmp-guard/icmp-guard.toml",
            ),
        ];
        for (holder, own, said) in cases {
            assert_eq!(holder.who_from(own), said, "{own:?}");
            // Never `kill` a pid of another namespace, nor one of a namespace unknown, nor 1.
            assert!(!holder.stop_from(own).contains("kill"), "{own:?}");
        }
    }
}
