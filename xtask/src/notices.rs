//! The third-party notices shipped with the static binary, which carries the code of every
//! crate it depends on, the Rust standard library, musl's libc and LLVM's libunwind (and,
//! in its embedded XDP object, the eBPF crates'): their licences ask that their notices go
//! with every copy.
//!
//! [`third_party`] writes `THIRD-PARTY-LICENSES`: every crate `icmp-guard` or its XDP program
//! depends on (from `cargo metadata` for the shipped target, normal dependencies only, so
//! proc-macro crates, which run only at build time, are listed too), each with its version, licence expression and the licence files its
//! package ships, identical texts printed once; then the runtime pieces of the musl target.
//! The standard library's own notices (it bundles other crates) are the toolchain's
//! `COPYRIGHT-library.html`, shipped beside it as [`RUST_STD_NOTICES`].

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// The crates whose dependencies are shipped: the CLI, and the XDP program it embeds (built by
/// its `build.rs` in a nested cargo, so not a dependency cargo knows of).
const ROOTS: [&str; 2] = ["icmp-guard", "icmp-guard-ebpf"];

/// The file name the standard library's notices are shipped under.
pub const RUST_STD_NOTICES: &str = "COPYRIGHT-rust-std.html";

/// Names of the files in a package that hold its licence or notices.
fn is_licence_file(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "LICENSE",
        "LICENCE",
        "COPYING",
        "COPYRIGHT",
        "NOTICE",
        "UNLICENSE",
    ]
    .iter()
    .any(|prefix| upper.starts_with(prefix))
}

/// One third-party crate.
struct Crate {
    name: String,
    version: String,
    licence: String,
    dir: PathBuf,
    licence_file: Option<PathBuf>,
}

/// The third-party crates shipped with the binary for `target`, by name and version.
fn crates(root: &Path, target: &str) -> Result<Vec<Crate>> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            target,
        ])
        .output()
        .context("running `cargo metadata`")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing `cargo metadata`")?;
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .context("no packages in `cargo metadata`")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let deps: BTreeMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .context("no resolve graph in `cargo metadata`")?
        .iter()
        .filter_map(|node| {
            let normal = node["deps"]
                .as_array()?
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
                })
                .filter_map(|dep| dep["pkg"].as_str())
                .collect();
            Some((node["id"].as_str()?, normal))
        })
        .collect();
    let mut todo: Vec<&str> = packages
        .iter()
        .filter(|(_, p)| {
            p["source"].is_null() && ROOTS.contains(&p["name"].as_str().unwrap_or_default())
        })
        .map(|(id, _)| *id)
        .collect();
    if todo.len() != ROOTS.len() {
        bail!("`cargo metadata` lacks one of {ROOTS:?}");
    }
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(deps.get(id).into_iter().flatten());
        }
    }
    let mut crates: Vec<Crate> = seen
        .into_iter()
        .filter_map(|id| packages.get(id))
        // Workspace members have no source; they are icmp-guard's own.
        .filter(|p| !p["source"].is_null())
        .map(|p| {
            let text = |key: &str| p[key].as_str().unwrap_or_default().to_owned();
            let manifest = PathBuf::from(text("manifest_path"));
            let dir = manifest.parent().unwrap_or(Path::new("")).to_path_buf();
            Crate {
                name: text("name"),
                version: text("version"),
                licence: p["license"].as_str().unwrap_or("(none given)").to_owned(),
                licence_file: p["license_file"].as_str().map(|f| dir.join(f)),
                dir,
            }
        })
        .collect();
    crates.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(crates)
}

/// The licence and notice files of `krate`, as (file name, text).
fn licence_texts(krate: &Crate) -> Result<Vec<(String, String)>> {
    let mut files: BTreeSet<PathBuf> = fs::read_dir(&krate.dir)
        .with_context(|| format!("listing {}", krate.dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| is_licence_file(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.extend(krate.licence_file.clone());
    files
        .into_iter()
        .map(|path| {
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            Ok((name, text))
        })
        .collect()
}

/// `THIRD-PARTY-LICENSES` for the binary of `target`, version `version`.
pub fn third_party(root: &Path, target: &str, version: &str) -> Result<String> {
    let crates = crates(root, target)?;
    let mut out = format!(
        "Third-party software in icmp-guard {version} ({target})\n\n\
         The icmp-guard binary is statically linked: it carries the code of the Rust crates\n\
         listed below (its XDP program, embedded in it, that of the eBPF crates among them),\n\
         of the Rust standard library (whose own notices are in {RUST_STD_NOTICES}, shipped\n\
         beside this file), of musl's libc and of LLVM's libunwind. Each is used under the\n\
         licence, or one of the licences, named; every licence text its package ships is\n\
         below.\n\n\
         == Crates ==\n\n"
    );
    // Identical texts are printed once, with the crates that ship them.
    let mut texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for krate in &crates {
        let files = licence_texts(krate)?;
        let id = format!("{} {}", krate.name, krate.version);
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        let _ = writeln!(
            out,
            "{id}: {} ({})",
            krate.licence,
            if names.is_empty() {
                "its package ships no licence file".into()
            } else {
                names.join(", ")
            }
        );
        for (name, text) in files {
            texts.entry(text).or_default().push(format!("{id}/{name}"));
        }
    }
    let _ = write!(
        out,
        "\n{} crates.\n\n== Runtime of the {target} target ==\n\n{MUSL}\n\n{LIBUNWIND}\n\n",
        crates.len()
    );
    let sysroot_licences = sysroot()?.join("share/doc/rust/licenses");
    for licence in ["Apache-2.0.txt", "LLVM-exception.txt", "MIT.txt"] {
        let path = sysroot_licences.join(licence);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        texts
            .entry(text)
            .or_default()
            .push(format!("the Rust toolchain's {licence}"));
    }
    out.push_str("== Licence texts ==\n");
    for (text, shipped_by) in texts {
        let _ = write!(
            out,
            "\n---- {} ----\n\n{}\n",
            shipped_by.join(", "),
            text.trim_end()
        );
    }
    Ok(out)
}

/// The standard library's notices, from the toolchain that builds the binary.
pub fn rust_std_notices() -> Result<PathBuf> {
    let path = sysroot()?.join("share/doc/rust/COPYRIGHT-library.html");
    if !path.is_file() {
        bail!(
            "{} is missing: the toolchain's rustc component ships it, so the toolchain is incomplete (reinstall it with rustup)",
            path.display()
        );
    }
    Ok(path)
}

fn sysroot() -> Result<PathBuf> {
    Ok(PathBuf::from(
        crate::setup::rustc(&["--print", "sysroot"])?.trim(),
    ))
}

/// musl's notice, as its `COPYRIGHT` file words it (the target's `libc.a` ships without it).
const MUSL: &str = "musl libc (linked in from the Rust target's self-contained libc.a):
MIT licence, \"Copyright (c) 2005-2020 Rich Felker, et al.\", with the MIT licence text below
(the Rust toolchain's MIT.txt, whose copyright line is the only part that differs). musl's
COPYRIGHT file also credits code under other permissive terms (public domain, BSD-style);
see https://git.musl-libc.org/cgit/musl/tree/COPYRIGHT.";

/// libunwind's notice.
const LIBUNWIND: &str = "libunwind (LLVM project, linked in from the Rust target's \
self-contained libunwind.a): Apache-2.0 WITH LLVM-exception, the texts below (the Rust \
toolchain's Apache-2.0.txt and LLVM-exception.txt).";
