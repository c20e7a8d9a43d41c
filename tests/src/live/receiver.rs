//! The receiver: its veth's NAPI instance made threaded and pinned to [`RECEIVER_CPU`], and
//! what it has done up to a moment ([`Snapshot`]), read only through generic kernel interfaces
//! (the NAPI thread's CPU time, the interface's packet counter, the namespace's ICMP counters,
//! and the run time of whatever XDP program is attached), so it measures icmp-guard, a bare
//! program and nftables alike.
//!
//! Frames sent by XDP reach a veth only through its NAPI instance, which a veth has only while
//! it has an XDP program or GRO turned on (Linux 5.13, commit d3256efd8e8b): GRO is turned on,
//! so the NAPI instance, and so its thread, outlive every attach and detach of the bench.

use std::{collections::HashMap, path::Path, time::Instant};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Ebpf,
    programs::{Xdp, XdpMode, loaded_programs},
};
use icmp_guard::kernel::object;
use icmp_guard_common::{Limit, floor};

use super::RECEIVER_CPU;
use crate::{
    harness::{load_floor, load_programs},
    lab::{Netns, enter_netns, eventually, ip, pin_task_to, run},
};

/// The NAPI thread's real-time priority (`chrt -f 50`, what threaded-NAPI tuning guides use).
const NAPI_PRIORITY: i32 = 50;

/// The receiver's NAPI kernel thread (`napi/<iface>-<napi id>`): all of the receive path
/// runs on it, XDP program, stack and nftables included.
#[derive(Debug)]
pub struct NapiThread {
    pub pid: u32,
    pub name: String,
}

impl NapiThread {
    /// Turns on GRO and threaded NAPI for `iface` in `ns`, finds the thread and pins it.
    pub fn setup(ns: &Netns, iface: &str) -> Result<Self> {
        run(ns.enter("ethtool").args(["-K", iface, "gro", "on"]))?;
        // sysfs shows the interfaces of the namespace it was mounted in: `ip netns exec`
        // mounts the namespace's own, for this one command.
        run(ns
            .exec("sh")
            .args(["-c", &format!("echo 1 > /sys/class/net/{iface}/threaded")]))?;
        let prefix = format!("napi/{iface}-");
        let mut found = None;
        eventually(5, &format!("a kernel thread {prefix}*"), || {
            found = find_thread(&prefix);
            found.is_some()
        })?;
        let (pid, name) = found.context("NAPI thread")?;
        let thread = Self { pid, name };
        thread.pin()?;
        Ok(thread)
    }

    /// Pins the thread to [`RECEIVER_CPU`] and makes it real-time (`SCHED_FIFO`), so that it
    /// runs as soon as frames arrive even when other work shares the CPU: a wait there would
    /// overflow the veth's ring, whose 256 frames last a fraction of a millisecond. It sleeps
    /// whenever the ring is empty, so it takes no CPU from others beyond its work.
    pub fn pin(&self) -> Result<()> {
        pin_task_to(self.pid, RECEIVER_CPU)
            .with_context(|| format!("pinning {} ({})", self.name, self.pid))?;
        let param = libc::sched_param {
            sched_priority: NAPI_PRIORITY,
        };
        // SAFETY: sched_setscheduler on a kernel thread's pid with a valid parameter.
        let rc = unsafe {
            libc::sched_setscheduler(
                libc::pid_t::try_from(self.pid)?,
                libc::SCHED_FIFO,
                &raw const param,
            )
        };
        ensure!(
            rc == 0,
            "making {} SCHED_FIFO: {}",
            self.name,
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// The time the thread has spent on a CPU, in ns (`/proc/<pid>/schedstat`).
    pub fn cpu_ns(&self) -> Result<u64> {
        let path = format!("/proc/{}/schedstat", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        text.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{path}: {text}"))
    }
}

/// A kernel thread whose name starts with `prefix`: (pid, name). Kernel threads show their
/// full name in `comm`, beyond the 15 bytes of a task's.
fn find_thread(prefix: &str) -> Option<(u32, String)> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let name = comm.trim_end();
            name.starts_with(prefix).then(|| (pid, name.to_owned()))
        })
}

/// An XDP program's counters as the kernel keeps them while run-time statistics are on.
#[derive(Clone, Copy, Debug)]
pub struct ProgRuns {
    pub id: u32,
    pub run_ns: u64,
    pub runs: u64,
}

/// What the receiver had done at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub at: Instant,
    pub napi_ns: u64,
    /// Frames the receiving veth took off its ring (`stats64.rx.packets`).
    pub rx_packets: u64,
    /// Echo requests that reached the receiver's ICMP stack (`Icmp: InEchos`).
    pub in_echos: u64,
    /// Echo replies it sent (`Icmp: OutEchoReps`).
    pub out_echo_reps: u64,
    pub prog: Option<ProgRuns>,
}

/// The receiving end: its namespace, interface and NAPI thread.
pub struct Receiver<'a> {
    pub ns: &'a Netns,
    pub iface: &'a str,
    pub napi: NapiThread,
}

impl<'a> Receiver<'a> {
    pub fn setup(ns: &'a Netns, iface: &'a str) -> Result<Self> {
        let napi = NapiThread::setup(ns, iface)?;
        Ok(Self { ns, iface, napi })
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        let link = self.link()?;
        let rx_packets = link["stats64"]["rx"]["packets"]
            .as_u64()
            .with_context(|| format!("no rx packets in {link}"))?;
        let icmp = self.icmp(&["InEchos", "OutEchoReps"])?;
        let prog = match link["xdp"]["prog"]["id"].as_u64() {
            Some(id) => Some(prog_runs(u32::try_from(id)?)?),
            None => None,
        };
        Ok(Snapshot {
            at: Instant::now(),
            napi_ns: self.napi.cpu_ns()?,
            rx_packets,
            in_echos: icmp["InEchos"],
            out_echo_reps: icmp["OutEchoReps"],
            prog,
        })
    }

    /// `ip -details -statistics -json link show` of the interface.
    fn link(&self) -> Result<serde_json::Value> {
        let out = ip(&[
            "-n",
            &self.ns.name,
            "-d",
            "-s",
            "-j",
            "link",
            "show",
            "dev",
            self.iface,
        ])?;
        let links: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(links[0].clone())
    }

    /// The `Icmp:` counters `names` of the namespace's `/proc/net/snmp`, by name.
    fn icmp<'n>(&self, names: &[&'n str]) -> Result<HashMap<&'n str, u64>> {
        let out = run(self.ns.enter("cat").arg("/proc/net/snmp"))?;
        let text = String::from_utf8(out.stdout)?;
        let mut icmp = text.lines().filter(|l| l.starts_with("Icmp: "));
        let (Some(header), Some(values)) = (icmp.next(), icmp.next()) else {
            bail!("no Icmp lines in /proc/net/snmp");
        };
        let all: HashMap<&str, &str> = header
            .split_whitespace()
            .zip(values.split_whitespace())
            .collect();
        names
            .iter()
            .map(|name| {
                let value = all
                    .get(name)
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("no {name} in /proc/net/snmp"))?;
                Ok((*name, value))
            })
            .collect()
    }

    /// The id of the XDP program on the interface, if any.
    pub fn xdp_prog_id(&self) -> Result<Option<u32>> {
        Ok(self.link()?["xdp"]["prog"]["id"]
            .as_u64()
            .map(u32::try_from)
            .transpose()?)
    }
}

/// The run counters of program `id`, from its program info.
fn prog_runs(id: u32) -> Result<ProgRuns> {
    for info in loaded_programs() {
        let info = info?;
        if info.id() == id {
            return Ok(ProgRuns {
                id,
                run_ns: u64::try_from(info.run_time().as_nanos())?,
                runs: info.run_count(),
            });
        }
    }
    bail!("program {id} is not loaded")
}

/// One of the bench's XDP programs attached (native) to the receiver: the `XDP_DROP`
/// baselines or the floor; detached on drop.
pub struct XdpProgram {
    _ebpf: Ebpf,
}

impl XdpProgram {
    /// Attaches the `XDP_DROP` that does not read the frame.
    pub fn bare(rx: &Receiver) -> Result<Self> {
        Self::drop_program(rx, "xdp_drop")
    }

    /// Attaches the `XDP_DROP` that reads the ethertype and the IPv4 protocol first.
    pub fn reads(rx: &Receiver) -> Result<Self> {
        Self::drop_program(rx, "xdp_read_drop")
    }

    /// Attaches `program` of the `xdp-drop` object.
    fn drop_program(rx: &Receiver, program: &'static str) -> Result<Self> {
        Self::attach(rx, program, move || {
            load_programs(Ebpf::load(object::XDP_DROP)?, &[program])
        })
    }

    /// Attaches the floor of a per-source meter ([`floor::METER_PROGRAM`]), metering each
    /// source with `echo` and taking tokens of `global`.
    pub fn floor(rx: &Receiver, echo: Limit, global: Limit) -> Result<Self> {
        Self::attach(rx, floor::METER_PROGRAM, move || {
            load_floor(&[floor::METER_PROGRAM], echo, global)
        })
    }

    /// Attaches `program` of the object `load` returns, its programs loaded.
    fn attach(
        rx: &Receiver,
        program: &'static str,
        load: impl FnOnce() -> Result<Ebpf> + Send + 'static,
    ) -> Result<Self> {
        let (ns, iface) = (rx.ns.name.clone(), rx.iface.to_owned());
        // The interface name resolves in the attaching thread's namespace: a thread of its own.
        let ebpf = std::thread::spawn(move || -> Result<Ebpf> {
            enter_netns(&ns)?;
            let mut ebpf = load()?;
            let prog: &mut Xdp = ebpf
                .program_mut(program)
                .with_context(|| format!("{program} in the object"))?
                .try_into()?;
            prog.attach(&iface, XdpMode::Driver)
                .with_context(|| format!("attaching {program} to {iface} (native)"))?;
            Ok(ebpf)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the attaching thread panicked"))??;
        let attached = Self { _ebpf: ebpf };
        ensure!(
            rx.xdp_prog_id()?.is_some(),
            "{program} attached, but {} shows no XDP program",
            rx.iface
        );
        Ok(attached)
    }
}

/// An nftables per-source meter on the receiver's ingress hook, as an administrator would
/// write one without XDP: a dynamic set of sources, each with its own `limit`. Removed on drop.
pub struct NftMeter<'a> {
    ns: &'a Netns,
    table: &'static str,
}

impl<'a> NftMeter<'a> {
    const TABLE: &'static str = "icmp_guard_bench";

    /// ICMP from each source over `rate` per second after `burst` is dropped.
    pub fn add(rx: &Receiver<'a>, file: &Path, rate: u32, burst: u32) -> Result<Self> {
        let (table, iface) = (Self::TABLE, rx.iface);
        let rules = format!(
            "table netdev {table} {{
  set sources {{ type ipv4_addr; size 65535; flags dynamic,timeout; timeout 60s; }}
  chain ingress {{
    type filter hook ingress device \"{iface}\" priority -500; policy accept;
    ip protocol icmp update @sources {{ ip saddr limit rate over {rate}/second burst {burst} packets }} drop
  }}
}}
"
        );
        std::fs::write(file, rules).with_context(|| format!("writing {}", file.display()))?;
        run(rx.ns.enter("nft").arg("-f").arg(file))?;
        Ok(Self { ns: rx.ns, table })
    }
}

impl Drop for NftMeter<'_> {
    fn drop(&mut self) {
        let _ = self
            .ns
            .enter("nft")
            .args(["delete", "table", "netdev", self.table])
            .output();
    }
}
