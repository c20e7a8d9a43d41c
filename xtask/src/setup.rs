//! What the tasks need on the machine, installed when missing. `cargo xtask setup` ensures
//! both parts; `build` needs the first, `test`, `bench` and `demo` both.
//!
//! - [`ebpf_toolchain`], what building the XDP program takes: the nightly toolchain (installed
//!   with rustup when missing) and its `rust-src` (the eBPF crate is built with `-Z build-std=core`), and `bpf-linker` built
//!   against the nightly's own LLVM: a folder `<prefix>/lib` holds `libLLVM.so` and the
//!   versioned name, both linked to the nightly's shared LLVM, and
//!   `LLVM_PREFIX=<prefix> cargo install bpf-linker --features llvm-<major>`; a stamp records
//!   which nightly it was built for, so a new nightly triggers a rebuild;
//! - [`test_tools`], the commands the tests, the benchmark and the demo run (`ip`, `ping`,
//!   `nsenter`, `setpriv`, `bpftool`, `mount`, `strace` for the kill test; `ethtool` for the
//!   per-queue statistics of floods from two CPUs and the bench's live table, `nft` for that
//!   table; `xdp-filter` for the foreign-program test;
//!   `systemd-analyze` for the unit's sandbox score; `dpkg-deb`, `podman` and `file` for
//!   `dist`), from Debian, and `kubernetes-validate` for the manifests, from PyPI (into a
//!   virtual environment of its own, [`python_env`], where the system has none).
//!
//! Each step checks first (a few `rustc`, `rustup` and `bpf-linker` queries, a `PATH` lookup)
//! and, when everything is there, does nothing and prints nothing: no `apt-get`, no `cargo
//! install`.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{run, step};

const BPF_LINKER_VERSION: &str = "0.13.0";

/// Commands the tests and demo need, and the Debian package providing each.
const SYSTEM_TOOLS: [(&str, &str); 19] = [
    ("ip", "iproute2"),
    // The demo's and the replay tests' captures of a lab flood, replayed by `icmp-guard replay`.
    ("tcpdump", "tcpdump"),
    ("bpftool", "bpftool"),
    ("ping", "iputils-ping"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("mount", "mount"),
    // The kill test's fault injection (a SIGKILL at the Nth bpf() call).
    ("strace", "strace"),
    // The bench's live table: the nftables meter it compares against, and GRO on the
    // receiving veth (which gives it the NAPI instance that frames sent by XDP need).
    ("nft", "nftables"),
    ("ethtool", "ethtool"),
    // The shipped unit's sandbox score (`systemd-analyze security --offline=yes`).
    ("systemd-analyze", "systemd"),
    // The foreign-program test: another tool's XDP program (xdp-filter, and its object files
    // loaded with `ip`), which icmp-guard must name and leave in place.
    ("xdp-filter", "xdp-tools"),
    // The monitoring kit's test: `promtool check rules` and `test rules` on the alert rules,
    // and a real Prometheus scraping the service to run every rule and dashboard query.
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    // The capture test reads the packet comments (reason, source prefix) `icmp-guard capture`
    // writes with tshark (and its frames with tcpdump, above).
    ("tshark", "tshark"),
    // `cargo xtask dist`: the .deb, and the container image around the static binary (built
    // and exported by the dist test; containers cannot be started here, see the README).
    ("dpkg-deb", "dpkg"),
    ("podman", "podman"),
    // The dist test's look at the shipped binary (static, PIE), with `file -b`.
    ("file", "file"),
    // The man pages `generate man` writes, rendered as man(1) would with every warning on.
    ("groff", "groff-base"),
];

/// The Kubernetes manifests' offline validator (it ships the schemas), from PyPI: the version
/// and the command it installs.
const KUBERNETES_VALIDATE: (&str, &str) = ("kubernetes-validate==1.37.0", "kubernetes-validate");

/// Makes sure the XDP program can be built: the nightly's `rust-src` and a `bpf-linker` on its
/// LLVM. Returns what is there, for `cargo xtask setup` to report.
pub fn ebpf_toolchain() -> Result<String> {
    let nightly = Nightly::detect()?;
    rust_src(&nightly)?;
    bpf_linker(&nightly)?;
    Ok(format!(
        "{} with rust-src, bpf-linker {BPF_LINKER_VERSION} on its LLVM {}",
        nightly.release, nightly.llvm_major
    ))
}

/// What we need to know about the nightly toolchain.
struct Nightly {
    /// `rustc -vV` release line, e.g. `1.97.0-nightly`.
    release: String,
    /// Commit hash, identifies the exact build.
    commit: String,
    /// LLVM major version, e.g. 22.
    llvm_major: String,
    /// The toolchain's `lib` folder.
    lib: PathBuf,
}

impl Nightly {
    fn detect() -> Result<Self> {
        if rustc(&["+nightly", "-vV"]).is_err() {
            step("installing the nightly toolchain, which builds the eBPF program");
            run(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))?;
        }
        let text = rustc(&["+nightly", "-vV"])?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .with_context(|| format!("`rustc +nightly -vV` printed no {name}"))
        };
        let llvm = field("LLVM version:")?;
        let sysroot = PathBuf::from(rustc(&["+nightly", "--print", "sysroot"])?.trim());
        Ok(Self {
            release: field("release:")?,
            commit: field("commit-hash:")?,
            llvm_major: llvm.split('.').next().unwrap_or_default().to_owned(),
            lib: sysroot.join("lib"),
        })
    }

    /// The toolchain's shared LLVM library, `libLLVM.so.<ver>-rust-<release>`.
    fn libllvm(&self) -> Result<PathBuf> {
        let entries = std::fs::read_dir(&self.lib)
            .with_context(|| format!("listing {}", self.lib.display()))?;
        for entry in entries {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.starts_with("libLLVM.so.") && name.ends_with(&format!("-rust-{}", self.release))
            {
                return Ok(path);
            }
        }
        bail!(
            "the nightly toolchain ships no libLLVM.so.*-rust-{} in {}; bpf-linker cannot be built against its LLVM",
            self.release,
            self.lib.display()
        )
    }
}

fn rust_src(nightly: &Nightly) -> Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        return Ok(());
    }
    step(&format!("installing rust-src for {}", nightly.release));
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// What `rustc ARGS` prints, or the error it gave (through the rustup proxy, so `+nightly`
/// picks a toolchain).
pub fn rustc(args: &[&str]) -> Result<String> {
    let out = Command::new("rustc")
        .args(args)
        .output()
        .with_context(|| format!("running `rustc {}` (is rustup installed?)", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`rustc {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    )
}

fn bpf_linker(nightly: &Nightly) -> Result<()> {
    let state = cargo_home().join("icmp-guard");
    let stamp = state.join("bpf-linker.stamp");
    let wanted = format!(
        "bpf-linker {BPF_LINKER_VERSION} llvm-{} {} {}",
        nightly.llvm_major, nightly.release, nightly.commit
    );
    let works = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
        });
    if works && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wanted) {
        return Ok(());
    }
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against the LLVM {} of {} (about a minute)",
        nightly.llvm_major, nightly.release
    ));
    let libllvm = nightly.libllvm()?;
    // The installed linker loads LLVM through this folder at run time: keep it.
    let prefix = state.join(format!(
        "llvm-{}-{}",
        nightly.release,
        &nightly.commit[..9.min(nightly.commit.len())]
    ));
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let versioned = libllvm.file_name().context("libLLVM has a name")?;
    for name in [std::ffi::OsStr::new("libLLVM.so"), versioned] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    }
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{}", nightly.llvm_major),
        ])
        .env("LLVM_PREFIX", &prefix))?;
    std::fs::write(&stamp, format!("{wanted}\n"))
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// Makes sure the commands the tests, the benchmark and the demo run are on `PATH`, installing
/// the missing ones' packages with `apt-get` (which is only called then).
pub fn test_tools() -> Result<()> {
    system_tools(|_| true)?;
    python_tools()
}

/// Makes sure the commands `tools` (from [`SYSTEM_TOOLS`]) are there, as [`test_tools`] does:
/// for tasks that need only a few, such as `dist`.
pub fn tools(tools: &[&str]) -> Result<()> {
    system_tools(|tool| tools.contains(&tool))
}

fn system_tools(wanted: impl Fn(&str) -> bool) -> Result<()> {
    let mut packages: Vec<&str> = SYSTEM_TOOLS
        .iter()
        .filter(|(tool, _)| wanted(tool) && !on_path(tool))
        .map(|(_, package)| *package)
        .collect();
    if packages.is_empty() {
        return Ok(());
    }
    packages.sort_unstable();
    packages.dedup();
    if !on_path("apt-get") {
        bail!("missing tools for the tests and demo; install the packages {packages:?}");
    }
    step(&format!("installing {packages:?} with apt-get"));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let still: Vec<&str> = SYSTEM_TOOLS
        .iter()
        .map(|(tool, _)| *tool)
        .filter(|tool| wanted(tool) && !on_path(tool))
        .collect();
    if !still.is_empty() {
        bail!("installed {packages:?}, but {still:?} are still not on PATH");
    }
    Ok(())
}

/// Whether `tool` is on `PATH`, or in the system's `sbin` folders, which a user's `PATH` on
/// Debian lacks although `bpftool`, `nft`, `ethtool` and `xdp-filter` live there (and root's
/// `PATH`, under which the tests run, has them).
fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join(tool).is_file())
}

/// The virtual environment the manifests' validator is installed into when the system has
/// none: Debian's Python refuses `pip install` outside one (PEP 668).
pub fn python_env() -> PathBuf {
    cargo_home().join("icmp-guard").join("python")
}

/// `PATH` with [`python_env`]'s commands first, for the tasks that run the tests: its
/// `python3` has the validator's PyYAML, which the dist test reads the manifests with.
pub fn tools_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let bin = python_env().join("bin");
    if !bin.is_dir() {
        return path;
    }
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path))).unwrap_or(path)
}

/// Installs the manifests' validator when its command is missing: into [`python_env`], a
/// virtual environment made with the system's `python3` (with `python3` and `python3-venv`
/// from Debian when they are missing).
fn python_tools() -> Result<()> {
    let (requirement, command) = KUBERNETES_VALIDATE;
    let env = python_env();
    let bin = env.join("bin");
    // Ours only: another install on PATH (pipx, another version) has neither the pinned
    // version nor, in its interpreter, the PyYAML the dist test imports.
    if bin.join(command).is_file() {
        return Ok(());
    }
    let venv_works = || {
        Command::new("python3")
            .args(["-c", "import ensurepip, venv"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !venv_works() {
        if !on_path("apt-get") {
            bail!(
                "{requirement} needs python3 with venv; install the packages python3 and python3-venv"
            );
        }
        step("installing [\"python3\", \"python3-venv\"] with apt-get");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(["python3", "python3-venv"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    step(&format!(
        "installing {requirement} into a virtual environment at {}",
        env.display()
    ));
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&env))?;
    run(Command::new(bin.join("python3")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        requirement,
    ]))?;
    if !bin.join(command).is_file() {
        bail!(
            "installed {requirement}, but {} is missing",
            bin.join(command).display()
        );
    }
    Ok(())
}

/// Makes sure the Rust target of the shipped binary is installed (`rustup target add`).
pub fn musl_target(target: &str) -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        return Ok(());
    }
    step(&format!("installing the Rust target {target}"));
    run(Command::new("rustup").args(["target", "add", target]))
}
