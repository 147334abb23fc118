//! `auth: apikey`: a key from the configured header (or query parameter) looked up in
//! `auth.apikey.keys`, compared in constant time. A key is never logged or echoed.

use super::{header_text, Admitted, Check, Identity, Request, Verdict};
use crate::config::ApiKeys;
use crate::errors::GatewayError;
use std::sync::Arc;
use subtle::ConstantTimeEq;

struct Entry {
    key: Vec<u8>,
    /// The key's scope includes this route.
    allowed: bool,
    identity: Arc<Identity>,
}

pub struct ApiKeyCheck {
    header: String,
    query: Option<String>,
    keys: Vec<Entry>,
}

impl ApiKeyCheck {
    pub fn new(keys: &ApiKeys, api: &str, route: &str) -> ApiKeyCheck {
        let entries = keys
            .keys
            .iter()
            .map(|k| Entry {
                key: k.key.0.as_bytes().to_vec(),
                allowed: k.apis.as_ref().is_none_or(|a| a.iter().any(|x| x == api))
                    && k.routes
                        .as_ref()
                        .is_none_or(|r| r.iter().any(|x| x == route)),
                identity: Arc::new(Identity {
                    auth_type: "apikey",
                    api_key: k.key.0.clone(),
                    user: k.user.clone(),
                    account_id: k.account_id.clone(),
                }),
            })
            .collect();
        ApiKeyCheck {
            header: keys.header.clone(),
            query: keys.query.clone(),
            keys: entries,
        }
    }

    /// The key the request carries: the header first, then the query parameter.
    fn presented<'a>(&self, req: &Request<'a>) -> Option<std::borrow::Cow<'a, str>> {
        if let Some(v) = header_text(req, &self.header).filter(|v| !v.is_empty()) {
            return Some(v.into());
        }
        let name = self.query.as_deref()?;
        req.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name && !v.is_empty())
                .then(|| percent_encoding::percent_decode_str(v).decode_utf8().ok())
                .flatten()
        })
    }
}

impl Check for ApiKeyCheck {
    fn check(&self, req: &Request<'_>, admitted: &mut Admitted) -> Verdict {
        let Some(presented) = self.presented(req) else {
            return Verdict::Refuse(GatewayError::ApiKeyMissing {
                header: self.header.clone(),
            });
        };
        // Every key is compared, so the time taken does not say which one matched.
        let mut found = None;
        for entry in &self.keys {
            if bool::from(entry.key.ct_eq(presented.as_bytes())) {
                found = Some(entry);
            }
        }
        match found {
            Some(entry) if entry.allowed => {
                admitted.identity = Some(entry.identity.clone());
                Verdict::Continue
            }
            _ => Verdict::Refuse(GatewayError::ApiKeyRefused),
        }
    }
}
