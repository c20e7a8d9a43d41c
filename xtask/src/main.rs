//! Project tasks: `cargo xtask setup|build|dist|test|bench|demo|fuzz`.
//!
//! Every task first sets up what it needs (see [`setup`]): `build` the eBPF toolchain; `test`,
//! `bench`, `demo` and `fuzz` that and the test tools. So a fresh machine needs nothing but Rust and
//! this repo, and on a ready one the checks cost a few process spawns and print nothing.

mod dist;
mod notices;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "icmp-guard project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the eBPF build and the tests need (idempotent)
    Setup,
    /// Build the CLI (with the XDP program embedded) and the test tools, release profile
    Build,
    /// The static (musl) binary, a tarball and a .deb under `<target dir>/dist/`; with
    /// `--image`, the container image too (podman)
    Dist {
        /// Also build the container image `localhost/icmp-guard:<version>`
        #[arg(long)]
        image: bool,
    },
    /// Lints, unit tests, fixtures on the real program and end-to-end tests (needs root)
    Test {
        /// Extra arguments for `cargo test`, e.g. a test name filter
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Nanoseconds per packet on the real program against a bare pass-all baseline, the
    /// per-CPU quota, and live traffic through a veth pair (needs root)
    Bench {
        /// Extra arguments for the bench binary, e.g. `--json`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A flood contained on a lab of network namespaces, with statistics (needs root)
    Demo,
    /// Mutated fixture frames through the host model and the real program, compared frame by
    /// frame; prints `N frames, M disagreements` last (needs root)
    Fuzz {
        /// Frames to compare
        #[arg(long, default_value_t = 100_000)]
        frames: u64,
        /// Seed of the frames, policies and preset states (default: a random one, printed)
        #[arg(long)]
        seed: Option<u64>,
        /// Folder for the disagreement files [default: target/fuzz]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Run a disagreement file again instead of fuzzing
        #[arg(long, value_name = "FILE", conflicts_with = "seed")]
        replay: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::Setup => {
            let toolchain = setup::ebpf_toolchain()?;
            setup::test_tools()?;
            step(&format!("setup: {toolchain}, test tools present"));
            Ok(())
        }
        Task::Build => {
            setup::ebpf_toolchain()?;
            build(&root)
        }
        Task::Dist { image } => {
            setup::ebpf_toolchain()?;
            setup::tools(if image {
                &["dpkg-deb", "podman"]
            } else {
                &["dpkg-deb"]
            })?;
            let artefacts = dist::dist(&root)?;
            for path in [&artefacts.binary, &artefacts.tarball, &artefacts.deb] {
                println!("{}", path.display());
            }
            if image {
                println!("{}", dist::image(&root, &artefacts)?);
            }
            Ok(())
        }
        Task::Test { args } => {
            require_root("test")?;
            setup_for_tests()?;
            test(&root, &args)
        }
        Task::Bench { args } => {
            require_root("bench")?;
            setup_for_tests()?;
            build(&root)?;
            run(Command::new(release_bin(&root, "icmp-guard-bench")?)
                .args(&args)
                .current_dir(&root))
        }
        Task::Demo => {
            require_root("demo")?;
            setup_for_tests()?;
            build(&root)?;
            run(Command::new(release_bin(&root, "icmp-guard-demo")?).current_dir(&root))
        }
        Task::Fuzz {
            frames,
            seed,
            out,
            replay,
        } => {
            require_root("fuzz")?;
            setup_for_tests()?;
            build(&root)?;
            // The tool runs from the workspace root: paths given here are made absolute first.
            let mut fuzz = Command::new(release_bin(&root, "icmp-guard-fuzz")?);
            fuzz.current_dir(&root);
            match replay {
                Some(file) => fuzz.arg("--replay").arg(std::path::absolute(file)?),
                None => fuzz.args(["--frames", &frames.to_string()]),
            };
            if let Some(seed) = seed {
                fuzz.args(["--seed", &seed.to_string()]);
            }
            if let Some(out) = out {
                fuzz.arg("--out").arg(std::path::absolute(out)?);
            }
            run(&mut fuzz)
        }
    }
}

/// What `test`, `bench` and `demo` need: they build the program and run the test tools.
fn setup_for_tests() -> Result<()> {
    setup::ebpf_toolchain()?;
    setup::test_tools()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where `build` put the binary `name`: `release/` in the target directory cargo uses.
fn release_bin(root: &Path, name: &str) -> Result<PathBuf> {
    Ok(target_dir(root)?.join("release").join(name))
}

/// The target directory cargo uses, which `CARGO_TARGET_DIR` or `build.target-dir` may move
/// out of the workspace.
fn target_dir(root: &Path) -> Result<PathBuf> {
    let mut cmd = cargo(root);
    cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `cargo metadata`")?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("`cargo metadata` printed no target_directory")?;
    Ok(PathBuf::from(target_dir))
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

fn build(root: &Path) -> Result<()> {
    step("building icmp-guard (with the XDP program) and the test tools");
    run(cargo(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "icmp-guard",
        "-p",
        "icmp-guard-tests",
        "--bins",
    ]))
}

fn test(root: &Path, args: &[String]) -> Result<()> {
    build(root)?;
    step("rustfmt");
    run(cargo(root).args(["fmt", "--all", "--check"]))?;
    step("clippy (default members: every host crate, all targets)");
    run(cargo(root).args([
        "clippy",
        "--release",
        "--locked",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("clippy (the XDP program, for the BPF target)");
    // Through the rustup proxy: `+nightly` selects the toolchain that builds the program.
    run(Command::new("cargo")
        .current_dir(root)
        .args([
            "+nightly",
            "clippy",
            "--release",
            "--locked",
            "-p",
            "icmp-guard-ebpf",
        ])
        .args([
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--bins",
        ])
        .args(["--", "-D", "warnings"])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
        ))?;
    // What tests/tests/dist.rs checks, built before it runs (cached: a few seconds when
    // nothing changed), packed under the tightest umask a packager may have: the modes the
    // tests check must be dist's own, not the umask's.
    let binary = dist::build(root)?;
    // SAFETY: umask has no preconditions; the previous mask is put back below.
    let umask = unsafe { libc_umask(0o077) };
    let artefacts = dist::package(root, &binary);
    // SAFETY: as above.
    unsafe { libc_umask(umask) };
    dist::image(root, &artefacts?)?;
    step("tests: unit, host fixtures, BPF_PROG_TEST_RUN fixtures, end to end");
    // The validator's virtual environment first, where setup made one.
    run(cargo(root)
        .args(["test", "--release", "--locked"])
        .args(args)
        .env("PATH", setup::tools_path()))
}

fn require_root(task: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        bail!(
            "`cargo xtask {task}` loads XDP programs and creates network namespaces: run it as root"
        );
    }
    Ok(())
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
    #[link_name = "umask"]
    fn libc_umask(mask: u32) -> u32;
}

pub(crate) fn step(what: &str) {
    eprintln!("==> {what}");
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_looked_up_in_the_target_dir_cargo_uses() {
        // This test runs from `<target dir>/<profile>/deps/`, wherever CARGO_TARGET_DIR put it.
        let exe = std::env::current_exe().unwrap();
        let target_dir = exe.ancestors().nth(3).unwrap();
        assert_eq!(
            release_bin(&workspace_root(), "icmp-guard-demo").unwrap(),
            target_dir.join("release/icmp-guard-demo")
        );
    }
}
