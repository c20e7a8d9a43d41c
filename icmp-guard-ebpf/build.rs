//! Tells cargo to rebuild when bpf-linker changes: the linker is not a Rust dependency.

fn main() {
    let linker = which::which("bpf-linker").expect(
        "bpf-linker not found on PATH: run `cargo xtask setup`, which builds it against the nightly toolchain's LLVM",
    );
    println!("cargo:rerun-if-changed={}", linker.display());
}
