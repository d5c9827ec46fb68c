//! Linker settings for the eBPF object, whoever drives the build (xtask or aya-build).
fn main() {
    // A new bpf-linker can produce a different object.
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    // Let LLVM load multi-byte header fields with one instruction instead of byte by byte:
    // packet and map memory may be misaligned on x86 and arm64 (the verifier only insists on
    // aligned stack accesses, and the programs keep headers in a map, not on the stack).
    println!("cargo:rustc-link-arg-bins=--cpu-features=+allows-misaligned-mem-access");
}
