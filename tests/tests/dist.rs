//! What `cargo xtask dist` ships, checked as it is shipped: the static binary (no dynamic
//! dependency, and it guards the lab), the tarball, the `.deb` installed into this system and
//! removed again, the container image's filesystem run under `chroot` against the lab, and
//! the Kubernetes manifests validated offline against the Kubernetes schemas.
//!
//! The artefacts are built before the tests by `cargo xtask test` (or `cargo xtask dist
//! --image`), under `<target dir>/dist/`; a test finding one missing says which command
//! makes it.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use icmp_guard_tests::lab::{
    Daemon, Lab, Scratch, bucket_allows, counter, eventually, run, stderr_of, unique, workspace_bin,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TARGET: &str = "x86_64-unknown-linux-musl";
const IMAGE: &str = "localhost/icmp-guard";
/// The Kubernetes release the manifests are checked against (one kubernetes-validate ships).
const KUBERNETES: &str = "1.31.0";

/// Files the `.deb` installs besides the man pages: (path, conffile). The README's table
/// says the same.
const DEB_FILES: [(&str, bool); 10] = [
    ("/usr/bin/icmp-guard", false),
    ("/usr/lib/systemd/system/icmp-guard.service", false),
    ("/etc/icmp-guard/icmp-guard.toml", true),
    ("/usr/share/bash-completion/completions/icmp-guard", false),
    ("/usr/share/zsh/vendor-completions/_icmp-guard", false),
    (
        "/usr/share/fish/vendor_completions.d/icmp-guard.fish",
        false,
    ),
    ("/usr/share/doc/icmp-guard/copyright", false),
    ("/usr/share/doc/icmp-guard/changelog.gz", false),
    ("/usr/share/doc/icmp-guard/THIRD-PARTY-LICENSES", false),
    ("/usr/share/doc/icmp-guard/COPYRIGHT-rust-std.html", false),
];

/// What the third-party notices hold, in every artefact: a crate linked into the CLI and one
/// built into the XDP program (each at the start of a line, any version), the runtime of the
/// musl target, and the texts.
const NOTICES_HOLD: [&str; 5] = [
    "\naya 0.",
    "\naya-ebpf 0.",
    "musl libc",
    "libunwind (LLVM project",
    "== Licence texts ==",
];

/// Fails unless `text`, the third-party notices, holds [`NOTICES_HOLD`].
fn check_notices(text: &str) {
    for line in NOTICES_HOLD {
        assert!(text.contains(line), "the notices lack {line:?}");
    }
}

/// The target directory this test was built in (`<target>/release/deps/dist-*`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// An artefact of `cargo xtask dist`, which must exist.
fn artefact(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask dist --image` (or `cargo xtask test`, which does) first",
        path.display()
    );
    path
}

fn static_binary() -> PathBuf {
    artefact(target_dir().join(TARGET).join("release/icmp-guard"))
}

fn tarball() -> PathBuf {
    artefact(
        target_dir()
            .join("dist")
            .join(format!("icmp-guard-{VERSION}-x86_64-linux-musl.tar.gz")),
    )
}

fn deb() -> PathBuf {
    artefact(
        target_dir()
            .join("dist")
            .join(format!("icmp-guard_{VERSION}_amd64.deb")),
    )
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).unwrap().stdout).unwrap()
}

/// The man pages the dist binary writes (`generate man --dir`), by file name: the main page
/// and one per subcommand.
fn man_pages() -> BTreeSet<String> {
    let scratch = Scratch::new().unwrap();
    let written = stdout(
        Command::new(static_binary())
            .args(["generate", "man", "--dir"])
            .arg(&scratch.path),
    );
    let pages: BTreeSet<String> = written
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert!(
        pages.contains("icmp-guard.1") && pages.contains("icmp-guard-attach.1"),
        "{pages:?}"
    );
    pages
}

#[test]
fn the_static_binary_has_no_dynamic_dependencies() {
    let host_build = workspace_bin("icmp-guard").unwrap();
    // The host build (glibc) is the row that proves each check can see a dynamic binary.
    let cases: [(&str, PathBuf, bool); 2] = [
        ("the dist binary", static_binary(), true),
        ("the host build", host_build, false),
    ];
    for (what, binary, is_static) in cases {
        let elf = std::fs::read(&binary).unwrap();
        assert_eq!(
            !has_interpreter(&elf),
            is_static,
            "{what}: PT_INTERP in {}",
            binary.display()
        );
        // ldd prints "not a dynamic executable" for a static binary, "statically linked"
        // for a static PIE; for a dynamic one it lists libc.
        let ldd = Command::new("ldd").arg(&binary).output().unwrap();
        let ldd = format!(
            "{}{}",
            String::from_utf8_lossy(&ldd.stdout),
            String::from_utf8_lossy(&ldd.stderr)
        );
        let ldd_static =
            ldd.contains("not a dynamic executable") || ldd.contains("statically linked");
        assert_eq!(ldd_static, is_static, "{what}: ldd says {ldd}");
        let file = stdout(Command::new("file").arg("-b").arg(&binary));
        assert_eq!(
            file.contains("static"),
            is_static,
            "{what}: file says {file}"
        );
        assert!(file.contains("x86-64"), "{what}: {file}");
        // Stripped as Debian ships binaries; the host build keeps its symbols.
        assert_eq!(
            file.contains(", stripped"),
            is_static,
            "{what}: file says {file}"
        );
    }
    // It runs, and says which version it is.
    let version = stdout(Command::new(static_binary()).arg("--version"));
    assert_eq!(version.trim(), format!("icmp-guard {VERSION}"));
}

/// Whether a little-endian ELF64 file has a `PT_INTERP` program header.
fn has_interpreter(elf: &[u8]) -> bool {
    let word = |at: usize, len: usize| {
        elf[at..at + len]
            .iter()
            .rev()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    assert!(elf.starts_with(b"\x7fELF\x02\x01"), "not an ELF64 LSB file");
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    (0..phnum).any(|i| word(phoff + i * phentsize, 4) == 3)
}

#[test]
fn the_tarball_holds_the_binary_docs_unit_config_and_licences() {
    let top = format!("icmp-guard-{VERSION}-x86_64-linux-musl");
    let listing = stdout(Command::new("tar").arg("-tzf").arg(tarball()));
    let files: BTreeSet<&str> = listing.lines().filter(|l| !l.ends_with('/')).collect();
    let expected: BTreeSet<String> = [
        "icmp-guard",
        "completions/icmp-guard.bash",
        "completions/_icmp-guard",
        "completions/icmp-guard.fish",
        "systemd/icmp-guard.service",
        "icmp-guard.toml",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "LICENSE-GPL-2.0",
        "CHANGELOG.md",
        "THIRD-PARTY-LICENSES",
        "COPYRIGHT-rust-std.html",
    ]
    .iter()
    .map(|f| format!("{top}/{f}"))
    .chain(man_pages().iter().map(|page| format!("{top}/man/{page}")))
    .collect();
    assert_eq!(
        files,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    check_modes(
        &stdout(Command::new("tar").arg("-tvzf").arg(tarball())),
        "/icmp-guard",
    );

    let scratch = Scratch::new().unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(tarball())
        .arg("-C")
        .arg(&scratch.path))
    .unwrap();
    let tree = scratch.path.join(&top);
    // Each file is what it should be: (file in the tarball, the same bytes as, or a line it holds).
    let same: [(&str, PathBuf); 6] = [
        ("icmp-guard", static_binary()),
        (
            "systemd/icmp-guard.service",
            repo().join("contrib/icmp-guard.service"),
        ),
        ("icmp-guard.toml", repo().join("contrib/icmp-guard.toml")),
        ("LICENSE-MIT", repo().join("LICENSE-MIT")),
        ("LICENSE-APACHE", repo().join("LICENSE-APACHE")),
        ("LICENSE-GPL-2.0", repo().join("LICENSE-GPL-2.0")),
    ];
    for (file, source) in same {
        assert_eq!(
            std::fs::read(tree.join(file)).unwrap(),
            std::fs::read(&source).unwrap(),
            "{file} differs from {}",
            source.display()
        );
    }
    let holds: [(&str, &str); 5] = [
        ("man/icmp-guard.1", ".TH icmp-guard 1"),
        ("man/icmp-guard-attach.1", ".TH icmp-guard-attach 1"),
        ("completions/icmp-guard.bash", "complete -F _icmp__guard"),
        ("completions/_icmp-guard", "#compdef icmp-guard"),
        ("completions/icmp-guard.fish", "complete -c icmp-guard"),
    ];
    for (file, needle) in holds {
        let text = std::fs::read_to_string(tree.join(file)).unwrap();
        assert!(text.contains(needle), "{file} lacks {needle:?}");
    }
    check_notices(&std::fs::read_to_string(tree.join("THIRD-PARTY-LICENSES")).unwrap());
    assert!(
        std::fs::read_to_string(tree.join("COPYRIGHT-rust-std.html"))
            .unwrap()
            .contains("Copyright notices for The Rust Standard Library")
    );
}

/// Every entry of a `tar -tv` listing (as `dpkg-deb -c` prints too) owned by root (by name or
/// number), with the mode an installed file should have: folders 0755, `executable` 0755,
/// the rest 0644. (`cargo xtask test` builds them under umask 077, so no mode comes from
/// the umask.)
fn check_modes(listing: &str, executable: &str) {
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[fields.len() - 1]);
        let wanted = if path.ends_with('/') {
            "drwxr-xr-x"
        } else if path.ends_with(executable) {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, wanted, "{line}");
        assert!(["root/root", "0/0"].contains(&owner), "{line}");
    }
}

/// Attach, ping answered, a flood cut, detach: the lab's lifecycle with `lab`'s CLI.
fn guards(lab: &Lab) {
    const RATE: u64 = 10;
    const BURST: u64 = 20;
    const FLOOD: u64 = 1000;
    let started = Instant::now();
    let iface = lab.guarded_if.as_str();
    let out = lab
        .cli_ok(&[
            "attach",
            iface,
            "--echo-rate",
            &RATE.to_string(),
            "--echo-burst",
            &BURST.to_string(),
        ])
        .unwrap();
    assert!(out.contains(&format!("attached to {iface}")), "{out}");
    assert!(lab.guarded_has_xdp());
    assert_eq!(lab.ping(3, "0.2", 10).unwrap(), 3);
    lab.inject(&["--kind", "echo", "--count", &FLOOD.to_string()])
        .unwrap();
    let stats = lab.stats().unwrap();
    let (passed, dropped) = (
        counter(&stats, "passed"),
        counter(&stats, "dropped_rate_source"),
    );
    assert_eq!(passed + dropped, FLOOD + 3, "{stats}");
    let ceiling = bucket_allows(BURST, RATE, started);
    assert!(passed <= ceiling, "passed {passed} > {ceiling}: {stats}");
    lab.cli_ok(&["detach", iface]).unwrap();
    assert!(!lab.guarded_has_xdp());
}

#[test]
fn the_static_binary_guards_the_lab() {
    let lab = Lab::with_cli(static_binary()).unwrap();
    guards(&lab);
}

/// The package installed on this system; purged on drop, so a failing test leaves nothing.
struct Installed;

impl Installed {
    fn new(deb: &Path) -> Self {
        // Refuse to touch an installation that is not the test's: a package installed here
        // (the test would purge it), or a binary no package installed (it would overwrite it).
        let status = Command::new("dpkg-query")
            .args(["-W", "-f", "${Status}", "icmp-guard"])
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&status.stdout);
        // The last word is the state: not-installed (or nothing) means absent.
        let state = status.split_whitespace().last().unwrap_or("not-installed");
        assert!(
            state == "not-installed",
            "the icmp-guard package is on this system ({status}): this test installs and purges it; remove it first (`dpkg --purge icmp-guard`) to run the test"
        );
        assert!(
            !Path::new("/usr/bin/icmp-guard").exists(),
            "/usr/bin/icmp-guard exists and no icmp-guard package installed it: this test would overwrite it; move it away to run the test"
        );
        run(Command::new("dpkg").arg("-i").arg(deb)).unwrap();
        Self
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "icmp-guard"])
            .output();
    }
}

#[test]
fn the_deb_installs_at_fhs_paths_and_removes_every_file() {
    let installed = Installed::new(&deb());
    let listed = stdout(Command::new("dpkg").args(["-L", "icmp-guard"]));
    let files: BTreeSet<&str> = listed.lines().filter(|p| Path::new(p).is_file()).collect();
    let pages: Vec<String> = man_pages()
        .iter()
        .map(|page| format!("/usr/share/man/man1/{page}.gz"))
        .collect();
    let expected: BTreeSet<&str> = DEB_FILES
        .iter()
        .map(|(p, _)| *p)
        .chain(pages.iter().map(String::as_str))
        .collect();
    assert_eq!(files, expected, "dpkg -L:\n{listed}");
    check_modes(
        &stdout(Command::new("dpkg-deb").arg("-c").arg(deb())),
        "/usr/bin/icmp-guard",
    );
    let changelog = stdout(Command::new("zcat").arg("/usr/share/doc/icmp-guard/changelog.gz"));
    assert_eq!(
        changelog,
        std::fs::read_to_string(repo().join("CHANGELOG.md")).unwrap()
    );
    let status = stdout(Command::new("dpkg").args(["-s", "icmp-guard"]));
    for (path, conffile) in DEB_FILES {
        assert_eq!(
            status.contains(&format!(" {path} ")),
            conffile,
            "{path} as a conffile in:\n{status}"
        );
    }
    // The installed binary is the static one, and the unit starts it from there.
    assert_eq!(
        std::fs::read("/usr/bin/icmp-guard").unwrap(),
        std::fs::read(static_binary()).unwrap()
    );
    let out = stdout(Command::new("/usr/bin/icmp-guard").args([
        "config",
        "check",
        "/etc/icmp-guard/icmp-guard.toml",
    ]));
    assert!(out.contains("eth0:"), "{out}");
    let copyright = std::fs::read_to_string("/usr/share/doc/icmp-guard/copyright").unwrap();
    // The XDP programs' own licence, as their `license` section tells the kernel.
    // (Debian's short name for the MIT licence is Expat.)
    for licence in ["License: Expat or Apache-2.0", "License: Expat or GPL-2"] {
        assert!(copyright.contains(licence), "{licence}: {copyright}");
    }
    // And where the third-party code's notices are.
    assert!(copyright.contains("THIRD-PARTY-LICENSES"), "{copyright}");
    check_notices(
        &std::fs::read_to_string("/usr/share/doc/icmp-guard/THIRD-PARTY-LICENSES").unwrap(),
    );

    // `dpkg -r` removes every file but the conffile, which dpkg keeps for the admin; purging
    // removes that too.
    run(Command::new("dpkg").args(["-r", "icmp-guard"])).unwrap();
    for path in &expected {
        let conffile = DEB_FILES.contains(&(*path, true));
        assert_eq!(Path::new(path).exists(), conffile, "{path} after dpkg -r");
    }
    run(Command::new("dpkg").args(["--purge", "icmp-guard"])).unwrap();
    for path in &expected {
        assert!(!Path::new(path).exists(), "{path} after dpkg --purge");
    }
    for dir in ["/etc/icmp-guard", "/usr/share/doc/icmp-guard"] {
        assert!(!Path::new(dir).exists(), "{dir} after dpkg --purge");
    }
    drop(installed);
}

/// The image's filesystem, exported from a container created (never started) from it, with
/// the mounts its service needs; unmounted and removed on drop.
struct Rootfs {
    path: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Rootfs {
    fn export(image: &str) -> Self {
        let container = unique('x');
        run(Command::new("podman").args(["create", "--name", &container, image])).unwrap();
        let path = std::env::temp_dir().join(format!("icmp-guard-rootfs-{container}"));
        std::fs::create_dir_all(&path).unwrap();
        let rootfs = Self {
            path,
            mounts: Vec::new(),
        };
        let export = Command::new("sh")
            .arg("-c")
            .arg(r#"podman export "$1" | tar -x -C "$2""#)
            .args(["sh", &container])
            .arg(&rootfs.path)
            .output();
        let _ = Command::new("podman").args(["rm", &container]).output();
        let export = export.unwrap();
        assert!(export.status.success(), "{}", stderr_of(&export));
        rootfs
    }

    /// Mounts with `args` (e.g. `-t proc proc`) on `at` inside the rootfs.
    fn mount(&mut self, args: &[&str], source: &Path, at: &str) {
        let target = self.path.join(at);
        std::fs::create_dir_all(&target).unwrap();
        run(Command::new("mount").args(args).arg(source).arg(&target)).unwrap();
        self.mounts.push(target);
    }

    /// Every regular file in the rootfs, relative to it.
    fn files(&self) -> BTreeSet<String> {
        let out = stdout(
            Command::new("find")
                .arg(&self.path)
                .args(["-xdev", "-type", "f", "-printf", "/%P\n"]),
        );
        out.lines().map(str::to_owned).collect()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let mut all_gone = true;
        for target in self.mounts.iter().rev() {
            all_gone &= Command::new("umount")
                .arg(target)
                .status()
                .is_ok_and(|s| s.success());
        }
        // Never remove through a mount that is still there (it may be the lab's bpffs).
        if all_gone {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one image's life, step by step")]
fn the_image_holds_the_binary_and_its_notices_and_its_entrypoint_guards_the_lab() {
    let image = format!("{IMAGE}:{VERSION}");
    let inspect = stdout(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &image,
    ]));
    let config: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let command: Vec<String> = ["Entrypoint", "Cmd"]
        .iter()
        .flat_map(|k| config[k].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        command,
        [
            "/usr/bin/icmp-guard",
            "run",
            "--config",
            "/etc/icmp-guard/icmp-guard.toml"
        ]
    );

    let lab = Lab::with_cli(static_binary()).unwrap();
    let mut rootfs = Rootfs::export(&image);
    // FROM scratch: the static binary and the notices its licences ask for, nothing else.
    assert_eq!(
        rootfs.files(),
        BTreeSet::from([
            "/usr/bin/icmp-guard".to_owned(),
            "/usr/share/doc/icmp-guard/THIRD-PARTY-LICENSES".to_owned(),
            "/usr/share/doc/icmp-guard/COPYRIGHT-rust-std.html".to_owned(),
        ])
    );
    check_notices(
        &std::fs::read_to_string(
            rootfs
                .path
                .join("usr/share/doc/icmp-guard/THIRD-PARTY-LICENSES"),
        )
        .unwrap(),
    );
    assert_eq!(
        std::fs::read(rootfs.path.join("usr/bin/icmp-guard")).unwrap(),
        std::fs::read(static_binary()).unwrap()
    );
    // What a container runtime (or the DaemonSet) provides: /proc, /sys (per-CPU maps are
    // read for each possible CPU, which /sys/devices/system/cpu/possible lists), the host's
    // bpffs (here the lab's, so the lab's CLI reads the same pins) and the config.
    rootfs.mount(&["-t", "proc"], Path::new("proc"), "proc");
    rootfs.mount(&["-t", "sysfs"], Path::new("sysfs"), "sys");
    rootfs.mount(&["--bind"], &lab.bpffs.path, "sys/fs/bpf");
    let etc = rootfs.path.join("etc/icmp-guard");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("icmp-guard.toml"),
        format!(
            "[daemon]\nmetrics = \"127.0.0.1:9966\"\non_exit = \"keep\"\n[[interface]]\nname = \"{}\"\n[interface.limits]\necho_rate = 10\necho_burst = 20\n",
            lab.guarded_if
        ),
    )
    .unwrap();

    let log = lab.scratch.file("image.log");
    let started = Instant::now();
    let mut daemon = entrypoint(&lab, &rootfs, &command, &log);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(10, "the image's service attaches", || lab.guarded_has_xdp())
        .unwrap_or_else(|e| panic!("{e}: {}", log_text()));
    let metrics = lab.guarded.http_get("127.0.0.1:9966", "/metrics");
    let metrics = metrics.unwrap_or_else(|e| panic!("{e}: {}", log_text()));
    assert!(
        metrics.contains(&format!(
            "icmp_guard_up{{interface=\"{}\"}} 1",
            lab.guarded_if
        )),
        "{metrics}\nthe service's log:\n{}",
        log_text()
    );
    assert_eq!(lab.ping(3, "0.2", 10).unwrap(), 3);
    lab.inject(&["--kind", "echo", "--count", "1000"]).unwrap();
    let stats = lab.stats().unwrap();
    let passed = counter(&stats, "passed");
    assert_eq!(
        passed + counter(&stats, "dropped_rate_source"),
        1003,
        "{stats}"
    );
    let ceiling = bucket_allows(20, 10, started);
    assert!(passed <= ceiling, "passed {passed} > {ceiling}: {stats}");

    // SIGTERM with on_exit = "keep": the service exits, the guard stays (the pod a rolling
    // update stops leaves its node guarded).
    daemon.signal(libc::SIGTERM).unwrap();
    eventually(10, "the image's service exits", || !daemon.running()).unwrap();
    assert!(lab.guarded_has_xdp(), "{}", log_text());

    // The next pod of a rolling update: the same entrypoint takes the pinned guard over,
    // swapping its program in through the link, counters kept.
    let old_program = lab.status().unwrap()[0]["program_id"].clone();
    let next_log = lab.scratch.file("image-next.log");
    let mut next = entrypoint(&lab, &rootfs, &command, &next_log);
    eventually(10, "the next service swaps its program in", || {
        lab.status()
            .is_ok_and(|s| s[0]["program_id"] != old_program && lab.guarded_has_xdp())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&next_log).unwrap()));
    let after = lab.stats().unwrap();
    assert!(
        counter(&after, "passed") >= passed,
        "counters reset: {after}"
    );
    assert_eq!(lab.ping(2, "0.2", 10).unwrap(), 2);
    next.signal(libc::SIGTERM).unwrap();
    eventually(10, "the next service exits", || !next.running()).unwrap();
    lab.cli_ok(&["detach", &lab.guarded_if]).unwrap();
    drop(rootfs);
}

/// The image's entrypoint and command under `chroot` in the lab's guarded namespace, logging
/// to `log`; killed on drop.
fn entrypoint(lab: &Lab, rootfs: &Rootfs, command: &[String], log: &Path) -> Daemon {
    let out = std::fs::File::create(log).unwrap();
    Daemon {
        child: Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.guarded.name))
            .arg("--")
            .arg("chroot")
            .arg(&rootfs.path)
            .args(command)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    }
}

/// A manifest as JSON, read by PyYAML (which kubernetes-validate brings).
fn yaml(path: &Path) -> serde_json::Value {
    let json = stdout(
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(path),
    );
    serde_json::from_str(&json).unwrap()
}

fn manifests_dir() -> PathBuf {
    repo().join("contrib/kubernetes")
}

#[test]
fn the_kubernetes_manifests_validate_offline() {
    let dir = manifests_dir();
    let manifests: Vec<PathBuf> = {
        let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        all.sort();
        all
    };
    assert_eq!(manifests.len(), 4, "{manifests:?}");

    // Offline: in a network namespace of its own, with no route anywhere. Each row: a
    // manifest, and whether it must pass; the broken copies prove a failure is seen.
    let scratch = Scratch::new().unwrap();
    let daemonset = std::fs::read_to_string(dir.join("30-daemonset.yaml")).unwrap();
    let broken: [(&str, String); 2] = [
        (
            "privileged-not-bool.yaml",
            daemonset.replace("privileged: false", "privileged: \"no\""),
        ),
        (
            "misspelt-field.yaml",
            daemonset.replace("hostNetwork: true", "hostNetwrk: true"),
        ),
    ];
    let mut cases: Vec<(PathBuf, bool)> = manifests.iter().map(|m| (m.clone(), true)).collect();
    for (name, text) in broken {
        assert_ne!(text, daemonset, "{name}: the mutation applies");
        let path = scratch.file(name);
        std::fs::write(&path, text).unwrap();
        cases.push((path, false));
    }
    for (manifest, valid) in cases {
        let out = Command::new("unshare")
            .args([
                "--net",
                "--",
                "kubernetes-validate",
                "--strict",
                "-k",
                KUBERNETES,
            ])
            .arg(&manifest)
            .output()
            .expect(
                "kubernetes-validate (pip install kubernetes-validate; cargo xtask setup does)",
            );
        assert_eq!(
            out.status.success(),
            valid,
            "{}: {}{}",
            manifest.display(),
            String::from_utf8_lossy(&out.stdout),
            stderr_of(&out)
        );
    }
}

#[test]
fn the_daemonset_runs_unprivileged_on_the_host_network_and_probes_metrics() {
    let ds = yaml(&manifests_dir().join("30-daemonset.yaml"));
    let pod = &ds["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let security = &container["securityContext"];
    let checks: [(&str, &serde_json::Value, serde_json::Value); 9] = [
        ("hostNetwork", &pod["spec"]["hostNetwork"], true.into()),
        ("privileged", &security["privileged"], false.into()),
        (
            "capabilities added",
            &security["capabilities"]["add"],
            serde_json::json!(["BPF", "NET_ADMIN"]),
        ),
        (
            "capabilities dropped",
            &security["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
        ),
        (
            "readiness probe",
            &container["readinessProbe"]["httpGet"]["path"],
            "/ready".into(),
        ),
        (
            "scrape annotation",
            &pod["metadata"]["annotations"]["prometheus.io/scrape"],
            "true".into(),
        ),
        (
            "scrape port",
            &pod["metadata"]["annotations"]["prometheus.io/port"],
            "9966".into(),
        ),
        (
            "max surge",
            &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"],
            0.into(),
        ),
        (
            "bpffs volume",
            &pod["spec"]["volumes"][0]["hostPath"]["path"],
            "/sys/fs/bpf".into(),
        ),
    ];
    for (what, got, expected) in checks {
        assert_eq!(*got, expected, "{what}");
    }
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert!(container["resources"]["requests"]["cpu"].is_string());
}

#[test]
fn the_configmap_file_is_accepted_only_with_metrics_public() {
    let scratch = Scratch::new().unwrap();
    // The service accepts it, with metrics on the port the DaemonSet probes.
    let cm = yaml(&manifests_dir().join("20-configmap.yaml"));
    let file = scratch.file("icmp-guard.toml");
    let toml = cm["data"]["icmp-guard.toml"].as_str().unwrap();
    assert!(toml.contains("metrics = \"0.0.0.0:9966\""), "{toml}");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(static_binary())
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // Without metrics_public it would be refused: the comment in the ConfigMap says why.
    std::fs::write(&file, toml.replace("metrics_public = true", "")).unwrap();
    let out = Command::new(static_binary())
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !out.status.success() && stderr_of(&out).contains("metrics_public"),
        "{}",
        stderr_of(&out)
    );
}
