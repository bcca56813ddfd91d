//! The CPU floor of the RocksDB library: on x86_64 it is compiled for SSE4.2
//! and PCLMULQDQ (`scripts/rocksdb-lib.sh`), for hardware CRC32C.
//!
//! Invariant: no RocksDB call is made on a CPU without them. Compiled with
//! those flags, the C++ compiler may use their instructions anywhere in the
//! library, so an older CPU would stop on an illegal instruction at some
//! later point; every way into RocksDB checks first and refuses with an
//! error that names what is missing. (The library's static initialisers run
//! before `main` and are compiled with the same flags: on such a CPU the
//! process may stop there, before it can say why; the documented floor is
//! the answer to that.)

use wormbox_store::backend::BackendError;

/// Refuses to go on when this CPU lacks a feature the library is built for.
pub(crate) fn check() -> Result<(), BackendError> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    Err(BackendError::Engine(
        format!(
            "this CPU lacks {}, which the RocksDB library is compiled for (hardware CRC32C; x86-64 CPUs from 2010 \
         on have them: Intel Westmere, AMD Bulldozer and later)",
            missing.join(" and ")
        )
        .into(),
    ))
}

/// What the library needs of the CPU that this one lacks.
#[cfg(target_arch = "x86_64")]
fn missing() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !std::arch::is_x86_feature_detected!("sse4.2") {
        missing.push("SSE4.2");
    }
    if !std::arch::is_x86_feature_detected!("pclmulqdq") {
        missing.push("PCLMULQDQ");
    }
    missing
}

/// Elsewhere the library is compiled for the target's baseline alone.
#[cfg(not(target_arch = "x86_64"))]
fn missing() -> Vec<&'static str> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_what_the_library_needs() {
        // The machines that build and test the appliance run it, too.
        assert_eq!(missing(), Vec::<&str>::new());
        check().unwrap();
    }
}
