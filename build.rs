//! Link-time settings for the server binary.
//!
//! DT_RELR (`-z pack-relative-relocs`): a position-independent executable
//! carries one relocation per pointer in its data, 24 bytes each as RELA
//! (7,007 of them, 171 KB of the binary); packed as RELR they take a few KB,
//! and ld.so applies them faster at start. Needs binutils 2.38 or lld to link
//! and glibc 2.36 to run (Debian 12 has both); other targets link as before.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
