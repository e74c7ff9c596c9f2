//! How the operator's memory goes back to the system (docs/design.md
//! "Memory"). The operator runs on glibc's allocator; two settings keep its
//! resident memory at what the process holds:
//!
//! - at start, buffers of 1 MiB or more are given their own mapping
//!   (`M_MMAP_THRESHOLD`), so a `/metrics` body or a list page is returned to
//!   the system when freed; the default threshold rises to 32 MiB after the
//!   first such buffer is freed, after which glibc keeps them in its heaps;
//! - after each run, `malloc_trim(0)` returns the free pages inside glibc's
//!   heaps (one per thread that allocated, up to 8 per core), which a run
//!   spread over the runtime's threads leaves behind.
//!
//! Elsewhere (musl, other systems) both are no-ops.

/// What to ask of glibc.
#[derive(Clone, Copy)]
enum Call {
    Configure,
    Trim,
}

/// Once, at start, before other threads exist.
pub fn configure() {
    glibc(Call::Configure);
}

/// After a run: return the free memory of glibc's heaps to the system.
pub fn trim() {
    glibc(Call::Trim);
}

/// Buffers from this size up get their own mapping, returned when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// The one place the operator calls into the C library itself (the
/// workspace denies `unsafe` elsewhere); libc has no safe wrapper for these.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn glibc(call: Call) {
    match call {
        // SAFETY: mallopt only sets a glibc allocation parameter from a plain
        // integer; it reads and writes no memory of ours, and is called at
        // start, before any other thread allocates.
        Call::Configure => unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        },
        // SAFETY: malloc_trim takes each glibc heap's own lock and only gives
        // back pages of chunks that are already free; no live allocation is
        // touched, and any thread may call it.
        Call::Trim => unsafe {
            libc::malloc_trim(0);
        },
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc(_: Call) {}
