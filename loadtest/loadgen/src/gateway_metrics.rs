//! The gateway's own counters, read from each node's `/metrics`: the bytes
//! it wrote to WebSockets, so a run can report wire bytes per delivery
//! (what compression saves) next to CPU per delivery.

/// `chat_gateway_ws_sent_bytes_total` summed over the nodes; `None` when a
/// node does not answer (the report then leaves the figure out).
pub async fn ws_sent_bytes(urls: &[String]) -> Option<u64> {
    let http = reqwest::Client::new();
    let mut total = 0;
    for url in urls {
        let text = http
            .get(format!("{}/metrics", url.trim_end_matches('/')))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("chat_gateway_ws_sent_bytes_total "))?
            .trim()
            .parse::<f64>()
            .ok()? as u64;
    }
    Some(total)
}
