//! The open-files limit. Every WebSocket connection is a file descriptor,
//! and a process may start with a soft limit of 1,024 (containerd 2 no
//! longer sets `LimitNOFILE`; `ulimit -n` in a shell): with 300 clients on
//! `ulimit -n 256` a node logged "accept: Too many open files" every 500 ms
//! and took no one else. At start the soft limit is raised to the hard one
//! (which an unprivileged process may do), both are logged, and a limit
//! below `limits.max_connections` plus a margin is warned about: the
//! connection cap would never be reached, the fd limit would refuse first.
//! `process_open_fds` / `process_max_fds` (`/metrics`) and the
//! `GatewayOpenFilesHigh` alert watch it from then on.

/// Descriptors a node needs besides its connections: listeners, the
/// database pool, Redis, logs, the blocking pool's files, a little slack.
pub const MARGIN: u64 = 256;

/// The open-files limits before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft limit to the hard limit. Call once, before the runtime
/// starts threads. `None` where there is no such limit to read.
// `rlim_t` is u64 here but not on every target: the casts stay.
#[allow(clippy::unnecessary_cast)]
pub fn raise() -> Option<OpenFiles> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            let soft_before = lim.rlim_cur as u64;
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
            Some(OpenFiles {
                soft_before,
                soft: lim.rlim_cur as u64,
                hard: lim.rlim_max as u64,
            })
        }
    }
    #[cfg(not(unix))]
    None
}

/// Log the limits; warn when they cannot hold `max_connections`.
pub fn report(limits: Option<OpenFiles>, max_connections: usize) {
    let Some(l) = limits else {
        return;
    };
    tracing::info!(
        soft = l.soft,
        hard = l.hard,
        raised_from = l.soft_before,
        "open-files limit"
    );
    let needed = max_connections as u64 + MARGIN;
    if l.soft < needed {
        tracing::warn!(
            soft = l.soft,
            needed,
            "the open-files limit is below limits.max_connections plus {MARGIN}: connections will be refused by the system before the cap (raise the hard limit: LimitNOFILE, ulimit -Hn, the container runtime's nofile)"
        );
    }
}
