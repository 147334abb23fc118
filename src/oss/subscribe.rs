//! Confirming an SNS subscription when `confirm_subscriptions: true`: a GET of the message's
//! `SubscribeURL`. Only AWS's SNS hosts and loopback (LocalStack, tests) are fetched, so that a
//! caller holding the bridge token cannot make the gateway request arbitrary addresses. This
//! build has no TLS client, so an `https://` URL (what AWS sends) is reported for a human to
//! open; see docs/oss-bridge.md.

use pingora::connectors::TransportConnector;
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use std::net::IpAddr;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `url`; the HTTP status when it answered.
pub async fn confirm(url: &str) -> Result<u16, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().ok_or("the SubscribeURL has no host")?.to_owned();
    let loopback = host
        .trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    let aws = host.starts_with("sns.")
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"));
    if !(aws || loopback) {
        return Err(format!("{host} is not an SNS host; not fetched"));
    }
    if uri.scheme_str() != Some("http") {
        return Err("https needs a TLS client, which this build does not have".into());
    }
    let port = uri.port_u16().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    let fetch = async {
        let peer = HttpPeer::new(addr, false, String::new());
        let stream = TransportConnector::new(None)
            .new_stream(&peer)
            .await
            .map_err(|e| format!("connect to {addr}: {}", e.etype().as_str()))?;
        let mut session = HttpSession::new_with_options(stream, &peer);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req =
            RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
        req.insert_header(
            "host",
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .map_err(|e| e.to_string())?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(|e| e.to_string())?;
        session.read_response().await.map_err(|e| e.to_string())?;
        Ok(session.get_status().map_or(0, |s| s.as_u16()))
    };
    tokio::time::timeout(TIMEOUT, fetch)
        .await
        .map_err(|_| "no answer within 5 s".to_owned())?
}
