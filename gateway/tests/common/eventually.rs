//! Waiting for a condition instead of for a time: shared by the API and the
//! cluster test binaries (each includes this file as a module).

use std::time::Duration;
use tokio::time::Instant;

/// Poll `check` every 50 ms until it returns `Ok`, or panic after `within`
/// with `what` and the last observation (the `Err` it returned).
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last observation: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
