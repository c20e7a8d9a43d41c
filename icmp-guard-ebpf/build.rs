//! Tells cargo to rebuild when bpf-linker changes (the linker is not a Rust dependency). The
//! instruction set (v3, which includes the 32-bit ALU LLVM needs to select the buckets'
//! compare-and-swap, `BPF_CMPXCHG`) is chosen by the userspace crate's build.rs, which builds
//! this one.

fn main() {
    let linker = which::which("bpf-linker").expect(
        "bpf-linker not found on PATH: run `cargo xtask setup`, which builds it against the nightly toolchain's LLVM",
    );
    println!("cargo:rerun-if-changed={}", linker.display());
}
