//! Build script of the three Lambda functions (each `Cargo.toml` names it): links their
//! binaries as position-dependent executables.
//!
//! Why: a position-independent executable carries ~65,000 relative relocations (1.5 MB
//! of `.rela.dyn`) that the loader applies at every start, writing and so copying all
//! 1.5 MB of `.data.rel.ro`. Linked `-no-pie`, the image needs no relocation: measured by
//! `make bench` on the alerter (debug harness), the cold start fell from 11.2 to 8.5 ms and
//! the peak RSS from 15.2 to 12.6 MiB. The price: the executable's own image loses address-space
//! randomisation (the stack, heap and shared libraries keep theirs). The code is compiled
//! position-independent either way; only the final link changes.
//!
//! `PRICEWIRE_PIE=1 make build` keeps the default PIE link for anyone who prefers the
//! randomisation to the memory and start time.

fn main() {
    println!("cargo:rerun-if-env-changed=PRICEWIRE_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let keep_pie = std::env::var("PRICEWIRE_PIE").is_ok_and(|v| v == "1");
    if linux && !keep_pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
