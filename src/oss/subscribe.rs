//! Confirming an SNS subscription when `confirm_subscriptions: true`: a GET of the message's
//! `SubscribeURL`. Only AWS's real SNS endpoints (`sns.<region>.amazonaws.com[.cn]`, nothing
//! else under amazonaws.com, where S3 buckets are hostnames too) and the hosts named in
//! `subscription_hosts` (LocalStack, tests) are fetched, so that a caller holding the bridge
//! token cannot make the gateway request other addresses, loopback ones included. This
//! build has no TLS client, so an `https://` URL (what AWS sends) is reported for a human to
//! open; see docs/oss-bridge.md.

use pingora::connectors::TransportConnector;
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `host` is an SNS endpoint of an AWS region: `sns.` + a region name (`us-west-2`,
/// `us-gov-east-1`, `cn-north-1`) + `.amazonaws.com` or `.amazonaws.com.cn`.
pub fn is_sns_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    let Some(region) = region else { return false };
    let parts: Vec<&str> = region.split('-').collect();
    let letters = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| letters(p))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Whether `host` (and `port`) is named in `allowed`: `host` alone allows any port.
fn is_allowed(host: &str, port: Option<u16>, allowed: &[String]) -> bool {
    allowed.iter().any(|a| match a.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
            h.trim_matches(['[', ']']).eq_ignore_ascii_case(host)
                && p.parse().ok() == Some(port.unwrap_or(80))
        }
        _ => a.trim_matches(['[', ']']).eq_ignore_ascii_case(host),
    })
}

/// GETs `url` if its host is SNS's or allowed; the HTTP status when it answered.
pub async fn confirm(url: &str, allowed: &[String]) -> Result<u16, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().ok_or("the SubscribeURL has no host")?.to_owned();
    let bare = host.trim_matches(['[', ']']);
    if !is_sns_host(bare) && !is_allowed(bare, uri.port_u16(), allowed) {
        return Err(format!(
            "{host} is not an SNS host nor in subscription_hosts; not fetched"
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regional_sns_endpoints_are_sns_hosts() {
        for ok in [
            "sns.us-west-2.amazonaws.com",
            "SNS.eu-central-1.amazonaws.com",
            "sns.us-gov-west-1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com.cn",
        ] {
            assert!(is_sns_host(ok), "{ok}");
        }
        for bad in [
            "sns.mybucket.s3.amazonaws.com", // a bucket's own hostname
            "sns.amazonaws.com",
            "sns.evil.amazonaws.com",
            "sns.us-west-2.amazonaws.com.evil.example",
            "sns.us-west-x.amazonaws.com",
            "xsns.us-west-2.amazonaws.com",
            "127.0.0.1",
        ] {
            assert!(!is_sns_host(bad), "{bad}");
        }
    }

    #[test]
    fn allowed_hosts_with_or_without_a_port() {
        let allowed = ["localhost:4566".to_owned(), "127.0.0.1".to_owned()];
        assert!(is_allowed("localhost", Some(4566), &allowed));
        assert!(!is_allowed("localhost", Some(4567), &allowed));
        assert!(!is_allowed("localhost", None, &allowed));
        assert!(is_allowed("127.0.0.1", Some(9), &allowed));
        assert!(!is_allowed("127.0.0.2", Some(9), &allowed));
        let v6 = ["[::1]:8080".to_owned()];
        assert!(is_allowed("::1", Some(8080), &v6));
    }
}
