//! `icmp-guard allow|deny add|del|list`: the prefix lists.
//!
//! The allow list exempts its sources from every rate limit (per source, replies, global);
//! the deny list drops their ICMP. Neither touches neighbour discovery, MLD or path-MTU
//! signals, which no list may break.

use std::path::Path;

use icmp_guard_common::policy::List;
use serde_json::json;

use crate::{
    Error,
    cli::ListCommand,
    kernel::privilege,
    pinned::{Guard, Lock, Pins, maps::list_name},
};

pub fn run(bpffs: &Path, list: List, command: &ListCommand) -> Result<(), Error> {
    let name = list_name(list);
    privilege::require(name, privilege::PINS)?;
    match command {
        ListCommand::Add { iface, cidr } => {
            let _lock = Lock::acquire(bpffs)?;
            let mut guard = Guard::open(Pins::to_change(bpffs, iface)?)?;
            if guard.maps.list_add(list, *cidr)? {
                println!("{iface}: {cidr} added to the {name} list");
            } else {
                println!("{iface}: {cidr} already in the {name} list");
            }
        }
        ListCommand::Del { iface, cidr } => {
            let _lock = Lock::acquire(bpffs)?;
            let mut guard = Guard::open(Pins::to_change(bpffs, iface)?)?;
            if guard.maps.list_del(list, *cidr)? {
                println!("{iface}: {cidr} removed from the {name} list");
            } else {
                return Err(Error::NotListed {
                    iface: iface.as_str().to_owned(),
                    list: name,
                    cidr: cidr.to_string(),
                });
            }
        }
        ListCommand::List { iface, json } => {
            let guard = Guard::open(Pins::new(bpffs, iface)?)?;
            let prefixes: Vec<String> = guard
                .maps
                .list(list)?
                .iter()
                .map(ToString::to_string)
                .collect();
            if *json {
                println!(
                    "{}",
                    json!({"interface": iface, "list": name, "prefixes": prefixes})
                );
            } else if prefixes.is_empty() {
                println!("{iface}: the {name} list is empty");
            } else {
                for p in prefixes {
                    println!("{p}");
                }
            }
        }
    }
    Ok(())
}
