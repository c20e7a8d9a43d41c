//! Whether the running kernel can run the program, checked by `attach` and `run` before they
//! load it, so an old or stripped-down kernel is named with what it lacks instead of failing
//! as a bare `EINVAL` from the loader.
//!
//! Three checks, cheapest first: the release `uname` reports against [`FEATURES`]; the BPF
//! filesystem in `/proc/filesystems`; and one minimal XDP program, loaded with
//! `BPF_F_XDP_HAS_FRAGS` and calling `bpf_ktime_get_coarse_ns`, then closed (a kernel of the
//! right version built without a feature). Only when that load fails do two more loads tell
//! which part was refused. BPF links for XDP are not probed: that needs an interface to
//! attach to, and every kernel with `xdp.frags` (5.18) has them (5.9).

use std::{fmt, io};

use crate::Error;

/// A kernel release, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
}

impl Release {
    #[must_use]
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The `major.minor` at the start of a release string such as `6.18.0-1-amd64` or
    /// `5.15.0-91-generic`; `None` when it does not start that way.
    #[must_use]
    pub fn parse(release: &str) -> Option<Self> {
        let mut parts = release.splitn(3, |c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A kernel feature the program uses, and the first release that has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    pub what: &'static str,
    pub since: Release,
}

/// What the program needs from the kernel, newest first.
pub const FEATURES: [Feature; 4] = [
    Feature {
        what: "multi-buffer XDP (xdp.frags)",
        since: Release::new(5, 18),
    },
    Feature {
        what: "bpf_xdp_load_bytes",
        since: Release::new(5, 18),
    },
    Feature {
        what: "bpf_ktime_get_coarse_ns",
        since: Release::new(5, 11),
    },
    Feature {
        what: "BPF links for XDP (BPF_LINK_CREATE)",
        since: Release::new(5, 9),
    },
];

/// The oldest kernel with every feature of [`FEATURES`].
pub const MINIMUM: Release = FEATURES[0].since;

/// The features `kernel` is too old for, newest first; empty when it has them all.
#[must_use]
pub fn lacking(kernel: Release) -> Vec<Feature> {
    FEATURES
        .iter()
        .filter(|f| kernel < f.since)
        .copied()
        .collect()
}

/// Checks the running kernel; see the module's doc.
pub fn require() -> Result<(), Error> {
    let release = running_release()?;
    let kernel = Release::parse(&release).ok_or(Error::KernelRelease { release })?;
    too_old(kernel)?;
    let filesystems = std::fs::read_to_string("/proc/filesystems")
        .map_err(Error::io("reading", "/proc/filesystems"))?;
    if !has_bpffs(&filesystems) {
        return Err(Error::KernelLacks {
            what: "the BPF filesystem (bpffs)",
            why:
                "`bpf` is not in /proc/filesystems; the kernel was built without CONFIG_BPF_SYSCALL"
                    .into(),
        });
    }
    probe()
}

/// The error naming what `kernel` lacks, if anything.
pub fn too_old(kernel: Release) -> Result<(), Error> {
    let lacking = lacking(kernel);
    if lacking.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = lacking
        .iter()
        .map(|f| {
            // "multi-buffer XDP (xdp.frags)" reads "multi-buffer XDP (xdp.frags, 5.18)".
            match f.what.strip_suffix(')') {
                Some(open) => format!("{open}, {})", f.since),
                None => format!("{} ({})", f.what, f.since),
            }
        })
        .collect();
    let needs = match named.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(Error::KernelTooOld {
        kernel,
        minimum: MINIMUM,
        needs,
    })
}

/// Whether `/proc/filesystems` lists the BPF filesystem (a `nodev\tbpf` line).
#[must_use]
pub fn has_bpffs(filesystems: &str) -> bool {
    filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("bpf"))
}

fn running_release() -> Result<String, Error> {
    // SAFETY: uname fills the struct we own; its fields are NUL-terminated.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return Err(Error::KernelRelease {
            release: format!("(uname failed: {})", io::Error::last_os_error()),
        });
    }
    // SAFETY: `release` is a NUL-terminated C string inside `uts`.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

/// The probe program's parts, each one instruction (`struct bpf_insn`, little-endian).
const CALL_KTIME_GET_COARSE_NS: [u8; 8] = insn(0x85, 160); // call bpf_ktime_get_coarse_ns
const MOV_R0_XDP_PASS: [u8; 8] = insn(0xb7, 2); // r0 = XDP_PASS
const EXIT: [u8; 8] = insn(0x95, 0);

const fn insn(code: u8, imm: i32) -> [u8; 8] {
    let imm = imm.to_le_bytes();
    [code, 0, 0, 0, imm[0], imm[1], imm[2], imm[3]]
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// The head of `union bpf_attr` for `BPF_PROG_LOAD`, up to `prog_flags`; the kernel reads the
/// fields past it as zero.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// Loads an XDP program of `insns` with `flags`, and closes it.
fn load(insns: &[[u8; 8]], flags: u32) -> io::Result<()> {
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: flags,
    };
    // SAFETY: BPF_PROG_LOAD reads `size_of::<ProgLoad>()` bytes of `attr`, and the
    // instructions and licence it points to, all alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &raw const attr,
            size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned to us.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// What the kernel refused, from which probe loads succeeded: `plain` an XDP program,
/// `frags` one with `BPF_F_XDP_HAS_FRAGS`; the whole probe (both and the helper) failed.
#[must_use]
pub fn refused(plain: bool, frags: bool) -> &'static str {
    match (plain, frags) {
        (false, _) => "XDP programs",
        (true, false) => "multi-buffer XDP (xdp.frags)",
        (true, true) => "bpf_ktime_get_coarse_ns in XDP programs",
    }
}

fn probe() -> Result<(), Error> {
    let Err(err) = load(
        &[CALL_KTIME_GET_COARSE_NS, MOV_R0_XDP_PASS, EXIT],
        BPF_F_XDP_HAS_FRAGS,
    ) else {
        return Ok(());
    };
    let plain = load(&[MOV_R0_XDP_PASS, EXIT], 0).is_ok();
    let frags = plain && load(&[MOV_R0_XDP_PASS, EXIT], BPF_F_XDP_HAS_FRAGS).is_ok();
    Err(Error::KernelLacks {
        what: refused(plain, frags),
        why: format!(
            "the kernel refused a minimal XDP program that uses it ({err}); a kernel built without it, or a security module forbidding bpf(), cannot run icmp-guard"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_read_from_uname_strings() {
        let cases: [(&str, Option<Release>); 7] = [
            ("6.18.0-1-amd64", Some(Release::new(6, 18))),
            ("5.15.0-91-generic", Some(Release::new(5, 15))),
            ("5.18", Some(Release::new(5, 18))),
            ("4.18.0-553.el8_10.x86_64", Some(Release::new(4, 18))),
            ("6.1.0+", Some(Release::new(6, 1))),
            ("6", None),
            ("linux", None),
        ];
        for (release, expected) in cases {
            assert_eq!(Release::parse(release), expected, "{release}");
        }
    }

    #[test]
    fn the_decision_names_what_each_kernel_lacks() {
        let cases: [(Release, Option<&str>); 8] = [
            (
                Release::new(4, 19),
                Some(
                    "kernel 4.19 is older than 5.18, which icmp-guard needs for multi-buffer XDP (xdp.frags, 5.18), bpf_xdp_load_bytes (5.18), bpf_ktime_get_coarse_ns (5.11) and BPF links for XDP (BPF_LINK_CREATE, 5.9); run it on Linux 5.18 or newer",
                ),
            ),
            (
                Release::new(5, 4),
                Some(
                    "kernel 5.4 is older than 5.18, which icmp-guard needs for multi-buffer XDP (xdp.frags, 5.18), bpf_xdp_load_bytes (5.18), bpf_ktime_get_coarse_ns (5.11) and BPF links for XDP (BPF_LINK_CREATE, 5.9); run it on Linux 5.18 or newer",
                ),
            ),
            (
                Release::new(5, 10),
                Some(
                    "kernel 5.10 is older than 5.18, which icmp-guard needs for multi-buffer XDP (xdp.frags, 5.18), bpf_xdp_load_bytes (5.18) and bpf_ktime_get_coarse_ns (5.11); run it on Linux 5.18 or newer",
                ),
            ),
            (
                Release::new(5, 15),
                Some(
                    "kernel 5.15 is older than 5.18, which icmp-guard needs for multi-buffer XDP (xdp.frags, 5.18) and bpf_xdp_load_bytes (5.18); run it on Linux 5.18 or newer",
                ),
            ),
            (Release::new(5, 18), None),
            (Release::new(6, 1), None),
            (Release::new(6, 18), None),
            (Release::new(10, 0), None),
        ];
        for (kernel, expected) in cases {
            let got = too_old(kernel).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), expected, "{kernel}");
        }
    }

    #[test]
    fn bpffs_is_found_in_proc_filesystems() {
        let cases: [(&str, bool); 4] = [
            ("nodev\tsysfs\nnodev\tbpf\n\text4\n", true),
            ("nodev\tsysfs\n\text4\n", false),
            ("nodev\tbpfx\n", false),
            ("", false),
        ];
        for (text, expected) in cases {
            assert_eq!(has_bpffs(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_failed_probe_names_the_part_refused() {
        let cases: [((bool, bool), &str); 3] = [
            ((false, false), "XDP programs"),
            ((true, false), "multi-buffer XDP (xdp.frags)"),
            ((true, true), "bpf_ktime_get_coarse_ns in XDP programs"),
        ];
        for ((plain, frags), expected) in cases {
            assert_eq!(refused(plain, frags), expected, "{plain} {frags}");
        }
    }
}
