//! `icmp-guard status`: every guarded interface under the bpffs.

use std::path::Path;

use icmp_guard_common::policy::List;
use serde_json::{Value, json};

use crate::{
    Error, bpffs,
    cli::StatusArgs,
    commands::attach::mode_name,
    guard::Guard,
    limits,
    pins::{self, Pins},
    privilege,
};

pub fn run(bpffs_path: &Path, args: &StatusArgs) -> Result<(), Error> {
    privilege::require("status")?;
    let mut rows = Vec::new();
    for iface in guarded_interfaces(bpffs_path)? {
        let guard = Guard::open(Pins::new(bpffs_path, &iface))?;
        let cfg = guard.config()?;
        let (allow, deny) = (
            guard.list(List::Allow)?.len(),
            guard.list(List::Deny)?.len(),
        );
        rows.push(json!({
            "interface": iface,
            "program_id": guard.program_id()?,
            "ifindex": cfg.ifindex,
            "mode": mode_name(cfg.attach_mode),
            "attached_at": cfg.attached_at,
            "dry_run": cfg.dry_run(),
            "limits": {
                "echo_rate": cfg.echo.rate,
                "echo_burst": cfg.echo.burst,
                "reply_rate": cfg.reply.rate,
                "reply_burst": cfg.reply.burst,
                "global_rate": cfg.global_rate,
                "global_burst": cfg.global_burst,
                "v4_prefix": cfg.v4_prefix,
                "v6_prefix": cfg.v6_prefix,
                "max_echo_size": cfg.max_echo_size,
            },
            "lists": {"allow": allow, "deny": deny},
            "summary": limits::describe(&cfg),
            "pins": guard.pins.dir,
        }));
    }
    if args.json {
        println!("{}", Value::Array(rows));
    } else if rows.is_empty() {
        println!(
            "no interface is guarded (pins under {})",
            pins::root(bpffs_path).display()
        );
    } else {
        for r in &rows {
            println!(
                "{} (ifindex {}): program {} in {} mode; {}; lists: {} allowed, {} denied prefixes",
                r["interface"].as_str().unwrap_or_default(),
                r["ifindex"],
                r["program_id"],
                r["mode"].as_str().unwrap_or_default(),
                r["summary"].as_str().unwrap_or_default(),
                r["lists"]["allow"],
                r["lists"]["deny"]
            );
        }
    }
    Ok(())
}

/// Interfaces with pins under the bpffs, sorted by name.
fn guarded_interfaces(bpffs_path: &Path) -> Result<Vec<String>, Error> {
    let root = pins::root(bpffs_path);
    if !bpffs::is_bpffs(bpffs_path) || !root.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(Error::io("listing", &root))? {
        let entry = entry.map_err(Error::io("listing", &root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if Pins::new(bpffs_path, &name).exist() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
