//! Network-namespace labs: two hosts joined by a veth pair, a private bpffs, and helpers to
//! run the CLI, ping and the frame injector inside them. Everything is removed on drop.
//!
//! The CLI runs under `nsenter --net` (network namespace only) rather than `ip netns exec`,
//! which would also give it a private mount namespace where a bpffs mounted by the CLI would
//! vanish on exit.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::maps::{Map, MapData, PerCpuArray};
use icmp_guard_common::{Reason, maps};

/// Address of the guarded host in every lab.
pub const GUARDED_ADDR: &str = "198.51.100.1";
/// Address of the client host in every lab.
pub const CLIENT_ADDR: &str = "198.51.100.2";
/// Prefix length of the lab link.
pub const PREFIX: u8 = 24;
/// MTU of the lab link unless a test asks for another: Ethernet's.
pub const DEFAULT_MTU: usize = 1500;
/// IPv6 address of the guarded host.
pub const GUARDED_ADDR6: &str = "2001:db8::1";
/// IPv6 address of the client host.
pub const CLIENT_ADDR6: &str = "2001:db8::2";

/// A name unique to this process and call, at most 15 characters (an interface name's limit).
#[must_use]
pub fn unique(tag: char) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("ig{}{tag}{n}", std::process::id())
}

/// A counter of a `stats --json` object.
#[must_use]
pub fn counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("counter {name} missing from {stats}"))
}

/// A command's stderr as text.
#[must_use]
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The most one token bucket of `burst` packets at `rate` a second, shared by every CPU, can
/// pass from `since` (taken before the attach) until now: its burst, what it earns over the
/// elapsed time and one packet of rounding, with a coarse-clock step (a jiffy, at most 10 ms)
/// of slack. For limits whose burst is more than a jiffy's worth of their rate, as in the
/// tests; per-CPU buckets would pass up to the CPUs times as much.
#[must_use]
pub fn bucket_allows(burst: u64, rate: u64, since: Instant) -> u64 {
    bucket_allows_over(burst, rate, since.elapsed())
}

/// The same for a bucket full when a flood of `length` began (see [`sending_span`]).
#[must_use]
pub fn bucket_allows_over(burst: u64, rate: u64, length: Duration) -> u64 {
    let millis = length.as_millis() + 10;
    let earned = (u128::from(rate) * millis).div_ceil(1000);
    burst + 1 + u64::try_from(earned).unwrap_or(u64::MAX)
}

/// From the first frame to the last of injectors run together, by their reports.
pub fn sending_span(reports: &[serde_json::Value]) -> Result<Duration> {
    let at = |key: &str| -> Result<Vec<u64>> {
        reports
            .iter()
            .map(|r| r[key].as_u64().with_context(|| format!("{key} in {r}")))
            .collect()
    };
    let first = at("started_ns")?.into_iter().min().unwrap_or_default();
    let last = at("ended_ns")?.into_iter().max().unwrap_or_default();
    Ok(Duration::from_nanos(last.saturating_sub(first)))
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of a lab, whatever its
/// network namespace.
#[must_use]
pub fn monotonic_ns() -> u64 {
    // SAFETY: zeroed timespec is valid; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Pins the calling thread to `cpu`.
pub fn pin_thread_to(cpu: usize) -> Result<()> {
    pin_task_to(0, cpu)
}

/// Pins the calling thread to the CPU it runs on, so per-CPU maps and caches stay put.
pub fn pin_to_current_cpu() -> Result<()> {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    ensure!(cpu >= 0, "sched_getcpu failed");
    pin_thread_to(cpu.cast_unsigned() as usize)
}

/// Pins the task (thread) `tid` to `cpu`; 0 is the calling thread.
pub fn pin_task_to(tid: u32, cpu: usize) -> Result<()> {
    let tid = libc::pid_t::try_from(tid)?;
    // SAFETY: a zeroed cpu set filled with one CPU, applied to one task.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &raw const set);
        ensure!(
            rc == 0,
            "pinning to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Whether the running kernel is at least `major.minor`, by `/proc/sys/kernel/osrelease`: for
/// tests that skip a feature on older kernels and must fail where it should exist.
#[must_use]
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// Runs a command, failing with its stderr unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

/// `ip` with arguments.
pub fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// The namespace as icmp-guard identifies it.
    #[must_use]
    pub fn id(&self) -> icmp_guard::kernel::netns::Netns {
        icmp_guard::kernel::netns::Netns::of(Path::new(&format!("/run/netns/{}", self.name)))
            .expect("a namespace of the lab has its file under /run/netns")
    }

    /// Creates a namespace with its loopback up.
    pub fn new(name: String) -> Result<Self> {
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `program` inside the namespace with its own /sys (`ip netns exec`), for tools that
    /// read interface details from sysfs.
    #[must_use]
    pub fn exec(&self, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program.as_ref());
        c
    }

    /// `program` inside the namespace's network only, keeping the host's mounts.
    #[must_use]
    pub fn enter(&self, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program.as_ref());
        c
    }
}

impl Netns {
    /// Whether `iface` in this namespace carries an XDP program, as `ip link` shows it.
    #[must_use]
    pub fn has_xdp(&self, iface: &str) -> bool {
        ip(&["-n", &self.name, "link", "show", "dev", iface])
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("prog/xdp"))
    }

    /// An HTTP GET from inside the namespace (on a thread that enters it alone), e.g. to
    /// scrape a server bound to the namespace's loopback: the body of a 200 answer; any other
    /// answer is an error holding its head and body. Bounded by a 5 s timeout.
    pub fn http_get(&self, addr: &str, path: &str) -> Result<String> {
        use std::io::{Read as _, Write as _};
        let name = self.name.clone();
        let (addr, path) = (addr.to_owned(), path.to_owned());
        std::thread::spawn(move || -> Result<String> {
            enter_netns(&name)?;
            let timeout = Some(Duration::from_secs(5));
            let mut stream = std::net::TcpStream::connect(&addr)?;
            stream.set_read_timeout(timeout)?;
            stream.set_write_timeout(timeout)?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes())?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            let (head, body) = response
                .split_once("\r\n\r\n")
                .context("no HTTP header end")?;
            ensure!(head.starts_with("HTTP/1.1 200"), "{head}\r\n\r\n{body}");
            Ok(body.to_owned())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the HTTP thread panicked"))?
    }
}

/// Moves the calling thread, and only it, into the network namespace `name` (its interfaces,
/// ifindexes, sockets and `/proc/thread-self/net`). Use a thread of its own: a namespace
/// belongs to one OS thread, and processes it spawns inherit it.
pub fn enter_netns(name: &str) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let ns = std::fs::File::open(format!("/run/netns/{name}"))
        .with_context(|| format!("opening network namespace {name}"))?;
    // SAFETY: setns on this thread only, with a namespace descriptor we hold.
    ensure!(
        unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0,
        "setns into {name}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A fresh folder under the temporary directory, removed with its contents on drop.
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
}

/// A new folder under the temporary directory, named `prefix` and a unique suffix, made by
/// this call (mode 0755: tests run commands as `nobody` inside it): a name someone made
/// first (a folder, or a link to one, which root would then mount or write through) is
/// refused, not reused.
fn fresh_dir(prefix: &str, tag: char) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    // The time too: a folder a killed run left behind must not stop a later run whose
    // process got the same pid.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos:09}", unique(tag)));
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    Ok(path)
}

impl Scratch {
    pub fn new() -> Result<Self> {
        Ok(Self {
            path: fresh_dir("icmp-guard-lab", 's')?,
        })
    }

    /// A path inside the folder.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running daemon, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Daemon {
    pub child: std::process::Child,
}

impl Daemon {
    /// Sends `signal` (e.g. `libc::SIGHUP`).
    pub fn signal(&self, signal: i32) -> Result<()> {
        let pid = i32::try_from(self.child.id())?;
        // SAFETY: kill(2) on our own child's pid.
        ensure!(
            unsafe { libc::kill(pid, signal) } == 0,
            "kill: {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bpffs mounted in a fresh folder outside /sys, unmounted and removed on drop.
#[derive(Debug)]
pub struct Bpffs {
    pub path: PathBuf,
}

impl Bpffs {
    pub fn new() -> Result<Self> {
        let path = fresh_dir("icmp-guard-bpffs", 'f')?;
        if let Err(e) = run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&path)) {
            let _ = std::fs::remove_dir(&path);
            return Err(e);
        }
        Ok(Self { path })
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}

/// A bpffs the product mounted (`attach` or the service, on a path the test chose):
/// unmounted on drop whatever the test's outcome, its folder and its run files removed.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        unmount(&self.0);
    }
}

/// Unmounts the bpffs at `path` and removes its folder and its run files, as far as they are
/// there.
fn unmount(path: &Path) {
    remove_run_files(path);
    let _ = Command::new("umount").arg(path).output();
    let _ = std::fs::remove_dir(path);
}

/// Removes what icmp-guard keeps in its run folder for the bpffs at `bpffs`: the service
/// files, which the product never removes (one per bpffs and namespace, see
/// `icmp_guard::pinned::service`; every lab has a bpffs of its own), and a command lock that
/// a killed command left.
pub fn remove_run_files(bpffs: &Path) {
    let lock = icmp_guard::pinned::lock::path(bpffs);
    let (Some(dir), Some(stem)) = (lock.parent(), lock.file_stem()) else {
        return;
    };
    // `<name>.lock` and `<name>.<netns>.service` share `<name>.`.
    let prefix = format!("{}.", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A binary of this workspace, next to the running executable (`target/<profile>/`, or its
/// parent when running from `deps/`); `ICMP_GUARD_BIN_DIR` overrides the folder.
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let dirs: Vec<PathBuf> = if let Some(dir) = std::env::var_os("ICMP_GUARD_BIN_DIR") {
        vec![PathBuf::from(dir)]
    } else {
        let exe = std::env::current_exe().context("locating the test executable")?;
        exe.ancestors()
            .skip(1)
            .take(2)
            .map(Path::to_path_buf)
            .collect()
    };
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{name} not found in {dirs:?}; build it first with the same profile (`cargo xtask test` does)"
            )
        })
}

/// Creates the veth pair between the two hosts, with `queues` queues and `mtu` on each side,
/// addresses it and brings it up.
fn link_pair(
    guarded: &Netns,
    guarded_if: &str,
    client: &Netns,
    client_if: &str,
    queues: u32,
    mtu: usize,
) -> Result<()> {
    let queues = queues.to_string();
    let mtu = mtu.to_string();
    ip(&[
        "link",
        "add",
        guarded_if,
        "netns",
        &guarded.name,
        "numtxqueues",
        &queues,
        "numrxqueues",
        &queues,
        "type",
        "veth",
        "peer",
        "name",
        client_if,
        "netns",
        &client.name,
        "numtxqueues",
        &queues,
        "numrxqueues",
        &queues,
    ])?;
    for (ns, iface, addr, addr6) in [
        (guarded, guarded_if, GUARDED_ADDR, GUARDED_ADDR6),
        (client, client_if, CLIENT_ADDR, CLIENT_ADDR6),
    ] {
        let (v4, v6) = (format!("{addr}/{PREFIX}"), format!("{addr6}/64"));
        ip(&["-n", &ns.name, "addr", "add", &v4, "dev", iface])?;
        ip(&[
            "-n", &ns.name, "-6", "addr", "add", &v6, "dev", iface, "nodad",
        ])?;
        ip(&["-n", &ns.name, "link", "set", iface, "mtu", &mtu, "up"])?;
    }
    Ok(())
}

/// Two hosts on one link: `guarded` (198.51.100.1, where icmp-guard runs) and `client`
/// (198.51.100.2), plus a private bpffs for the pins.
#[derive(Debug)]
pub struct Lab {
    /// A folder of the lab's own for configs, logs and recordings; removed on drop.
    pub scratch: Scratch,
    pub guarded: Netns,
    pub client: Netns,
    pub guarded_if: String,
    pub client_if: String,
    pub bpffs: Bpffs,
    cli: PathBuf,
    inject: PathBuf,
    queues: u32,
    mtu: usize,
}

impl Lab {
    pub fn new() -> Result<Self> {
        Self::with_link(1, DEFAULT_MTU)
    }

    /// A lab whose CLI (and daemon) is the binary `cli` instead of this build's, e.g. the
    /// static one `cargo xtask dist` ships.
    pub fn with_cli(cli: PathBuf) -> Result<Self> {
        let mut lab = Self::with_link(1, DEFAULT_MTU)?;
        lab.cli = cli;
        Ok(lab)
    }

    /// A lab whose veth pair has `queues` receive and transmit queues on each side.
    pub fn with_queues(queues: u32) -> Result<Self> {
        Self::with_link(queues, DEFAULT_MTU)
    }

    /// A lab whose link has `mtu` on both sides (e.g. 9000 for jumbo frames).
    pub fn with_mtu(mtu: usize) -> Result<Self> {
        Self::with_link(1, mtu)
    }

    fn with_link(queues: u32, mtu: usize) -> Result<Self> {
        let cli = workspace_bin("icmp-guard")?;
        let inject = workspace_bin("icmp-guard-inject")?;
        let guarded = Netns::new(unique('g'))?;
        let client = Netns::new(unique('c'))?;
        let guarded_if = unique('a');
        let client_if = unique('b');
        link_pair(&guarded, &guarded_if, &client, &client_if, queues, mtu)?;
        let lab = Self {
            scratch: Scratch::new()?,
            guarded,
            client,
            guarded_if,
            client_if,
            bpffs: Bpffs::new()?,
            cli,
            inject,
            queues,
            mtu,
        };
        lab.static_neighbours()?;
        Ok(lab)
    }

    /// Static neighbours: no ARP or neighbour discovery on the path, so the first echo is not
    /// lost to resolution.
    fn static_neighbours(&self) -> Result<()> {
        let guarded_mac = self.mac(&self.guarded, &self.guarded_if)?;
        let client_mac = self.mac(&self.client, &self.client_if)?;
        for (ns, iface, addr, mac) in [
            (&self.client, &self.client_if, GUARDED_ADDR, &guarded_mac),
            (&self.client, &self.client_if, GUARDED_ADDR6, &guarded_mac),
            (&self.guarded, &self.guarded_if, CLIENT_ADDR, &client_mac),
            (&self.guarded, &self.guarded_if, CLIENT_ADDR6, &client_mac),
        ] {
            ip(&[
                "-n", &ns.name, "neigh", "replace", addr, "lladdr", mac, "dev", iface,
            ])?;
        }
        Ok(())
    }

    /// Sets the MTU of both ends of the link.
    pub fn set_mtu(&self, mtu: usize) -> Result<()> {
        for (ns, iface) in [
            (&self.guarded, &self.guarded_if),
            (&self.client, &self.client_if),
        ] {
            ip(&[
                "-n",
                &ns.name,
                "link",
                "set",
                iface,
                "mtu",
                &mtu.to_string(),
            ])?;
        }
        Ok(())
    }

    /// Adds a bridge of a new name to the guarded namespace, up, and returns its name: a
    /// second interface for a config file, one whose driver has no native XDP. Removed with
    /// the namespace.
    pub fn add_bridge(&self) -> Result<String> {
        let name = unique('b');
        let ns = self.guarded.name.as_str();
        ip(&["-n", ns, "link", "add", &name, "type", "bridge"])?;
        ip(&["-n", ns, "link", "set", &name, "up"])?;
        Ok(name)
    }

    /// Leaves `iface` (of the guarded namespace) as an attach cut short beside another
    /// program: attached in `mode`, its link's pin removed (so its maps are left and the
    /// kernel detaches it), then another icmp-guard attached to it in generic mode under a
    /// bpffs of its own, which is returned for the caller to detach from.
    pub fn interrupted_beside_another(&self, iface: &str, mode: &str) -> Result<Bpffs> {
        let out = self.cli(&["attach", iface, "--mode", mode])?;
        ensure!(out.status.success(), "attach: {}", stderr_of(&out));
        std::fs::remove_file(self.pins(iface).link())?;
        eventually(5, "the guard detaches", || !self.guarded.has_xdp(iface))?;
        let other = Bpffs::new()?;
        let out = self
            .cli_command(&other.path, &["attach", iface, "--mode", "generic"])
            .output()?;
        ensure!(
            out.status.success(),
            "the other attach: {}",
            stderr_of(&out)
        );
        Ok(other)
    }

    /// Deletes the link and creates it again under the same names: the guarded interface
    /// comes back with a new ifindex.
    pub fn recreate_link(&self) -> Result<()> {
        ip(&["-n", &self.guarded.name, "link", "del", &self.guarded_if])?;
        link_pair(
            &self.guarded,
            &self.guarded_if,
            &self.client,
            &self.client_if,
            self.queues,
            self.mtu,
        )?;
        self.static_neighbours()
    }

    /// The icmp-guard daemon in the guarded namespace with the lab's bpffs, logging to
    /// `log`; killed when the returned handle drops.
    pub fn daemon(&self, config: &Path, log: &Path) -> Result<Daemon> {
        let child = self
            .daemon_command(config, log)?
            .spawn()
            .context("spawning the daemon")?;
        Ok(Daemon { child })
    }

    /// The daemon as a container runs it: pid 1 of a PID namespace of its own (and a mount
    /// namespace for that namespace's /proc), killed with the `unshare` that made it.
    pub fn daemon_in_own_pid_namespace(&self, config: &Path, log: &Path) -> Result<Daemon> {
        let inner = self.daemon_command(config, log)?;
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new("unshare")
            .args(["--pid", "--kill-child", "--mount-proc"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawning the daemon under unshare")?;
        Ok(Daemon { child })
    }

    /// The command [`daemon`](Self::daemon) spawns, to spawn it another way (with a test
    /// hook in its environment, or under a tracer).
    pub fn daemon_command(&self, config: &Path, log: &Path) -> Result<Command> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = self.guarded.enter(&self.cli);
        cmd.arg("--bpffs")
            .arg(&self.bpffs.path)
            .args(["run", "--config"])
            .arg(config)
            .stdout(out.try_clone()?)
            .stderr(out);
        Ok(cmd)
    }

    /// The MAC address of `iface` in `ns`.
    pub fn mac(&self, ns: &Netns, iface: &str) -> Result<String> {
        let out = run(ns
            .exec("cat")
            .arg(format!("/sys/class/net/{iface}/address")))?;
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// The CLI in the guarded namespace with the lab's bpffs; returns its output whatever
    /// the exit status.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.cli_command(&self.bpffs.path, args);
        cmd.output().with_context(|| format!("spawning {cmd:?}"))
    }

    /// The CLI command in the guarded namespace with pins under `bpffs`, to run it another
    /// way (in the background, or against another pin root).
    #[must_use]
    pub fn cli_command(&self, bpffs: &Path, args: &[&str]) -> Command {
        let mut cmd = self.guarded.enter(&self.cli);
        cmd.arg("--bpffs").arg(bpffs).args(args);
        cmd
    }

    /// The CLI in the guarded namespace with its capability bounding set changed by `caps`
    /// (setpriv syntax, e.g. "-all,+bpf,+net_admin"), as a capability-bounded service runs.
    pub fn cli_with_caps(&self, caps: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.guarded.name))
            .args([
                "--",
                "setpriv",
                "--inh-caps=-all",
                &format!("--bounding-set={caps}"),
                "--",
            ])
            .arg(&self.cli)
            .arg("--bpffs")
            .arg(&self.bpffs.path)
            .args(args);
        cmd.output().with_context(|| format!("spawning {cmd:?}"))
    }

    /// The CLI in the guarded namespace, inside `cgroup` (see [`MemoryCgroup`]).
    pub fn cli_in_cgroup(&self, cgroup: &MemoryCgroup, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.guarded.name))
            .args(["--", "sh", "-c", "echo $$ > \"$0\" && exec \"$@\""])
            .arg(cgroup.procs())
            .arg(&self.cli)
            .arg("--bpffs")
            .arg(&self.bpffs.path)
            .args(args);
        cmd.output().with_context(|| format!("spawning {cmd:?}"))
    }

    /// The CLI, which must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "icmp-guard {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> Result<serde_json::Value> {
        let out = self.cli_ok(&["status", "--json"])?;
        serde_json::from_str(&out).with_context(|| format!("parsing status: {out}"))
    }

    /// Whether the guarded interface carries an XDP program.
    #[must_use]
    pub fn guarded_has_xdp(&self) -> bool {
        self.guarded.has_xdp(&self.guarded_if)
    }

    /// The pins of `iface` of the guarded namespace in the lab's bpffs, by the product's own
    /// layout.
    #[must_use]
    pub fn pins(&self, iface: &str) -> icmp_guard::pinned::Pins {
        let iface = iface.parse().expect("the lab's interface names are valid");
        icmp_guard::pinned::Pins::in_netns(&self.bpffs.path, self.guarded.id(), &iface)
    }

    /// The folder where icmp-guard pins the state of `iface` of the guarded namespace.
    #[must_use]
    pub fn pin_dir(&self, iface: &str) -> PathBuf {
        self.pins(iface).dir
    }

    /// The root of every icmp-guard pin in the lab's bpffs.
    #[must_use]
    pub fn pin_root(&self) -> PathBuf {
        icmp_guard::pinned::layout::root(&self.bpffs.path)
    }

    /// `stats --json` of the guarded interface.
    pub fn stats(&self) -> Result<serde_json::Value> {
        let out = self.cli_ok(&["stats", &self.guarded_if, "--json"])?;
        serde_json::from_str(&out).with_context(|| format!("parsing stats: {out}"))
    }

    /// iputils ping from the client to the guarded host: `count` echoes, `interval` seconds
    /// apart, giving up after `deadline` seconds. Returns the number of replies.
    pub fn ping(&self, count: u32, interval: &str, deadline: u32) -> Result<u32> {
        self.ping_to(GUARDED_ADDR, &[], count, interval, deadline)
    }

    /// The same over IPv6.
    pub fn ping6(&self, count: u32, interval: &str, deadline: u32) -> Result<u32> {
        self.ping_to(GUARDED_ADDR6, &[], count, interval, deadline)
    }

    /// iputils ping from the client to `addr` (either family) with `size` data bytes and
    /// fragmentation prohibited (`-s SIZE -M do`): `count` echoes 0.2 s apart, giving up after
    /// 10 s. Returns the number of replies.
    pub fn ping_unfragmented(&self, addr: &str, size: usize, count: u32) -> Result<u32> {
        let size = size.to_string();
        self.ping_to(addr, &["-s", &size, "-M", "do"], count, "0.2", 10)
    }

    fn ping_to(
        &self,
        addr: &str,
        options: &[&str],
        count: u32,
        interval: &str,
        deadline: u32,
    ) -> Result<u32> {
        let out = self
            .ping_command_with(addr, options, count, interval, deadline)
            .output()
            .context("spawning ping (is iputils-ping installed?)")?;
        ping_received(&out)
    }

    /// The ping of [`ping`](Self::ping) towards `addr` as a command, to run it alongside
    /// something else; [`ping_received`] reads its output.
    #[must_use]
    pub fn ping_command(&self, addr: &str, count: u32, interval: &str, deadline: u32) -> Command {
        self.ping_command_with(addr, &[], count, interval, deadline)
    }

    fn ping_command_with(
        &self,
        addr: &str,
        options: &[&str],
        count: u32,
        interval: &str,
        deadline: u32,
    ) -> Command {
        let mut cmd = self.client.exec("ping");
        cmd.args(options);
        cmd.args([
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-w",
            &deadline.to_string(),
            addr,
        ]);
        cmd
    }

    /// Stops the client's own IPv6 chatter (router solicitations, MLD reports), so that the
    /// only frames reaching the guarded interface are the ones a test sends.
    pub fn silence_client(&self) -> Result<()> {
        run(self.client.exec("sysctl").args([
            "-q",
            "-w",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", self.client_if),
        ]))?;
        Ok(())
    }

    /// The injector in the client namespace, sending towards the guarded host; returns its
    /// JSON report.
    pub fn inject(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = run(&mut self.inject_command(args)?)?;
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The injector command, to run it alongside others.
    pub fn inject_command(&self, args: &[&str]) -> Result<Command> {
        let dst_mac = self.mac(&self.guarded, &self.guarded_if)?;
        let mut cmd = self.client.exec(&self.inject);
        cmd.args(["--iface", &self.client_if, "--dst-mac", &dst_mac])
            .args(args);
        Ok(cmd)
    }

    /// Runs one injector pinned to each of `cpus`, all with `args` (pace them with `--pps`),
    /// each told to start at the same moment, a second on, and waits for them. Checks
    /// that they sent together: each was sending during at least 80% of the time all of them
    /// took. Pinned, an injector sends on the transmit queue of its CPU's number (modulo the
    /// queues; it bypasses the qdisc layer, which picks the queue so), and a veth hands the
    /// frames to the peer's receive queue of that number: on a lab with a queue per CPU each
    /// CPU's frames are judged on that CPU, at the same time as the others' (see
    /// [`Self::flood_from_cpus`]). Returns the injectors' reports.
    pub fn inject_from_cpus(
        &self,
        cpus: &[usize],
        args: &[&str],
    ) -> Result<Vec<serde_json::Value>> {
        let start_at = (monotonic_ns() + 1_000_000_000).to_string();
        let mut commands = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let mut cmd = self.inject_command(args)?;
            cmd.args(["--cpu", &cpu.to_string(), "--start-at", &start_at])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            commands.push(cmd);
        }
        let mut senders = Vec::with_capacity(commands.len());
        for cmd in &mut commands {
            match cmd.spawn() {
                Ok(child) => senders.push(child),
                Err(e) => {
                    for mut sender in senders {
                        let _ = sender.kill();
                        let _ = sender.wait();
                    }
                    return Err(e).context("spawning the injector");
                }
            }
        }
        // Every sender is waited for before any failure is reported.
        let outputs: Vec<_> = senders
            .into_iter()
            .map(std::process::Child::wait_with_output)
            .collect();
        let mut reports = Vec::with_capacity(outputs.len());
        for out in outputs {
            let out = out?;
            ensure!(out.status.success(), "injector failed: {}", stderr_of(&out));
            reports.push(serde_json::from_slice::<serde_json::Value>(&out.stdout)?);
        }
        let all = sending_span(&reports)?;
        let shortest = reports
            .iter()
            .map(|r| sending_span(std::slice::from_ref(r)))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .min()
            .unwrap_or_default();
        ensure!(
            shortest * 5 >= all * 4,
            "the injectors did not send together: {reports:?}"
        );
        Ok(reports)
    }

    /// Floods the guard of `iface` from each of `cpus` at once (see [`Self::inject_from_cpus`];
    /// `args` sends `per_cpu` frames each) and checks where the frames were judged. On a lab
    /// with a queue per CPU, each CPU's frames reach a queue of their own (the veth's per-queue
    /// statistics), whose NAPI runs on that CPU, so nearly all (90%) are judged there, at the
    /// same time as the others'. Through fewer queues the CPUs take turns running a queue's
    /// NAPI, frames of the others' included, so each need only have judged a tenth of its own.
    /// Returns the injectors' reports.
    pub fn flood_from_cpus(
        &self,
        iface: &str,
        cpus: &[usize],
        args: &[&str],
        per_cpu: u64,
    ) -> Result<Vec<serde_json::Value>> {
        let judged_before = self.judged_per_cpu(iface)?;
        let queued_before = self.xdp_frames_per_queue(iface)?;
        let reports = self.inject_from_cpus(cpus, args)?;
        let judged = self.judged_per_cpu(iface)?;
        let queued = self.xdp_frames_per_queue(iface)?;
        let own_queue = self.queues as usize >= cpus.len();
        let least = if own_queue {
            per_cpu * 9 / 10
        } else {
            per_cpu / 10
        };
        for &cpu in cpus {
            let on_cpu = judged[cpu] - judged_before[cpu];
            ensure!(
                on_cpu >= least,
                "CPU {cpu} judged {on_cpu} frames, at least {least} expected of the {per_cpu} it \
                 sent through {} queues (per CPU before {judged_before:?}, after {judged:?})",
                self.queues
            );
            let queue = cpu % queued.len();
            let got = queued[queue] - queued_before[queue];
            ensure!(
                !own_queue || got >= per_cpu,
                "queue {queue} got {got} frames, not the {per_cpu} CPU {cpu} sent (per queue \
                 before {queued_before:?}, after {queued:?})"
            );
        }
        Ok(reports)
    }

    /// The frames each receive queue of the guarded veth `iface` handed its XDP program, by
    /// queue number (the veth driver's `rx_queue_<n>_xdp_packets` statistics).
    pub fn xdp_frames_per_queue(&self, iface: &str) -> Result<Vec<u64>> {
        let out = run(self.guarded.exec("ethtool").args(["-S", iface]))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut frames = Vec::new();
        for line in text.lines() {
            let Some((name, value)) = line.trim().split_once(':') else {
                continue;
            };
            let Some(queue) = name
                .strip_prefix("rx_queue_")
                .and_then(|rest| rest.strip_suffix("_xdp_packets"))
            else {
                continue;
            };
            let queue: usize = queue.parse()?;
            frames.resize(frames.len().max(queue + 1), 0);
            frames[queue] = value.trim().parse()?;
        }
        ensure!(
            !frames.is_empty(),
            "no per-queue XDP statistics for {iface}: {text}"
        );
        Ok(frames)
    }

    /// The frames the guard of `iface` judged on each possible CPU, every reason's per-CPU
    /// counter summed, read from its pinned map: which CPUs a flood reached.
    pub fn judged_per_cpu(&self, iface: &str) -> Result<Vec<u64>> {
        let path = self.pins(iface).map(maps::COUNTERS);
        let data =
            MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
        let counters: PerCpuArray<MapData, u64> = PerCpuArray::try_from(Map::from_map_data(data)?)?;
        let mut judged = Vec::new();
        for reason in Reason::ALL {
            let values = counters.get(&reason.slot(), 0)?;
            judged.resize(values.len(), 0);
            for (cpu, n) in values.iter().enumerate() {
                judged[cpu] += n;
            }
        }
        Ok(judged)
    }
}

/// The replies an iputils ping received, from its summary line.
pub fn ping_received(out: &Output) -> Result<u32> {
    Ok(ping_summary(out)?.1)
}

/// The requests an iputils ping sent and the replies it received, from its summary line
/// ("5 packets transmitted, 4 received, ...").
pub fn ping_summary(out: &Output) -> Result<(u32, u32)> {
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |suffix: &str| -> Result<u32> {
        let value = text
            .lines()
            .find_map(|l| l.split(", ").find_map(|p| p.strip_suffix(suffix)))
            .with_context(|| format!("no \"{suffix}\" in ping output: {text}"))?;
        Ok(value.trim().parse()?)
    };
    Ok((field(" packets transmitted")?, field(" received")?))
}

/// Polls `check` every 100 ms for up to `secs` seconds.
pub fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("not within {secs} s: {what}")
}

/// A memory cgroup of its own with a limit, removed on drop (once the processes put in it
/// have ended): cgroup v2's `memory.max` where `/sys/fs/cgroup` is cgroup v2 with the memory
/// controller, else v1's `memory.limit_in_bytes` under `/sys/fs/cgroup/memory`.
pub struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    pub fn new(limit_bytes: u64) -> Result<Self> {
        let v2 = Path::new("/sys/fs/cgroup");
        let v2_memory = std::fs::read_to_string(v2.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (parent, limit_file) = if v2_memory {
            (v2.to_path_buf(), "memory.max")
        } else {
            (v2.join("memory"), "memory.limit_in_bytes")
        };
        let dir = parent.join(unique('m'));
        std::fs::create_dir(&dir)
            .with_context(|| format!("creating the cgroup {}", dir.display()))?;
        let cgroup = Self { dir };
        std::fs::write(cgroup.dir.join(limit_file), limit_bytes.to_string())
            .with_context(|| format!("limiting {}", cgroup.dir.display()))?;
        Ok(cgroup)
    }

    /// The file a process writes its pid to, to enter the group.
    #[must_use]
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // A group empties a moment after its last process exits.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove the cgroup {}", self.dir.display());
    }
}
