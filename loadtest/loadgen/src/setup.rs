//! Rooms for a run, created over the REST API: fresh public rooms, so every
//! room's `seq` starts at 1 and a client that connects with `?room_id=`
//! becomes a member on its own.

use crate::token::Minter;
use serde_json::{Value, json};

pub async fn create_rooms(base: &str, minter: &Minter, owner: u64, count: usize) -> Vec<i64> {
    let http = reqwest::Client::new();
    let token = minter.token(owner);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let body = json!({"name": format!("lg-{run}-{i}"), "is_private": false});
        let res = http
            .post(format!("{base}/api/rooms"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| fail(&format!("POST /api/rooms: {e}")));
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        match v["id"].as_i64() {
            Some(id) if status.is_success() => ids.push(id),
            _ => fail(&format!("POST /api/rooms: {status} {v}")),
        }
        if count >= 100 && (i + 1) % (count / 10) == 0 {
            eprintln!("loadgen: {} of {count} rooms created", i + 1);
        }
    }
    ids
}

fn fail(why: &str) -> ! {
    eprintln!("loadgen: {why}");
    std::process::exit(1)
}
