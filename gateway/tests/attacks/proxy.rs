//! Behind a load balancer: the client address comes from X-Forwarded-For
//! when the balancer is a trusted proxy, so each client has its own budget.

use crate::node::Node;
use crate::raw_ws::RawWs;

async fn statuses(node: &Node, n: usize, token: &str, xff: impl Fn(usize) -> String) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        let headers = format!("X-Forwarded-For: {}\r\n", xff(i));
        out.push(RawWs::status(&node.addr(), &format!("token={token}"), &headers).await);
    }
    out
}

/// Finding 7: the per-IP upgrade budget was keyed on the TCP peer, which
/// behind HAProxy is HAProxy: 200 connects of different clients got 120
/// refusals, and one client's bad-token attempts locked everyone out.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget() {
    let node = Node::start(&[("CHAT__SERVER__TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let token = node.token(42);
    let got = statuses(&node, 200, &token, |i| {
        format!("198.51.{}.{}", i / 200, i % 200 + 1)
    })
    .await;
    let refused = got.iter().filter(|s| **s != 101).count();
    assert_eq!(refused, 0, "200 clients behind one balancer: {got:?}");
    // One client hammering with bad tokens uses up its own budget only.
    let bad = statuses(&node, 80, "not-a-token", |_| "203.0.113.66".into()).await;
    assert!(bad.iter().filter(|s| **s == 429).count() >= 30, "{bad:?}");
    assert!(bad.iter().all(|s| [401, 429].contains(s)), "{bad:?}");
    let other = statuses(&node, 1, &token, |_| "203.0.113.67".into()).await;
    assert_eq!(other, [101], "another client of the same balancer");
    // A forged header from a peer that is not a trusted proxy is ignored.
    let node = Node::start(&[]).await;
    let forged = statuses(&node, 80, &node.token(43), |i| format!("192.0.2.{}", i + 1)).await;
    assert!(
        forged.iter().filter(|s| **s == 429).count() >= 30,
        "{forged:?}"
    );
}
