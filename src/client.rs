//! Who the client is: the request id, the source address (believing `X-Forwarded-For` only from
//! trusted proxies) and the `X-Forwarded-For` value to pass on.

use crate::config::GatewaySettings;
use ipnet::IpNet;
use std::borrow::Cow;
use std::net::IpAddr;

/// A request id, at most 128 characters: kept in place, not on the heap.
pub type RequestId = arrayvec::ArrayString<128>;

/// The client's own id when trusted and well-formed, else a fresh UUID v4. `header` looks a
/// request header up by name.
pub fn request_id<'h>(
    header: impl Fn(&str) -> Option<&'h [u8]>,
    gateway: &GatewaySettings,
) -> RequestId {
    if gateway.trust_request_id {
        let given = ["x-jdcloud-request-id", "x-request-id"]
            .iter()
            .filter_map(|h| header(h))
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find(|v| is_valid_request_id(v))
            .and_then(|v| RequestId::from(v).ok());
        if let Some(id) = given {
            return id;
        }
    }
    // Encoded into a buffer: `to_string` would go through `core::fmt` (about 300 instructions).
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let fresh = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    RequestId::from(fresh).unwrap_or_default()
}

/// 1..=128 characters of `[A-Za-z0-9._-]`: safe in headers, logs and JSON.
fn is_valid_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The `X-Forwarded-For` header as one string (several lines joined with ", ").
pub fn forwarded_chain<'h>(headers: impl Iterator<Item = (&'h str, &'h [u8])>) -> String {
    let mut chain = String::new();
    for (_, v) in headers.filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for")) {
        if let Ok(text) = std::str::from_utf8(v) {
            if !chain.is_empty() {
                chain.push_str(", ");
            }
            chain.push_str(text.trim());
        }
    }
    chain
}

/// `sourceIp`: the peer, or — when the peer is a trusted proxy — the right-most address in the
/// chain that is not itself a trusted proxy.
pub fn source_ip(peer: Option<IpAddr>, chain: &str, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in chain.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

/// The chain with the peer (already written out, `""` when unknown) appended, as passed on to
/// functions and upstreams; borrowed when there is no chain.
pub fn append_peer<'a>(chain: &str, peer: &'a str) -> Cow<'a, str> {
    match (chain.is_empty(), peer.is_empty()) {
        (true, _) => Cow::Borrowed(peer),
        (false, true) => Cow::Owned(chain.to_owned()),
        (false, false) => Cow::Owned(format!("{chain}, {peer}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_up_to_128_characters_are_kept_else_a_fresh_uuid() {
        let settings = |trust| GatewaySettings {
            region: String::new(),
            account_id: String::new(),
            base64_owner_pin: String::new(),
            trust_request_id: trust,
            trusted_proxies: Vec::new(),
        };
        let longest = "a".repeat(128);
        let too_long = "a".repeat(129);
        let given = |v: &str, trust| request_id(|_| Some(v.as_bytes()), &settings(trust));
        assert_eq!(given(&longest, true).as_str(), longest);
        assert_eq!(given("id-1.x_2", true).as_str(), "id-1.x_2");
        for fresh in [
            given(&too_long, true),
            given("a b", true),
            given("id-1", false),
        ] {
            let parsed = uuid::Uuid::parse_str(&fresh).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(fresh.len(), 36);
        }
        assert_ne!(given("", true), given("", true));
    }

    #[test]
    fn source_ip_trusts_forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = Some("10.1.1.1".parse().unwrap());
        let stranger = Some("203.0.113.9".parse().unwrap());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(source_ip(stranger, "1.2.3.4", &trusted), ip("203.0.113.9"));
        assert_eq!(
            source_ip(proxy, "1.2.3.4, 10.0.0.7", &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(source_ip(proxy, "", &trusted), ip("10.1.1.1"));
        assert_eq!(
            source_ip(proxy, "garbage, 10.0.0.7", &trusted),
            ip("10.0.0.7")
        );
        assert_eq!(source_ip(None, "1.2.3.4", &trusted), None);
        assert_eq!(
            append_peer("1.2.3.4", "203.0.113.9"),
            "1.2.3.4, 203.0.113.9"
        );
        assert_eq!(append_peer("", "203.0.113.9"), "203.0.113.9");
        assert_eq!(append_peer("1.2.3.4", ""), "1.2.3.4");
    }

    #[test]
    fn request_ids() {
        assert!(is_valid_request_id("abc-DEF_1.2"));
        assert!(!is_valid_request_id("has space"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id(&"x".repeat(129)));
    }
}
