//! Every answer the gateway produces itself (docs/events.md): status, `x-fngate-error` code, JSON body.

use crate::contract::{self, Violation};
use crate::event::json::{push_key, push_member, push_str};
use crate::http1::Answer;
use crate::invoke::{Invocation, InvokeError};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    RouteNotFound,
    MethodNotAllowed {
        allow: String,
    },
    BadRequest(String),
    /// The request head is larger than the gateway reads (431).
    HeaderTooLarge,
    /// A transfer coding other than chunked (501).
    UnsupportedCoding,
    /// The client stalled while sending the body (408).
    RequestTimeout,
    /// The client closed the connection before its request was read; only logged (nginx's 499).
    ClientClosed,
    PayloadTooLarge {
        limit: usize,
    },
    UnsupportedBody,
    FunctionUnreachable(String),
    /// The runtime answered non-2xx; `raised` is what it said the function raised.
    FunctionError {
        status: u16,
        raised: Option<String>,
    },
    ResponseInvalid(Violation),
    /// The same, answered as the API format's platform does (`contract_errors: platform`):
    /// AWS API Gateway's 502 `{"message":"Internal server error"}`, Alibaba Cloud API Gateway's
    /// 503 without a body.
    ResponseInvalidAsPlatform {
        violation: Violation,
        status: u16,
        body: &'static [u8],
    },
    FunctionTimeout(Duration),
    /// The OSS bridge: no credential / a wrong one.
    Unauthorized,
    Forbidden,
    /// The OSS bridge: a body that is no notification it can map, and nowhere to keep it.
    BadNotification(String),
    /// The OSS bridge's queue is full; the sender should retry after this many seconds.
    QueueFull {
        retry_after: u32,
    },
    /// The OSS bridge could not store the events (disk trouble); the sender should retry.
    QueueUnavailable(String),
    /// The OSS bridge's dead-letter store is full: an unmappable body cannot be kept.
    DeadLettersFull,
    /// The listeners hold `server.max_connections` client connections already.
    TooManyConnections {
        limit: usize,
    },
    /// `auth: apikey`: no key where it is looked for (the header's name).
    ApiKeyMissing {
        header: String,
    },
    /// `auth: apikey`: an unknown key, or one not allowed on this route.
    ApiKeyRefused,
    /// The route's rate limit; the client may retry after this many seconds.
    RateLimited {
        retry_after: u64,
    },
    /// `auth: jdcloud`: the signature is missing (401), malformed (401), or refused (403);
    /// `code` says why (never anything about the secret).
    SignatureRejected {
        status: u16,
        code: &'static str,
        why: String,
    },
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            Self::RouteNotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::BadRequest(_) => 400,
            Self::HeaderTooLarge => 431,
            Self::UnsupportedCoding => 501,
            Self::RequestTimeout => 408,
            Self::ClientClosed => 499,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedBody => 415,
            Self::FunctionUnreachable(_) => 502,
            Self::FunctionError { .. } | Self::ResponseInvalid(_) => 503,
            Self::ResponseInvalidAsPlatform { status, .. } => *status,
            Self::FunctionTimeout(_) => 504,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::BadNotification(_) => 400,
            Self::QueueFull { .. } | Self::QueueUnavailable(_) => 503,
            Self::TooManyConnections { .. } | Self::DeadLettersFull => 503,
            Self::ApiKeyMissing { .. } => 401,
            Self::ApiKeyRefused => 403,
            Self::RateLimited { .. } => 429,
            Self::SignatureRejected { status, .. } => *status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::RouteNotFound => "ROUTE_NOT_FOUND",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::HeaderTooLarge => "REQUEST_HEADER_TOO_LARGE",
            Self::UnsupportedCoding => "NOT_IMPLEMENTED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::ClientClosed => "CLIENT_CLOSED",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedBody => "UNSUPPORTED_BODY",
            Self::FunctionUnreachable(_) => "FUNCTION_UNREACHABLE",
            Self::FunctionError { .. } => "FUNCTION_ERROR",
            Self::ResponseInvalid(_) | Self::ResponseInvalidAsPlatform { .. } => {
                "FUNCTION_RESPONSE_INVALID"
            }
            Self::FunctionTimeout(_) => "FUNCTION_TIMEOUT",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::BadNotification(_) => "BAD_NOTIFICATION",
            Self::QueueFull { .. } => "QUEUE_FULL",
            Self::QueueUnavailable(_) => "QUEUE_UNAVAILABLE",
            Self::TooManyConnections { .. } => "TOO_MANY_CONNECTIONS",
            Self::DeadLettersFull => "DEAD_LETTERS_FULL",
            Self::ApiKeyMissing { .. } => "UNAUTHORIZED",
            Self::ApiKeyRefused => "FORBIDDEN",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::SignatureRejected { code, .. } => code,
        }
    }

    /// The detailed message (may name backends and fields).
    pub fn detail(&self) -> String {
        match self {
            Self::RouteNotFound => "no route matches the request path".into(),
            Self::MethodNotAllowed { allow } => {
                format!("the method is not allowed on this path; allowed: {allow}")
            }
            Self::BadRequest(why) => why.clone(),
            Self::HeaderTooLarge => format!(
                "the request head (or its chunked trailers) is larger than {} KiB or has more than {} lines",
                crate::http1::head::MAX_HEAD / 1024,
                crate::http1::head::MAX_HEADERS
            ),
            Self::UnsupportedCoding => {
                "the request's Transfer-Encoding is not supported (only chunked is)".into()
            }
            Self::RequestTimeout => "the request body did not arrive in time".into(),
            Self::ClientClosed => "the client closed the connection".into(),
            Self::PayloadTooLarge { limit } => {
                format!("the request body is larger than the route's limit of {limit} bytes")
            }
            Self::UnsupportedBody => {
                "the request body is not valid UTF-8 and this route does not accept binary bodies"
                    .into()
            }
            Self::FunctionUnreachable(why) => format!("the function could not be reached: {why}"),
            Self::FunctionError { status, raised } => match raised {
                Some(what) => format!("the function raised {what} (its runtime answered {status})"),
                None => format!("the function raised an error (its runtime answered {status})"),
            },
            Self::ResponseInvalid(v)
            | Self::ResponseInvalidAsPlatform { violation: v, .. } => {
                format!("the function's reply breaks the contract: {v}")
            }
            Self::FunctionTimeout(t) => {
                format!(
                    "the function did not answer within {}",
                    humantime::format_duration(*t)
                )
            }
            Self::Unauthorized => {
                "a credential is required: Authorization: Bearer <token> or ?token=<token>".into()
            }
            Self::Forbidden => "the credential is not valid".into(),
            Self::BadNotification(why) => format!("not a notification the bridge can map: {why}"),
            Self::QueueFull { retry_after } => {
                format!("the delivery queue is full; retry in {retry_after} s")
            }
            Self::QueueUnavailable(why) => format!("the events could not be stored: {why}"),
            Self::DeadLettersFull => {
                "the dead-letter store is full; replay or clear it (admin endpoint)".into()
            }
            Self::TooManyConnections { limit } => {
                format!("the gateway holds its limit of {limit} client connections; retry later")
            }
            Self::ApiKeyMissing { header } => format!("an API key is required in {header}"),
            Self::ApiKeyRefused => "the API key is not valid for this route".into(),
            Self::RateLimited { retry_after } => {
                format!("too many requests; retry in {retry_after} s")
            }
            Self::SignatureRejected { why, .. } => why.clone(),
        }
    }

    /// The message with details turned off (`errors.expose_details: false`).
    pub fn generic(&self) -> &'static str {
        match self {
            Self::RouteNotFound => "not found",
            Self::MethodNotAllowed { .. } => "method not allowed",
            Self::BadRequest(_) => "bad request",
            Self::HeaderTooLarge => "request header too large",
            Self::UnsupportedCoding => "not implemented",
            Self::RequestTimeout => "request timeout",
            Self::ClientClosed => "client closed",
            Self::PayloadTooLarge { .. } => "payload too large",
            Self::UnsupportedBody => "unsupported request body",
            Self::FunctionUnreachable(_) => "bad gateway",
            Self::FunctionError { .. }
            | Self::ResponseInvalid(_)
            | Self::ResponseInvalidAsPlatform { .. } => "service unavailable",
            Self::FunctionTimeout(_) => "gateway timeout",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadNotification(_) => "bad notification",
            Self::QueueFull { .. } | Self::QueueUnavailable(_) => "service unavailable",
            Self::TooManyConnections { .. } | Self::DeadLettersFull => "service unavailable",
            Self::ApiKeyMissing { .. } => "unauthorized",
            Self::ApiKeyRefused => "forbidden",
            Self::RateLimited { .. } => "too many requests",
            Self::SignatureRejected { status: 401, .. } => "unauthorized",
            Self::SignatureRejected { .. } => "forbidden",
        }
    }

    /// The whole answer (docs/events.md): JSON body, `x-fngate-error`, the headers some statuses
    /// call for, and the request id.
    pub fn answer(&self, request_id: &str, expose_details: bool) -> Answer {
        let mut headers = vec![
            ("Content-Type", "application/json".to_owned()),
            ("x-fngate-error", self.code().to_owned()),
        ];
        match self {
            Self::MethodNotAllowed { allow } => headers.push(("Allow", allow.clone())),
            Self::Unauthorized => headers.push(("WWW-Authenticate", "Bearer".into())),
            Self::QueueFull { retry_after } => {
                headers.push(("Retry-After", retry_after.to_string()))
            }
            Self::QueueUnavailable(_) => headers.push(("Retry-After", "5".into())),
            Self::TooManyConnections { .. } => headers.push(("Retry-After", "1".into())),
            Self::DeadLettersFull => headers.push(("Retry-After", "60".into())),
            Self::ApiKeyMissing { header } => {
                headers.push(("WWW-Authenticate", format!("ApiKey header=\"{header}\"")))
            }
            Self::RateLimited { retry_after } => {
                headers.push(("Retry-After", retry_after.to_string()))
            }
            Self::SignatureRejected { status: 401, .. } => {
                headers.push(("WWW-Authenticate", "JDCLOUD3-HMAC-SHA256".into()))
            }
            _ => {}
        }
        headers.push(("x-jdcloud-request-id", request_id.to_owned()));
        Answer {
            status: self.status(),
            headers,
            body: self.body(request_id, expose_details),
        }
    }

    /// `{"error": code, "message": ..., "requestId": id}`; a platform's own answer as it
    /// writes it.
    pub fn body(&self, request_id: &str, expose_details: bool) -> Vec<u8> {
        if let Self::ResponseInvalidAsPlatform { body, .. } = self {
            return body.to_vec();
        }
        let mut out = Vec::with_capacity(160);
        let mut first = true;
        out.push(b'{');
        push_member(&mut out, &mut first, "error", self.code());
        push_key(&mut out, &mut first, "message");
        match expose_details {
            true => push_str(&mut out, &self.detail()),
            false => push_str(&mut out, self.generic()),
        }
        push_member(&mut out, &mut first, "requestId", request_id);
        out.push(b'}');
        out
    }
}

/// A function call as the gateway sees it: a 2xx invocation, or the error to answer with. Shared
/// by API routes and OSS deliveries, so a failed call means the same everywhere.
pub fn call_outcome(outcome: Result<Invocation, InvokeError>) -> Result<Invocation, GatewayError> {
    match outcome {
        Err(InvokeError::Timeout(t)) => Err(GatewayError::FunctionTimeout(t)),
        Err(InvokeError::Unreachable(why)) => Err(GatewayError::FunctionUnreachable(why)),
        Err(InvokeError::ReplyTooLarge(limit)) => Err(GatewayError::ResponseInvalid(Violation {
            pointer: String::new(),
            problem: format!("the reply is larger than {limit} bytes"),
        })),
        Ok(inv) if !(200..300).contains(&inv.status) => Err(GatewayError::FunctionError {
            status: inv.status,
            raised: contract::raised(&inv.body),
        }),
        Ok(inv) => Ok(inv),
    }
}
