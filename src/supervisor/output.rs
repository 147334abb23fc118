//! A supervised process's stdout and stderr, relayed line by line into the gateway's log under
//! the `fngate::function` target. The project's runtime already tags each line with the function
//! and the request id; other programs' lines are still tagged with function and instance here.

use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Longer lines are cut into pieces of this size rather than buffered without bound.
const MAX_LINE: u64 = 16 * 1024;

pub(super) async fn relay(
    stream: impl AsyncRead + Unpin,
    function: Arc<str>,
    instance: usize,
    name: &'static str,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                tracing::info!(target: "fngate::function", function = %function, instance, stream = name, "{text}");
            }
        }
    }
}
