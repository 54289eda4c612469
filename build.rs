//! Build settings for the `stack` binary.
//!
//! The binary is linked position-dependent (`-no-pie`): every container's
//! shim is this binary re-executed, and a position-independent executable
//! makes the dynamic loader rewrite its relocated read-only data (about
//! 600 KiB of pointers here) in every process, private memory that no two
//! shims can share. Linked at a fixed address, those pages stay clean and
//! shared, and a shim starts with no relocations to apply. (Go builds its
//! binaries, docker's and containerd's among them, the same way.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
