//! A refused WebSocket upgrade as the tests read it: shared by the API and
//! the cluster test binaries (each includes this file as a module).

use tokio_tungstenite::tungstenite::http::Response;

/// The status and the body (lossy UTF-8, empty when there is none) of the
/// answer to an upgrade the server refused.
pub fn refusal(resp: &Response<Option<Vec<u8>>>) -> (u16, String) {
    let body = resp
        .body()
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    (resp.status().as_u16(), body)
}
