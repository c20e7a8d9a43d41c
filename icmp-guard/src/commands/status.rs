//! `icmp-guard status`: every guarded interface under the bpffs.

use std::path::Path;

use icmp_guard_common::policy::List;
use serde_json::{Value, json};

use crate::{
    Error, bpffs,
    cli::StatusArgs,
    guard::Guard,
    iface::IfaceName,
    limits,
    loader::mode_name,
    netlink,
    pins::{self, Pins},
    privilege,
};

pub fn run(bpffs_path: &Path, args: &StatusArgs) -> Result<(), Error> {
    privilege::require("status", privilege::PINS)?;
    let mut rows = Vec::new();
    for iface in guarded_interfaces(bpffs_path)? {
        let guard = Guard::open(Pins::new(bpffs_path, &iface))?;
        let cfg = guard.config()?;
        let (allow, deny) = (
            guard.list(List::Allow)?.len(),
            guard.list(List::Deny)?.len(),
        );
        let (sources, capacity) = guard.source_fill()?;
        let program_id = guard.program_id()?;
        // The kernel's word on the mode, when the interface still carries our program.
        let mode = netlink::xdp_state(cfg.ifindex)
            .ok()
            .flatten()
            .filter(|s| s.program_id == program_id)
            .map_or_else(|| mode_name(cfg.attach_mode), |s| s.mode);
        rows.push(json!({
            "interface": iface,
            "program_id": program_id,
            "ifindex": cfg.ifindex,
            "mode": mode,
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
            "sources": {"tracked": sources, "capacity": capacity},
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
                "{} (ifindex {}): program {} in {} mode since {} (unix time)\n  {}\n  lists: {} allowed, {} denied prefixes; sources tracked: {} of {}",
                r["interface"].as_str().unwrap_or_default(),
                r["ifindex"],
                r["program_id"],
                r["mode"].as_str().unwrap_or_default(),
                r["attached_at"],
                r["summary"].as_str().unwrap_or_default(),
                r["lists"]["allow"],
                r["lists"]["deny"],
                r["sources"]["tracked"],
                r["sources"]["capacity"]
            );
        }
    }
    Ok(())
}

/// Interfaces with pins under the bpffs, sorted by name.
fn guarded_interfaces(bpffs_path: &Path) -> Result<Vec<IfaceName>, Error> {
    let root = pins::root(bpffs_path);
    if !bpffs::is_bpffs(bpffs_path) || !root.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(Error::io("listing", &root))? {
        let entry = entry.map_err(Error::io("listing", &root))?;
        // A folder whose name is no interface name was not made by icmp-guard.
        let Some(name) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if Pins::new(bpffs_path, &name).exist() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
