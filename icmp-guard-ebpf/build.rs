//! Tells cargo to rebuild when bpf-linker changes (the linker is not a Rust dependency), and
//! has it generate 32-bit ALU code: the shared buckets' compare-and-swap (`BPF_CMPXCHG`,
//! Linux 5.12) is only selected by LLVM with `alu32`. Every kernel this program runs on (5.18
//! or later, for `bpf_xdp_get_buff_len`) accepts it.

fn main() {
    let linker = which::which("bpf-linker").expect(
        "bpf-linker not found on PATH: run `cargo xtask setup`, which builds it against the nightly toolchain's LLVM",
    );
    println!("cargo:rerun-if-changed={}", linker.display());
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--cpu-features=+alu32");
    }
}
