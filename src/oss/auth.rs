//! The bridge's credential (docs/oss-bridge.md): `Authorization: Bearer <token>` (MinIO's webhook
//! `auth_token`) or `?token=<token>` (SNS and Ceph carry it in the subscription URL), compared
//! in constant time.

use crate::event::decode::decode_component;
use http::HeaderMap;
use subtle::ConstantTimeEq;

#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    Missing,
    Wrong,
    Valid,
}

pub fn check(headers: &HeaderMap, query: &str, token: &str) -> Credential {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let from_query = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("token="))
        .find_map(|v| decode_component(v, true).ok().map(|v| v.into_owned()));
    let offered: Vec<String> = bearer.into_iter().chain(from_query).collect();
    if offered.is_empty() {
        return Credential::Missing;
    }
    let matches = offered
        .iter()
        .any(|o| bool::from(o.as_bytes().ct_eq(token.as_bytes())));
    match matches {
        true => Credential::Valid,
        false => Credential::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn bearer_or_query_token() {
        let none = HeaderMap::new();
        assert_eq!(check(&none, "", "s3cret"), Credential::Missing);
        assert_eq!(check(&none, "a=1", "s3cret"), Credential::Missing);
        assert_eq!(
            check(&headers("Bearer s3cret"), "", "s3cret"),
            Credential::Valid
        );
        assert_eq!(
            check(&headers("bearer s3cret"), "", "s3cret"),
            Credential::Valid
        );
        assert_eq!(
            check(&headers("Bearer s3cre"), "", "s3cret"),
            Credential::Wrong
        );
        assert_eq!(
            check(&headers("Basic czNjcmV0"), "", "s3cret"),
            Credential::Missing
        );
        assert_eq!(
            check(&none, "x=1&token=s3cret", "s3cret"),
            Credential::Valid
        );
        assert_eq!(check(&none, "token=s3%63ret", "s3cret"), Credential::Valid);
        assert_eq!(check(&none, "token=", "s3cret"), Credential::Wrong);
        assert_eq!(
            check(&headers("Bearer wrong"), "token=s3cret", "s3cret"),
            Credential::Valid
        );
    }
}
