//! Process-wide allocator settings, and the memory limit the process runs
//! under (its cgroup's), exported so that an alert can compare the resident
//! size with it.
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

/// The memory limit of this process's cgroup in bytes (v2 `memory.max`, or
/// v1 `memory.limit_in_bytes`); None when there is none.
pub fn cgroup_limit() -> Option<u64> {
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/memory.max");
    let v1 = || std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    v2.or_else(|_| v1())
        .ok()
        .and_then(|text| parse_limit(&text))
}

/// `max` (v2) or a value near `u64::MAX` rounded to pages (v1) mean no limit.
fn parse_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n < 1 << 60).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::parse_limit;

    #[test]
    fn a_cgroup_limit_is_read_and_no_limit_is_none() {
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit(""), None);
    }
}
