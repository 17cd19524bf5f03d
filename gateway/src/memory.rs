//! Process-wide allocator settings.
//!
//! glibc's malloc serves a large block (above `M_MMAP_THRESHOLD`) with its
//! own mapping and unmaps it on free, but raises that threshold to the size
//! of every mapped block it frees, up to 32 MiB. After the first password
//! hash (argon2 allocates ~19 MiB per hash) every later one therefore comes
//! from a heap arena, one per thread that hashed, and freed arena memory is
//! rarely given back: a registration flood kept RSS 765 MiB up on two
//! hashing slots (10.5 GB before the slots). Pinning the threshold keeps
//! large blocks mapped and unmapped: memory goes back to the system when a
//! hash ends, for a few page faults per hash.

/// The threshold, pinned (setting it turns glibc's adjustment off).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Call once, before the runtime starts threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
