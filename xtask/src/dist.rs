//! `cargo xtask dist`: what is shipped, built from the workspace with no toolchain needed where
//! it is installed.
//!
//! - the static binary: `icmp-guard` for `x86_64-unknown-linux-musl` (its `build.rs` embeds
//!   the XDP object as for any target), refused unless its ELF header has no interpreter;
//! - `<target dir>/dist/icmp-guard-<version>-x86_64-linux-musl.tar.gz`: the binary, the man
//!   page and completions the binary generates, the systemd unit, the example config and the
//!   licences, in one folder of that name;
//! - `<target dir>/dist/icmp-guard_<version>_amd64.deb`, built with `dpkg-deb` from a tree
//!   staged at the FHS paths of [`deb_package`]'s table, the config a conffile;
//! - with `--image`, the container image `localhost/icmp-guard:<version>` from
//!   `contrib/container/Containerfile`, the static binary copied in (`podman build`).
//!
//! Each step rebuilds its output from scratch: cargo's cache makes the build itself free when
//! nothing changed, and the rest takes about a second.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{cargo, run, step, target_dir};

/// The target of the shipped binary.
pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// The platform in artefact names.
const PLATFORM: &str = "x86_64-linux-musl";
/// The third-party notices' file name (see `notices`).
const NOTICES: &str = "THIRD-PARTY-LICENSES";
/// The container image's name; its tag is the version.
pub const IMAGE: &str = "localhost/icmp-guard";

/// What `dist` made.
pub struct Artefacts {
    pub binary: PathBuf,
    pub tarball: PathBuf,
    pub deb: PathBuf,
}

pub fn dist(root: &Path) -> Result<Artefacts> {
    package(root, &build(root)?)
}

/// Builds the static binary; returns its path.
pub fn build(root: &Path) -> Result<PathBuf> {
    let target_dir = target_dir(root)?;
    crate::setup::musl_target(TARGET)?;
    step(&format!("building the static icmp-guard for {TARGET}"));
    // Stripped, as Debian ships binaries (a panic still names its file and line): a sixth
    // smaller (6.1 to 5.1 MB when this was written).
    run(cargo(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "icmp-guard",
        "--target",
        TARGET,
        "--config",
        "profile.release.strip=\"symbols\"",
    ]))?;
    let binary = target_dir.join(TARGET).join("release/icmp-guard");
    ensure_static(&binary)?;
    Ok(binary)
}

/// Packs the static `binary` [`build`] made into the tarball and the .deb, every file and
/// folder with its mode set here, whatever the umask.
pub fn package(root: &Path, binary: &Path) -> Result<Artefacts> {
    let version = version(root)?;
    let out = target_dir(root)?.join("dist");
    // A fresh folder each time: nothing stale is packaged.
    let stage = out.join("stage");
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let generated = stage.join("generated");
    generate(binary, &generated)?;
    // The notices of the third-party code the binary carries, beside what it generates.
    let notices = generated.join(NOTICES);
    fs::write(
        &notices,
        crate::notices::third_party(root, TARGET, &version)?,
    )
    .with_context(|| format!("writing {}", notices.display()))?;
    let std_notices = generated.join(crate::notices::RUST_STD_NOTICES);
    install(&crate::notices::rust_std_notices()?, &std_notices, 0o644)?;

    let pages = man_pages(&generated)?;
    let tarball = tarball(root, &stage, &version, binary, &pages)?;

    step("building the .deb");
    let deb = out.join(format!("icmp-guard_{version}_amd64.deb"));
    deb_package(
        root,
        &version,
        binary,
        &generated,
        &pages,
        &stage.join("deb"),
        &deb,
    )?;
    Ok(Artefacts {
        binary: binary.to_path_buf(),
        tarball,
        deb,
    })
}

/// Packs the tarball from the files of `stage/generated` (its man `pages` among them), the
/// `binary` and the repository's; returns its path, beside `stage`.
fn tarball(
    root: &Path,
    stage: &Path,
    version: &str,
    binary: &Path,
    pages: &[(PathBuf, String)],
) -> Result<PathBuf> {
    let generated = stage.join("generated");
    step("packing the tarball");
    let name = format!("icmp-guard-{version}-{PLATFORM}");
    let tree = stage.join(&name);
    let files: [(PathBuf, &str, u32); 12] = [
        (binary.to_path_buf(), "icmp-guard", 0o755),
        (
            generated.join("icmp-guard.bash"),
            "completions/icmp-guard.bash",
            0o644,
        ),
        (
            generated.join("_icmp-guard"),
            "completions/_icmp-guard",
            0o644,
        ),
        (
            generated.join("icmp-guard.fish"),
            "completions/icmp-guard.fish",
            0o644,
        ),
        (
            root.join("contrib/icmp-guard.service"),
            "systemd/icmp-guard.service",
            0o644,
        ),
        (
            root.join("contrib/icmp-guard.toml"),
            "icmp-guard.toml",
            0o644,
        ),
        (root.join("LICENSE-MIT"), "LICENSE-MIT", 0o644),
        (root.join("LICENSE-APACHE"), "LICENSE-APACHE", 0o644),
        (root.join("LICENSE-GPL-2.0"), "LICENSE-GPL-2.0", 0o644),
        (root.join("CHANGELOG.md"), "CHANGELOG.md", 0o644),
        (generated.join(NOTICES), NOTICES, 0o644),
        (
            generated.join(crate::notices::RUST_STD_NOTICES),
            crate::notices::RUST_STD_NOTICES,
            0o644,
        ),
    ];
    for (from, to, mode) in &files {
        install(from, &tree.join(to), *mode)?;
    }
    for (page, name) in pages {
        install(page, &tree.join("man").join(name), 0o644)?;
    }
    open_dirs(&tree)?;
    let tarball = stage
        .parent()
        .context("the stage has a folder")?
        .join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
        .arg(&tarball)
        .arg("-C")
        .arg(stage)
        .arg(&name))?;
    set_mode(&tarball, 0o644)?;
    Ok(tarball)
}

/// `podman build` of the image around the static binary of `artefacts`.
pub fn image(root: &Path, artefacts: &Artefacts) -> Result<String> {
    let version = version(root)?;
    let tag = format!("{IMAGE}:{version}");
    step(&format!("building the container image {tag}"));
    // The build context is a folder holding the binary alone, so nothing else is sent.
    let context = artefacts
        .tarball
        .parent()
        .context("the tarball has a folder")?
        .join("image-context");
    if context.exists() {
        fs::remove_dir_all(&context)?;
    }
    install(&artefacts.binary, &context.join("icmp-guard"), 0o755)?;
    // The notices the binary's licences ask to go with it (see `notices`).
    let generated = artefacts
        .tarball
        .parent()
        .context("the tarball has a folder")?
        .join("stage/generated");
    for name in [NOTICES, crate::notices::RUST_STD_NOTICES] {
        install(&generated.join(name), &context.join(name), 0o644)?;
    }
    // The parent of the lock folder, copied in as an empty folder (no shell to mkdir with).
    fs::create_dir_all(context.join("run"))?;
    run(Command::new("podman")
        .args(["build", "--quiet", "--tag", &tag, "--file"])
        .arg(root.join("contrib/container/Containerfile"))
        .arg(&context))?;
    Ok(tag)
}

/// The workspace's version, from the CLI crate's metadata.
fn version(root: &Path) -> Result<String> {
    let manifest =
        fs::read_to_string(root.join("Cargo.toml")).context("reading the workspace manifest")?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_owned)
        .context("no `version = \"...\"` in [workspace.package] of Cargo.toml")
}

/// Fails unless `binary` is an ELF without a `PT_INTERP` program header: nothing for a
/// dynamic loader to do, so it runs on any x86_64 Linux whatever its libc.
fn ensure_static(binary: &Path) -> Result<()> {
    let elf = fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    match interpreter(&elf) {
        Ok(None) => Ok(()),
        Ok(Some(interp)) => bail!(
            "{} asks for the dynamic loader {interp}: it is not static (is the {TARGET} target's crt-static off?)",
            binary.display()
        ),
        Err(why) => bail!("{} is not a 64-bit ELF: {why}", binary.display()),
    }
}

/// The `PT_INTERP` path of a little-endian ELF64 file, if it has one.
pub fn interpreter(elf: &[u8]) -> Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    let field = |at: usize, len: usize| -> Result<u64> {
        let bytes = elf.get(at..at + len).context("truncated")?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    ensure!(elf.starts_with(b"\x7fELF\x02\x01"), "no ELF64 LSB header");
    let phoff = usize::try_from(field(0x20, 8)?)?;
    let phentsize = usize::try_from(field(0x36, 2)?)?;
    let phnum = usize::try_from(field(0x38, 2)?)?;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if field(ph, 4)? == u64::from(PT_INTERP) {
            let offset = usize::try_from(field(ph + 8, 8)?)?;
            let size = usize::try_from(field(ph + 32, 8)?)?;
            let path = elf.get(offset..offset + size).context("truncated")?;
            return Ok(Some(
                String::from_utf8_lossy(path)
                    .trim_end_matches('\0')
                    .to_owned(),
            ));
        }
    }
    Ok(None)
}

/// The man pages (in `dir/man/`) and completions, as the binary itself writes them.
fn generate(binary: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    run(Command::new(binary)
        .args(["generate", "man", "--dir"])
        .arg(dir.join("man"))
        .stdout(std::process::Stdio::null()))?;
    let outputs: [(&[&str], &str); 3] = [
        (&["generate", "completions", "bash"], "icmp-guard.bash"),
        (&["generate", "completions", "zsh"], "_icmp-guard"),
        (&["generate", "completions", "fish"], "icmp-guard.fish"),
    ];
    for (args, file) in outputs {
        let mut cmd = Command::new(binary);
        cmd.args(args);
        let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
        ensure!(
            out.status.success() && !out.stdout.is_empty(),
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(dir.join(file), &out.stdout)?;
    }
    Ok(())
}

/// The man pages [`generate`] wrote: each path and file name, sorted by name.
fn man_pages(generated: &Path) -> Result<Vec<(PathBuf, String)>> {
    let dir = generated.join("man");
    let mut pages = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .context("a page has a name")?
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".1") {
            pages.push((path, name));
        }
    }
    pages.sort_by(|a, b| a.1.cmp(&b.1));
    ensure!(
        pages.iter().any(|(_, name)| name == "icmp-guard.1"),
        "`icmp-guard generate man --dir` wrote no icmp-guard.1 in {}",
        dir.display()
    );
    Ok(pages)
}

/// Copies `from` to `to` with `mode`, creating `to`'s folder.
fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = to.parent().context("a destination has a folder")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Gives `path` the mode `mode`.
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Writes `text` to `to` with `mode`, creating `to`'s folder.
fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = to.parent().context("a destination has a folder")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    fs::write(to, text).with_context(|| format!("writing {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Gives every folder under `dir` (and `dir`) mode 0755: a folder is made with the mode the
/// umask leaves, and a packager's may be 027 or 077, which would ship `/usr/share/doc/...`
/// that only root can read (and which `dpkg-deb` refuses for `DEBIAN`). Files get theirs
/// from [`install`] and [`write`].
fn open_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            open_dirs(&entry.path())?;
        }
    }
    Ok(())
}

/// Stages the package's tree in `tree` and builds `deb` from it.
fn deb_package(
    root: &Path,
    version: &str,
    binary: &Path,
    generated: &Path,
    pages: &[(PathBuf, String)],
    tree: &Path,
    deb: &Path,
) -> Result<()> {
    /// What a file of the package is made of.
    enum Source {
        Copy(PathBuf),
        Gzip(PathBuf),
        Text(String),
    }
    let mut files: Vec<(Source, String, u32)> = vec![
        (
            Source::Copy(binary.to_path_buf()),
            "usr/bin/icmp-guard".into(),
            0o755,
        ),
        (
            Source::Copy(root.join("contrib/icmp-guard.service")),
            "usr/lib/systemd/system/icmp-guard.service".into(),
            0o644,
        ),
        (
            Source::Copy(root.join("contrib/icmp-guard.toml")),
            "etc/icmp-guard/icmp-guard.toml".into(),
            0o644,
        ),
        (
            Source::Copy(generated.join("icmp-guard.bash")),
            "usr/share/bash-completion/completions/icmp-guard".into(),
            0o644,
        ),
        (
            Source::Copy(generated.join("_icmp-guard")),
            "usr/share/zsh/vendor-completions/_icmp-guard".into(),
            0o644,
        ),
        (
            Source::Copy(generated.join("icmp-guard.fish")),
            "usr/share/fish/vendor_completions.d/icmp-guard.fish".into(),
            0o644,
        ),
        (
            Source::Text(copyright(root)?),
            "usr/share/doc/icmp-guard/copyright".into(),
            0o644,
        ),
        // The project's changelog (Markdown: not the Debian format lintian expects of a
        // native package's, which needs a maintainer address the project does not have).
        (
            Source::Gzip(root.join("CHANGELOG.md")),
            "usr/share/doc/icmp-guard/changelog.gz".into(),
            0o644,
        ),
    ];
    for name in [NOTICES, crate::notices::RUST_STD_NOTICES] {
        let to = format!("usr/share/doc/icmp-guard/{name}");
        files.push((Source::Copy(generated.join(name)), to, 0o644));
    }
    files.extend(pages.iter().map(|(page, name)| {
        (
            Source::Gzip(page.clone()),
            format!("usr/share/man/man1/{name}.gz"),
            0o644,
        )
    }));
    for (source, to, mode) in &files {
        let dest = tree.join(to);
        match source {
            Source::Copy(from) => install(from, &dest, *mode)?,
            Source::Gzip(from) => {
                let plain = dest.with_extension("");
                install(from, &plain, *mode)?;
                // -n: no name or time stamp, so the same page gives the same bytes.
                run(Command::new("gzip").args(["-9", "-n"]).arg(&plain))?;
            }
            Source::Text(text) => write(&dest, text, *mode)?,
        }
    }
    let installed_kib = files
        .iter()
        .map(|(_, to, _)| fs::metadata(tree.join(to)).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?
        .div_ceil(1024);
    control_files(&tree.join("DEBIAN"), version, installed_kib)?;
    open_dirs(tree)?;
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(tree)
        .arg(deb))?;
    set_mode(deb, 0o644)
}

/// The package's `DEBIAN` folder: its control file and conffiles.
fn control_files(control: &Path, version: &str, installed_kib: u64) -> Result<()> {
    fs::create_dir_all(control)?;
    // Maintainer carries no e-mail address: the project has none to give, and dpkg accepts
    // the field without one. No maintainer scripts: the service is neither enabled nor
    // started (the example config names eth0 and eth1; edit it first).
    write(
        &control.join("control"),
        &format!(
            "Package: icmp-guard\n\
             Version: {version}\n\
             Architecture: amd64\n\
             Maintainer: The icmp-guard developers\n\
             Installed-Size: {installed_kib}\n\
             Section: net\n\
             Priority: optional\n\
             Description: XDP ICMP rate limiter: attach, tune and observe\n \
             An XDP program that drops malformed and hostile ICMP and ICMPv6 and rate\n \
             limits the rest per source prefix, with a CLI over its pinned state and a\n \
             service with Prometheus metrics. Statically linked; needs Linux 5.18+.\n"
        ),
        0o644,
    )?;
    // The config is the admin's: dpkg keeps their edits on upgrade and on `dpkg -r`.
    write(
        &control.join("conffiles"),
        "/etc/icmp-guard/icmp-guard.toml\n",
        0o644,
    )?;
    Ok(())
}

/// `/usr/share/doc/icmp-guard/copyright` in the machine-readable format (DEP-5): MIT and
/// Apache-2.0 whole, and for the XDP programs embedded in the binary, MIT or the GPL-2.0,
/// whose text Debian keeps in `/usr/share/common-licenses`.
fn copyright(root: &Path) -> Result<String> {
    let indent = |text: &str| {
        text.lines()
            .map(|l| {
                if l.trim().is_empty() {
                    " .".to_owned()
                } else {
                    format!(" {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mit = fs::read_to_string(root.join("LICENSE-MIT"))?;
    let apache = fs::read_to_string(root.join("LICENSE-APACHE"))?;
    Ok(format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: icmp-guard\n\
         Comment: the static binary /usr/bin/icmp-guard also carries third-party code: Rust\n \
         crates, the Rust standard library, musl and libunwind. THIRD-PARTY-LICENSES, in\n \
         this folder, names each with its licence and holds the licence texts; the\n \
         standard library's own notices are COPYRIGHT-rust-std.html.\n\n\
         Files: *\n\
         Copyright: 2026 The icmp-guard developers\n\
         License: Expat or Apache-2.0\n\n\
         Files: icmp-guard-ebpf/*\n\
         Copyright: 2026 The icmp-guard developers\n\
         License: Expat or GPL-2\n\
         Comment: the XDP programs embedded in /usr/bin/icmp-guard, which tell the kernel\n \
         \"Dual MIT/GPL\"; the icmp-guard-common code compiled into them comes under MIT.\n\n\
         License: Expat\n{}\n\n\
         License: Apache-2.0\n{}\n\n\
         License: GPL-2\n \
         On Debian systems, the complete text of the GNU General Public License version 2\n \
         can be found in /usr/share/common-licenses/GPL-2.\n",
        indent(&mit),
        indent(&apache)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with the program headers `phdrs` (type, offset, size).
    fn elf(phdrs: &[(u32, u64, u64)], tail: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..6].copy_from_slice(b"\x7fELF\x02\x01");
        out[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        out[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (kind, offset, size) in phdrs {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            out.extend(ph);
        }
        out.extend(tail);
        out
    }

    /// What [`interpreter`] makes of a file.
    #[derive(Debug, PartialEq)]
    enum Read {
        Static,
        Dynamic(String),
        Refused,
    }

    #[test]
    fn the_interpreter_is_read_from_program_headers() {
        let interp = b"/lib64/ld-linux-x86-64.so.2\0";
        let at = 64 + 2 * 56;
        let cases: [(&str, Vec<u8>, Read); 4] = [
            (
                "static: a load segment only",
                elf(&[(1, 0, 64)], &[]),
                Read::Static,
            ),
            (
                "dynamic: PT_INTERP after a load segment",
                elf(&[(1, 0, 64), (3, at, interp.len() as u64)], interp),
                Read::Dynamic("/lib64/ld-linux-x86-64.so.2".into()),
            ),
            ("not an ELF", b"#!/bin/sh\n".to_vec(), Read::Refused),
            (
                "truncated program headers",
                elf(&[(1, 0, 64)], &[])[..66].to_vec(),
                Read::Refused,
            ),
        ];
        for (what, bytes, expected) in cases {
            let got = match interpreter(&bytes) {
                Ok(None) => Read::Static,
                Ok(Some(path)) => Read::Dynamic(path),
                Err(_) => Read::Refused,
            };
            assert_eq!(got, expected, "{what}");
        }
    }
}
