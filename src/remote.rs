//! Redis, for what several gateways share (docs/scaling.md): the OSS queue (`oss::streams`) and
//! the cluster-wide rate limits (`checks::cluster_limit`). A connection that reconnects on its
//! own, and calls that never wait longer than [`CALL_TIMEOUT`].

use redis::aio::ConnectionManager;
use std::time::Duration;

/// No Redis call waits longer: the bridge answers 503 rather than hang while Redis is away.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

fn fail(e: impl std::fmt::Display) -> String {
    format!("Redis: {e}")
}

/// Awaits a Redis call for at most [`CALL_TIMEOUT`].
pub async fn within<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail(format!(
            "no answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// A connection that reconnects with back-off on its own; commands fail (and are not queued)
/// while Redis is away. Must be called on the runtime that will drive it.
pub fn connect(url: &str, response: Duration) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|_| fail("the url is not a Redis URL"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(response))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client, config).map_err(fail)
}
