//! Builds the XDP programs (`icmp-guard-ebpf`) for the BPF target with the nightly toolchain and
//! places the objects in `OUT_DIR`, where `src/lib.rs` embeds them.
//!
//! This is what `aya_build::build_ebpf` does (a nested `cargo build` of the eBPF crate's
//! binaries with `-Z build-std=core`, its objects copied out), plus the one flag aya-build fixes
//! and we need: `-C target-cpu=v3`. The BPF target's default CPU, `generic`, is the 2014
//! instruction set: no 32-bit jumps and no `<`/`<=` jumps, so every comparison whose result
//! feeds a branch is first made into 0 or 1 in a register and then tested. v3 (Linux 5.1) has
//! both, and the ICMP paths measured are about 8 to 15 ns a packet cheaper (the bench's
//! `--compare`, README "Benchmarks"). Every kernel icmp-guard runs on (5.18 or later) accepts
//! v3; v4 would need 6.6.

use std::{
    env,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, anyhow, bail};

/// The eBPF crate, a build-dependency of this one, so cargo rebuilds us when its library or
/// dependencies change; its binaries are watched with `rerun-if-changed`.
const EBPF_PACKAGE: &str = "icmp-guard-ebpf";

/// The BPF instruction set the programs are generated for: see the module docs.
const BPF_CPU: &str = "v3";

fn main() -> anyhow::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = workspace.join("icmp-guard-ebpf");
    // The nested build decides for itself what to rebuild; it runs again when the program's
    // sources, the workspace's profiles and lock, or the linker change.
    for watched in [
        root.clone(),
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
    ]
    .into_iter()
    .chain(on_path("bpf-linker"))
    {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let mut cmd = nested_build(&root, &out_dir)?;
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {cmd:?} (is rustup on PATH? `cargo xtask setup`)"))?;

    // Cargo's own output (progress, errors) is kept for the error a failed build returns.
    let mut stderr = child.stderr.take().context("stderr")?;
    let progress = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).map(|_| text)
    });
    let mut executables = Vec::new();
    for line in BufReader::new(child.stdout.take().context("stdout")?).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            println!("cargo:warning={line}");
            continue;
        };
        match message["reason"].as_str() {
            Some("compiler-artifact") => {
                if let (Some(name), Some(path)) = (
                    message["target"]["name"].as_str(),
                    message["executable"].as_str(),
                ) {
                    executables.push((name.to_owned(), PathBuf::from(path)));
                }
            }
            Some("compiler-message") => {
                let rendered = message["message"]["rendered"].as_str().unwrap_or_default();
                for line in rendered.lines() {
                    println!("cargo:warning={line}");
                }
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    let progress = progress
        .join()
        .map_err(|_| anyhow!("reading cargo's output panicked"))??;
    if !status.success() {
        bail!("{cmd:?} failed ({status}):\n{progress}");
    }
    if executables.is_empty() {
        bail!("{cmd:?} built no binaries");
    }
    for (name, path) in executables {
        let to = out_dir.join(&name);
        std::fs::copy(&path, &to)
            .with_context(|| format!("copying {} to {}", path.display(), to.display()))?;
    }
    Ok(())
}

/// Where `command` is found on `PATH`, if it is.
fn on_path(command: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(command))
        .find(|path| path.is_file())
}

/// The nested `cargo build` of the eBPF crate's binaries for the BPF target, its JSON messages
/// on stdout and its progress on stderr piped.
fn nested_build(root: &Path, out_dir: &Path) -> anyhow::Result<Command> {
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN")
        .context("CARGO_CFG_TARGET_ENDIAN")?
        .as_str()
    {
        "little" => "bpfel-unknown-none",
        "big" => "bpfeb-unknown-none",
        other => bail!("unsupported endianness {other}"),
    };
    // The programs read the context's registers through `bpf_target_arch` (aya-ebpf).
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    let arch = if arch.starts_with("riscv64") {
        "riscv64"
    } else {
        &arch
    };
    let rustflags = [
        &format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2",
        &format!("-Ctarget-cpu={BPF_CPU}"),
        "-Clink-arg=--btf",
    ]
    .join("\x1f");

    // The nightly toolchain through rustup (`cargo xtask setup` installs both), with the
    // workspace's lock as it is; the nested build's directory is a subdirectory of OUT_DIR,
    // named so no binary copied to OUT_DIR can collide with it.
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        "nightly",
        "cargo",
        "build",
        "--package",
        EBPF_PACKAGE,
    ])
    .args([
        "--bins",
        "--release",
        "--locked",
        "--message-format=json",
        "--target",
        target,
    ])
    .args(["-Z", "build-std=core", "--target-dir"])
    .arg(out_dir.join("ebpf-target"))
    .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
    // Set by the outer cargo for the host toolchain; the nested build picks its own.
    .env_remove("RUSTC")
    .env_remove("RUSTC_WORKSPACE_WRAPPER")
    .current_dir(root)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    Ok(cmd)
}
