//! Password hashing, which anyone can ask for without an account: bounded
//! per node (a slot per core, a short queue, then 503 at once), per client
//! address (registrations and logins per second), and never spent on a
//! request that cannot succeed (a taken name, an impossible password).

use crate::node::Node;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// 64 clients registering for `secs`; the statuses they got.
async fn register_flood(
    node: &Node,
    secs: u64,
    name: impl Fn(usize, usize) -> String + Send + Sync + Clone + 'static,
) -> BTreeMap<u16, usize> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    node.flood("/api/auth/register", 64, |http, url, c| {
        let name = name.clone();
        async move {
            let mut got = BTreeMap::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let r = http
                    .post(&url)
                    .json(&json!({"username": name(c, i), "password": "password123"}))
                    .send()
                    .await;
                let status = r.as_ref().map_or(0, |r| r.status().as_u16());
                if status == 503 {
                    let retry = r.unwrap().headers().get("retry-after").cloned();
                    assert!(retry.is_some(), "503 without Retry-After");
                }
                *got.entry(status).or_insert(0) += 1;
                i += 1;
            }
            got
        }
    })
    .await
}

/// Finding 3, as found: 64 parallel registrations of a taken name for 20 s
/// took RSS from 240 MB to 10.5 GB: each hashed before the name was checked.
#[tokio::test]
async fn registrations_of_a_taken_name_never_reach_the_hasher() {
    let mut node = Node::start(&[("CHAT__LIMITS__AUTH_RATE_PER_IP", "0")]).await;
    node.register("victim")
        .await
        .expect("the first registration");
    let before = node.rss_kib();
    let watch = node.watch();
    let got = register_flood(&node, 8, |_, _| "victim".to_owned()).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [409], "{got:?}");
    println!("taken name: {got:?}");
    node.assert_served(watch, before, 64, "taken-name registrations")
        .await;
}

/// Finding 3, with names that are free: every one needs a hash. At most a
/// hash per core runs, a few wait, the rest get 503 with Retry-After at
/// once; memory stays bounded and the API stays quick.
#[tokio::test]
async fn sixty_four_parallel_registrations_are_bounded_by_the_hashing_slots() {
    let mut node = Node::start(&[("CHAT__LIMITS__AUTH_RATE_PER_IP", "0")]).await;
    let before = node.rss_kib();
    let watch = node.watch();
    let got = register_flood(&node, 8, |c, i| format!("user_{c}_{i}")).await;
    println!("free names: {got:?}");
    assert!(
        got.get(&201).is_some_and(|n| *n > 0),
        "some registered: {got:?}"
    );
    assert!(
        got.get(&503).is_some_and(|n| *n > 0),
        "the rest refused at once: {got:?}"
    );
    assert!(got.keys().all(|s| [201, 503].contains(s)), "{got:?}");
    assert!(
        node.metric("chat_gateway_limited_total", "limit=\"password_hashing\"")
            .await
            > 0.0
    );
    node.assert_served(watch, before, 256, "registration flood")
        .await;
}

/// Registrations and logins per client address: beyond the burst, 429 with
/// Retry-After, before any hashing. A password longer than registration
/// allows is refused without hashing it.
#[tokio::test]
async fn logins_are_limited_per_address_and_impossible_passwords_are_not_hashed() {
    let node = Node::start(&[]).await;
    // Passwords no account can have: answered without a hash, so the 20
    // logins take milliseconds and the bucket refills by nothing meanwhile
    // (hashed ones took ~0.1 s each on a busy machine: 2 s of refill).
    let impossible = "p".repeat(200);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = login_as_nobody(&node, &impossible).await;
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
        }
        statuses.push(r.status().as_u16());
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        limited >= 5,
        "5/s with bursts of 10 from one address: {statuses:?}"
    );
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");

    let node = Node::start(&[("CHAT__LIMITS__AUTH_RATE_PER_IP", "0")]).await;
    let huge = "x".repeat(60 * 1024);
    let started = Instant::now();
    let r = login_as_nobody(&node, &huge).await;
    assert_eq!(r.status(), 401);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "not hashed: {:?}",
        started.elapsed()
    );
}

/// A login as a user that does not exist, with `password`.
async fn login_as_nobody(node: &Node, password: &str) -> reqwest::Response {
    node.http
        .post(node.url("/api/auth/login"))
        .json(&json!({"username": "nobody", "password": password}))
        .send()
        .await
        .unwrap()
}
