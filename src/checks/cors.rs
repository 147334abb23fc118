//! `cors:` on an API, with the semantics of AWS HTTP API's `corsConfiguration`: preflights
//! (`OPTIONS` with `Access-Control-Request-Method`) are answered by the gateway, 204, without
//! calling anything; every other answer to an allowed origin — function replies, upstream
//! replies and the gateway's own errors — carries `Access-Control-Allow-Origin` (and
//! `-Credentials`, `-Expose-Headers`), replacing any the function sent. A request from an
//! origin not allowed gets no CORS header, so the browser keeps the answer from the page.

use super::{header_text, Admitted, Check, Request, Verdict};
use http::Method;

pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    credentials: bool,
    /// Configured lists, joined; `None` for `*` (the request's own values are echoed).
    methods: Option<Vec<u8>>,
    method_list: Vec<String>,
    headers: Option<Vec<u8>>,
    expose: Option<Vec<u8>>,
    max_age: Option<Vec<u8>>,
}

fn joined(list: &[String]) -> Option<Vec<u8>> {
    (!list.is_empty()).then(|| list.join(", ").into_bytes())
}

impl Cors {
    pub fn new(c: &crate::config::Cors) -> Cors {
        let star = |l: &[String]| l.iter().any(|v| v == "*");
        Cors {
            any_origin: star(&c.allow_origins),
            origins: c.allow_origins.clone(),
            credentials: c.allow_credentials,
            methods: if star(&c.allow_methods) {
                None
            } else {
                joined(&c.allow_methods)
            },
            method_list: c.allow_methods.clone(),
            headers: if star(&c.allow_headers) {
                None
            } else {
                joined(&c.allow_headers)
            },
            expose: joined(&c.expose_headers),
            max_age: c.max_age.map(|d| d.as_secs().to_string().into_bytes()),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    fn allows_method(&self, method: &str) -> bool {
        self.methods.is_none()
            || self
                .method_list
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
    }
}

impl Check for Cors {
    fn check(&self, req: &Request<'_>, admitted: &mut Admitted) -> Verdict {
        let requested = header_text(req, "access-control-request-method");
        let preflight = *req.method == Method::OPTIONS && requested.is_some();
        // Caches must keep answers for different origins apart; it also tells the answer's
        // writer that CORS headers are the gateway's here (`response::head`).
        admitted.headers.push(("Vary", b"Origin".to_vec()));
        let Some(origin) = header_text(req, "origin") else {
            return match preflight {
                true => Verdict::Answer(204),
                false => Verdict::Continue,
            };
        };
        let h = &mut admitted.headers;
        if !self.allows(origin) {
            return match preflight {
                true => Verdict::Answer(204),
                false => Verdict::Continue,
            };
        }
        let allow_origin = if self.any_origin && !self.credentials {
            "*"
        } else {
            origin
        };
        h.push((
            "Access-Control-Allow-Origin",
            allow_origin.as_bytes().to_vec(),
        ));
        if self.credentials {
            h.push(("Access-Control-Allow-Credentials", b"true".to_vec()));
        }
        if !preflight {
            if let Some(expose) = &self.expose {
                h.push(("Access-Control-Expose-Headers", expose.clone()));
            }
            return Verdict::Continue;
        }
        let method = requested.unwrap_or("");
        if self.allows_method(method) {
            let methods = self
                .methods
                .clone()
                .unwrap_or_else(|| method.as_bytes().to_vec());
            h.push(("Access-Control-Allow-Methods", methods));
            let asked =
                header_text(req, "access-control-request-headers").filter(|v| !v.is_empty());
            let headers = match &self.headers {
                Some(list) => Some(list.clone()),
                None => asked.map(|a| a.as_bytes().to_vec()),
            };
            if let Some(headers) = headers {
                h.push(("Access-Control-Allow-Headers", headers));
            }
            if let Some(age) = &self.max_age {
                h.push(("Access-Control-Max-Age", age.clone()));
            }
        }
        Verdict::Answer(204)
    }
}
