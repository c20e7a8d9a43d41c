//! Builds the XDP programs (`icmp-guard-ebpf`) for the BPF target with the nightly toolchain and
//! places the objects in `OUT_DIR`, where `src/lib.rs` embeds them.

use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let ebpf = Package {
        name: "icmp-guard-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../icmp-guard-ebpf"),
        ..Package::default()
    };
    aya_build::build_ebpf([ebpf], Toolchain::default())
}
