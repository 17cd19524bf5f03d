//! Graceful draining: 1012 for everyone, spread over the drain window, no
//! new upgrades meanwhile, and no background task left when it is done.

use crate::helpers::spawn_with;
use std::time::{Duration, Instant};

#[tokio::test]
async fn stopping_closes_every_connection_with_1012_spread_over_the_window() {
    let app = spawn_with(|s| {
        s.server.drain_window_secs = 2;
        s.server.shutdown_timeout_secs = 5;
    })
    .await;
    let (_, t) = app.register("drained").await;
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(app.ws_in_general(&t).await);
    }
    let started = Instant::now();
    let stopper = app.stopper.clone();
    let stopping = tokio::spawn(async move { stopper.stop().await });
    // Once the node is draining, upgrades are refused.
    crate::eventually::eventually(Duration::from_secs(1), "upgrades refused", || async {
        match app.try_ws(&format!("token={t}")).await {
            Err((503, _)) => Ok(()),
            Err(other) => panic!("refused otherwise: {other:?}"),
            Ok(_) => Err("an upgrade still accepted".to_owned()),
        }
    })
    .await;
    let closes = futures_util::future::join_all(clients.iter_mut().map(|c| async {
        let code = c.recv_close().await;
        (code, started.elapsed())
    }))
    .await;
    for (code, _) in &closes {
        assert_eq!(*code, Some(1012));
    }
    let first = closes.iter().map(|(_, t)| *t).min().unwrap();
    let last = closes.iter().map(|(_, t)| *t).max().unwrap();
    assert!(
        last - first >= Duration::from_millis(300),
        "spread out: {first:?}..{last:?}"
    );
    assert!(
        last <= Duration::from_millis(2600),
        "within the window: {last:?}"
    );
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped before the timeout"
    );
    // Every background task (bus router, presence, status writer, probes)
    // has ended by the time the stop returns.
    assert_eq!(app.stopper.background_tasks(), 0);
}
