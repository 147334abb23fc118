//! What a POST to the bridge is (docs/oss-bridge.md, "What a request goes through"): an SNS message, a JD OSS callback or its
//! handshake, an EventBridge event, an S3 test event, a MinIO body, S3-shaped `Records` (AWS,
//! Ceph, JD OSS), an Alibaba OSS body, or an event already in the JD format.

use super::records::{self, ObjectRecord, Sender};
use base64::Engine;
use http::HeaderMap;
use serde_json::Value;

#[derive(Debug)]
pub enum Notification {
    /// Object events, each mapped or with the reason it could not be.
    Records(Vec<Result<ObjectRecord, String>>),
    /// `s3:TestEvent`, sent when a notification configuration is saved: answered, not invoked.
    TestEvent,
    /// SNS asks to confirm a subscription; `subscribe_url` confirms it when fetched.
    SnsSubscription {
        topic: String,
        subscribe_url: String,
    },
    SnsUnsubscribe {
        topic: String,
    },
    /// JD OSS's handshake: the answer body must be base64 of the request body.
    JdHandshake {
        answer: String,
    },
}

pub fn classify(headers: &HeaderMap, body: &[u8]) -> Result<Notification, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(kind) = header("x-jdcloud-message-type") {
        if kind.eq_ignore_ascii_case("SubscriptionConfirmation")
            || kind.eq_ignore_ascii_case("SubscriptionConfiguration")
        {
            let answer = base64::engine::general_purpose::STANDARD.encode(body);
            return Ok(Notification::JdHandshake { answer });
        }
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let sns_type = header("x-amz-sns-message-type").or_else(|| {
        json.get("TopicArn")
            .and(json.get("Type"))
            .and_then(Value::as_str)
    });
    if let Some(kind) = sns_type {
        return sns(kind, &json);
    }
    body_json(&json, Sender::S3)
}

/// An SNS HTTP message; the S3 event is the JSON string in `Message`.
fn sns(kind: &str, m: &Value) -> Result<Notification, String> {
    let topic = m
        .get("TopicArn")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match kind {
        "SubscriptionConfirmation" => Ok(Notification::SnsSubscription {
            topic,
            subscribe_url: m
                .get("SubscribeURL")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        }),
        "UnsubscribeConfirmation" => Ok(Notification::SnsUnsubscribe { topic }),
        "Notification" => sns_message(m),
        other => Err(format!("unknown SNS message type {other:?}")),
    }
}

fn sns_message(m: &Value) -> Result<Notification, String> {
    let message = m
        .get("Message")
        .ok_or("the SNS notification has no Message")?;
    // The S3 event arrives as a string (parse twice); a relay may have parsed it already.
    let inner: Value = match message {
        Value::String(s) => serde_json::from_str(s)
            .map_err(|_| "the SNS Message is not an S3 event (not JSON)".to_owned())?,
        other => other.clone(),
    };
    body_json(&inner, Sender::Sns)
}

/// A parsed body; `aws` is the sender AWS records are attributed to (S3 or SNS).
fn body_json(json: &Value, aws: Sender) -> Result<Notification, String> {
    let field = |name: &str| json.get(name).and_then(Value::as_str);
    if field("Event") == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    if field("source") == Some("aws.s3") && json.get("detail-type").is_some() {
        return Ok(Notification::Records(vec![records::eventbridge(json)]));
    }
    if let Some(list) = json.get("Records").and_then(Value::as_array) {
        // MinIO wraps one record with its own EventName and Key.
        let minio = json.get("EventName").is_some() && json.get("Key").is_some();
        let mut out = Vec::with_capacity(list.len());
        for record in list {
            if let Some(sns) = record.get("Sns") {
                // The SNS→Lambda envelope, forwarded as is.
                match sns_message(sns)? {
                    Notification::Records(inner) => out.extend(inner),
                    Notification::TestEvent if list.len() == 1 => {
                        return Ok(Notification::TestEvent)
                    }
                    _ => {}
                }
                continue;
            }
            let is_jd_event = record.get("detail").is_some()
                && record.get("source").and_then(Value::as_str) == Some("oss");
            out.push(if is_jd_event {
                records::jd_event(record)
            } else if minio {
                records::s3_shaped(record, Sender::Minio)
            } else {
                match records::s3_shaped_sender(record) {
                    Some(Sender::S3) => records::s3_shaped(record, aws),
                    Some(sender) => records::s3_shaped(record, sender),
                    None => Err(format!(
                        "a record with eventSource {:?} is not an object-store event",
                        record
                            .get("eventSource")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    )),
                }
            });
        }
        return Ok(Notification::Records(out));
    }
    if let Some(list) = json.get("events").and_then(Value::as_array) {
        let aliyun = list
            .iter()
            .all(|e| e.get("eventSource").and_then(Value::as_str) == Some("acs:oss"));
        if aliyun && !list.is_empty() {
            return Ok(Notification::Records(
                list.iter().map(records::aliyun).collect(),
            ));
        }
    }
    Err("not a bucket notification of a known sender (S3, SNS, EventBridge, MinIO, Ceph, JD Cloud OSS, Alibaba OSS)".into())
}
