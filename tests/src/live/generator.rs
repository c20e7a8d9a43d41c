//! The sender: the `xdp-gen` program run by `BPF_PROG_TEST_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`, Linux 5.18, commit b530e9e1063e). The kernel builds real
//! frames from the input in a page pool, runs the program on each as if the sender's veth had
//! received it, and carries out its verdict: `XDP_TX` becomes a redirect out of the ingress
//! interface named in the `xdp_md` context, so each frame crosses the veth pair to the
//! receiver. The ifindex is looked up in the calling thread's network namespace, so the run
//! happens on a thread that entered the sender's namespace, pinned to [`SENDER_CPU`].

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp},
};
use icmp_guard::kernel::object;
use icmp_guard_common::generator::{LEAVE, MODE_SLOT, NEXT_SLOT, REWRITE, SPOOF, STATE};

use super::SENDER_CPU;
use crate::{
    harness,
    lab::{enter_netns, pin_thread_to},
};

const PROGRAM: &str = "xdp_gen";
/// Frames per `BPF_PROG_TEST_RUN` call: between calls the sender checks its stop flag and
/// its time limit, so a flood ends within one chunk of either.
const CHUNK: u32 = 262_144;
/// Frames the kernel runs and transmits per batch (its default, `NAPI_POLL_WEIGHT`).
const BATCH: u32 = 64;

/// When a flood ends: after `frames`, after `time`, or once `stop` is set, whichever comes
/// first.
pub struct Until<'a> {
    pub frames: u64,
    pub time: Duration,
    pub stop: &'a AtomicBool,
}

/// What the generator does to each frame before sending it (`xdp-gen`'s modes).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frames {
    /// Sends it as it is. The kernel reuses the pages of earlier frames, whose bytes nobody
    /// wrote since, so the receiving CPU still has them in its cache: no NIC delivers frames
    /// like that.
    Warm = LEAVE,
    /// Writes every cache line of it (two bytes in 32, written back unchanged), so that the
    /// receiving CPU finds every frame freshly written by another, as a NIC writes each frame
    /// it receives into memory.
    Written = REWRITE,
    /// Gives it a new source address, then writes it as [`Frames::Written`] does.
    Spoofed = SPOOF,
}

impl Frames {
    /// Its key in JSON.
    #[must_use]
    pub const fn key(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Written => "written",
            Self::Spoofed => "spoofed",
        }
    }
}

/// What a flood sent.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub frames: u64,
    pub seconds: f64,
}

/// The loaded generator.
pub struct Generator {
    ebpf: Ebpf,
}

impl Generator {
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(object::XDP_GEN).context("loading xdp-gen")?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .context("xdp_gen in the object")?
            .try_into()?;
        prog.load().context("loading xdp_gen into the kernel")?;
        Ok(Self { ebpf })
    }

    fn state(&mut self) -> Result<Array<&mut MapData, u32>> {
        Ok(Array::try_from(
            self.ebpf.map_mut(STATE).context("GEN_STATE map")?,
        )?)
    }

    /// From now on, what happens to every frame before it is sent.
    pub fn frames(&mut self, frames: Frames) -> Result<()> {
        self.state()?.set(MODE_SLOT, frames as u32, 0)?;
        Ok(())
    }

    /// How many spoofed sources were handed out so far.
    pub fn sources_used(&mut self) -> Result<u32> {
        Ok(self.state()?.get(&NEXT_SLOT, 0)?)
    }

    fn program(&self) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program(PROGRAM)
            .context("xdp_gen in the object")?
            .try_into()?)
    }

    /// Runs the generator once on `frame`, not live: its XDP action and the frame as it
    /// would have left.
    pub fn run_once(&self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        harness::run_once(&self.ebpf, PROGRAM, frame)
    }

    /// Sends `frame` out of the interface `ifindex` of the namespace `netns`, from a thread
    /// pinned to [`SENDER_CPU`], until `until` says stop.
    pub fn send(&self, netns: &str, ifindex: u32, frame: &[u8], until: &Until) -> Result<Sent> {
        let prog = self.program()?;
        let ctx = live_ctx(ifindex, frame.len())?;
        std::thread::scope(|s| {
            s.spawn(|| -> Result<Sent> {
                enter_netns(netns)?;
                pin_thread_to(SENDER_CPU)?;
                let started = Instant::now();
                let mut frames = 0;
                while frames < until.frames
                    && started.elapsed() < until.time
                    && !until.stop.load(Ordering::Relaxed)
                {
                    let chunk = u32::try_from(until.frames - frames)
                        .unwrap_or(CHUNK)
                        .min(CHUNK);
                    let mut opts = TestRunOptions::new();
                    opts.data_in = Some(frame);
                    opts.ctx_in = Some(&ctx);
                    opts.repeat = chunk;
                    opts.attrs = TestRunAttrs::new().xdp_live_frames(BATCH);
                    prog.test_run(opts).with_context(|| {
                        format!("BPF_PROG_TEST_RUN with live frames on ifindex {ifindex}")
                    })?;
                    frames += u64::from(chunk);
                }
                Ok(Sent {
                    frames,
                    seconds: started.elapsed().as_secs_f64(),
                })
            })
            .join()
            .map_err(|_| anyhow!("the sender thread panicked"))?
        })
    }
}

/// The `struct xdp_md` the run starts from: the frame's bounds, and the interface and queue it
/// "arrived" on, which `XDP_TX` sends it back out of.
fn live_ctx(ifindex: u32, len: usize) -> Result<Vec<u8>> {
    let data_end = u32::try_from(len)?;
    // data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    let md: [u32; 6] = [0, data_end, 0, ifindex, 0, 0];
    Ok(md.iter().flat_map(|v| v.to_ne_bytes()).collect())
}
