//! A free loopback port for a server a test starts: shared by the test
//! binaries that run gateway (and backend) processes (each includes this
//! file as a module).

/// A port that was free a moment ago on 127.0.0.1, picked at random BELOW
/// the kernel's ephemeral range when there is room: servers are restarted on
/// the same port after an outage, and while one is down an outgoing
/// connection (the tests poll `/readyz` constantly) could otherwise be given
/// its port by the kernel.
pub fn free_port() -> u16 {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let range = if lo >= 12_000 {
        Some((lo - 10_000, lo))
    } else if hi <= 55_000 {
        Some((hi + 1, 65_535))
    } else {
        None
    };
    if let Some((a, b)) = range {
        for _ in 0..100 {
            let port = rand::random_range(a..b) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
