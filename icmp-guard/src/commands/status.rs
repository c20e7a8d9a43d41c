//! `icmp-guard status`: every guarded interface under the bpffs.

use std::path::Path;

use crate::{
    Error,
    cli::StatusArgs,
    kernel::privilege,
    pinned::layout,
    report::{Snapshot, text},
};

pub fn run(bpffs: &Path, args: &StatusArgs) -> Result<(), Error> {
    privilege::require("status", privilege::PINS)?;
    let snapshots = layout::guarded(bpffs)?
        .iter()
        .map(|iface| Snapshot::open(bpffs, iface))
        .collect::<Result<Vec<_>, _>>()?;
    if args.json {
        let rows: Vec<_> = snapshots.iter().map(Snapshot::status).collect();
        println!("{}", serde_json::to_string(&rows).map_err(Error::Json)?);
    } else if snapshots.is_empty() {
        println!(
            "no interface is guarded (pins under {})",
            layout::root(bpffs).display()
        );
    } else {
        for snapshot in &snapshots {
            print!("{}", text::status(snapshot));
        }
    }
    Ok(())
}
