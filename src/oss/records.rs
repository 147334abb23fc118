//! One bucket-notification record of any sender → an [`ObjectRecord`]: the normalised event name
//! (`s3:` form), bucket, decoded key and object fields. Each sender's quirks (the mapping table of
//! docs/oss-bridge.md) are handled here and nowhere else.

use crate::event::decode::decode_component;
use serde_json::{Map, Value};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// AWS S3 `Records` posted directly (or by a relay such as a Lambda forwarder).
    S3,
    /// AWS S3 records inside an SNS HTTP `Notification` (or an SNS→Lambda envelope).
    Sns,
    EventBridge,
    Minio,
    Ceph,
    /// JD Cloud OSS's HTTP callback.
    JdOss,
    /// An event already in the JD OSS-trigger format (a replayed or hand-made one).
    JdEvent,
    Aliyun,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::S3 => "s3",
            Sender::Sns => "sns",
            Sender::EventBridge => "eventbridge",
            Sender::Minio => "minio",
            Sender::Ceph => "ceph",
            Sender::JdOss => "jdcloud-oss",
            Sender::JdEvent => "jdcloud-event",
            Sender::Aliyun => "aliyun-oss",
        }
    }
}

/// What every sender's record is reduced to.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRecord {
    pub sender: Sender,
    /// Normalised: `s3:ObjectCreated:Put`, …; names no trigger can take are kept as they are.
    pub event_name: String,
    pub bucket: String,
    /// Decoded where the sender encodes it.
    pub key: String,
    pub etag: String,
    pub size: Option<u64>,
    pub content_type: String,
    /// The request that caused the event (`x-amz-request-id` and its equivalents).
    pub request_id: String,
    /// `None` when the sender's time is missing or cannot be parsed.
    pub time: Option<SystemTime>,
    /// JD callback variables (`{"name": ["value"]}`), `{}` for other senders.
    pub callback_vars: Map<String, Value>,
    /// The whole source record, canonical (sorted keys): the JD `id` is derived from it.
    pub identity: String,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn required<'a>(v: &'a Value, pointer: &str) -> Result<&'a str, String> {
    str_at(v, pointer).ok_or_else(|| format!("{pointer} is missing or not a string"))
}

/// `size` is a number in most senders, a numeric string in Ceph's documentation example.
fn size_at(v: &Value, pointer: &str) -> Option<u64> {
    match v.pointer(pointer)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// ETags arrive with or without quotes; the JD event carries them bare.
fn etag(raw: Option<&str>) -> String {
    raw.unwrap_or("").trim_matches('"').to_owned()
}

pub fn with_s3_prefix(name: &str) -> String {
    match name.starts_with("s3:") {
        true => name.to_owned(),
        false => format!("s3:{name}"),
    }
}

/// Source times: RFC 3339 (with `T` or, in old Ceph, a space; any fraction) or RFC 1123 (JD
/// OSS callbacks).
pub fn parse_time(raw: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(raw.trim_end_matches('Z'))
        .ok()
        .or_else(|| httpdate::parse_http_date(raw).ok())
}

fn identity(v: &Value) -> String {
    // serde_json's maps are sorted by key, so equal records give equal text.
    v.to_string()
}

/// A `Records[]` entry in the S3 shape, as sent by S3, SNS, MinIO, Ceph and JD OSS.
pub fn s3_shaped(record: &Value, sender: Sender) -> Result<ObjectRecord, String> {
    if sender == Sender::S3 || sender == Sender::Sns {
        // AWS: equality on the major version, any minor (2.1 … 2.5).
        let version = str_at(record, "/eventVersion").unwrap_or("2");
        if version.split('.').next() != Some("2") {
            return Err(format!("unsupported eventVersion {version:?}"));
        }
    }
    let raw_key = required(record, "/s3/object/key")?;
    let key = match sender {
        // Form-encoded: `+` is a space, then %XX (AWS; MinIO's url.QueryEscape).
        Sender::S3 | Sender::Sns | Sender::Minio => decode_component(raw_key, true)
            .map_err(|e| format!("/s3/object/key: {e}"))?
            .into_owned(),
        // Ceph sends keys raw; JD OSS's encoding is undocumented and its examples are plain.
        _ => raw_key.to_owned(),
    };
    let object = record.pointer("/s3/object");
    let content_type = str_at(record, "/s3/object/contentType")
        .or_else(|| str_at(record, "/s3/object/userMetadata/content-type"))
        .or_else(|| ceph_metadata(object, "content-type"))
        .unwrap_or("");
    let callback_vars = record
        .pointer("/callBackVar/callBackVars")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(ObjectRecord {
        sender,
        event_name: with_s3_prefix(required(record, "/eventName")?),
        bucket: required(record, "/s3/bucket/name")?.to_owned(),
        key,
        etag: etag(str_at(record, "/s3/object/eTag").or_else(|| str_at(record, "/s3/object/etag"))),
        size: size_at(record, "/s3/object/size"),
        content_type: content_type.to_owned(),
        request_id: str_at(record, "/responseElements/x-amz-request-id")
            .unwrap_or("")
            .to_owned(),
        time: str_at(record, "/eventTime").and_then(parse_time),
        callback_vars,
        identity: identity(record),
    })
}

/// Ceph lists metadata as `[{"key": …, "val": …}]`.
fn ceph_metadata<'a>(object: Option<&'a Value>, name: &str) -> Option<&'a str> {
    object?
        .get("metadata")?
        .as_array()?
        .iter()
        .find(|m| str_at(m, "/key").is_some_and(|k| k.eq_ignore_ascii_case(name)))
        .and_then(|m| str_at(m, "/val"))
}

/// Which S3-shaped sender wrote this record: `eventSource`, and Ceph's own extensions (Ceph
/// releases have sent `aws:s3` too).
pub fn s3_shaped_sender(record: &Value) -> Option<Sender> {
    let ceph_marks = record.get("eventId").is_some()
        || record.get("opaqueData").is_some()
        || record.pointer("/s3/bucket/id").is_some();
    match str_at(record, "/eventSource")? {
        "ceph:s3" => Some(Sender::Ceph),
        "aws:s3" if ceph_marks => Some(Sender::Ceph),
        "aws:s3" => Some(Sender::S3),
        "minio:s3" => Some(Sender::Minio),
        "oss" => Some(Sender::JdOss),
        _ => None,
    }
}

/// An EventBridge event from `aws.s3` (one object event per body).
pub fn eventbridge(event: &Value) -> Result<ObjectRecord, String> {
    let detail_type = required(event, "/detail-type")?;
    let reason = str_at(event, "/detail/reason").unwrap_or("");
    let deletion = str_at(event, "/detail/deletion-type").unwrap_or("");
    let event_name = match (detail_type, reason) {
        ("Object Created", "PutObject") => "s3:ObjectCreated:Put".to_owned(),
        ("Object Created", "POST Object" | "PostObject") => "s3:ObjectCreated:Post".to_owned(),
        ("Object Created", "CopyObject") => "s3:ObjectCreated:Copy".to_owned(),
        ("Object Created", "CompleteMultipartUpload") => {
            "s3:ObjectCreated:CompleteMultipartUpload".to_owned()
        }
        ("Object Created", other) => format!("s3:ObjectCreated:{other}"),
        ("Object Deleted", "Lifecycle Expiration") => match deletion {
            "Delete Marker Created" => "s3:LifecycleExpiration:DeleteMarkerCreated".to_owned(),
            _ => "s3:LifecycleExpiration:Delete".to_owned(),
        },
        ("Object Deleted", _) => match deletion {
            "Delete Marker Created" => "s3:ObjectRemoved:DeleteMarkerCreated".to_owned(),
            _ => "s3:ObjectRemoved:Delete".to_owned(),
        },
        ("Object Restore Initiated", _) => "s3:ObjectRestore:Post".to_owned(),
        ("Object Restore Completed", _) => "s3:ObjectRestore:Completed".to_owned(),
        ("Object Restore Expired", _) => "s3:ObjectRestore:Delete".to_owned(),
        (other, _) => format!("s3:EventBridge:{}", other.replace(' ', "")),
    };
    Ok(ObjectRecord {
        sender: Sender::EventBridge,
        event_name,
        bucket: required(event, "/detail/bucket/name")?.to_owned(),
        // Not documented as encoded; AWS's examples are plain.
        key: required(event, "/detail/object/key")?.to_owned(),
        etag: etag(str_at(event, "/detail/object/etag")),
        size: size_at(event, "/detail/object/size"),
        content_type: String::new(),
        request_id: str_at(event, "/detail/request-id").unwrap_or("").to_owned(),
        time: str_at(event, "/time").and_then(parse_time),
        callback_vars: Map::new(),
        identity: identity(event),
    })
}

/// An Alibaba Cloud OSS `events[]` entry (API-style event names).
pub fn aliyun(event: &Value) -> Result<ObjectRecord, String> {
    let name = required(event, "/eventName")?;
    let event_name = match name {
        "ObjectCreated:PutObject" => "s3:ObjectCreated:Put".to_owned(),
        "ObjectCreated:PostObject" => "s3:ObjectCreated:Post".to_owned(),
        "ObjectCreated:CopyObject" => "s3:ObjectCreated:Copy".to_owned(),
        "ObjectCreated:CompleteMultipartUpload" => {
            "s3:ObjectCreated:CompleteMultipartUpload".to_owned()
        }
        "ObjectRemoved:DeleteObject" | "ObjectRemoved:DeleteObjects" => {
            "s3:ObjectRemoved:Delete".to_owned()
        }
        // AppendObject, PutSymlink, …: no S3 equivalent, so no trigger takes them.
        other => format!("oss:{other}"),
    };
    Ok(ObjectRecord {
        sender: Sender::Aliyun,
        event_name,
        bucket: required(event, "/oss/bucket/name")?.to_owned(),
        key: required(event, "/oss/object/key")?.to_owned(),
        etag: etag(str_at(event, "/oss/object/eTag")).to_ascii_lowercase(),
        size: size_at(event, "/oss/object/size"),
        content_type: str_at(event, "/oss/object/objectMeta/mimeType")
            .unwrap_or("")
            .to_owned(),
        request_id: str_at(event, "/responseElements/requestId")
            .unwrap_or("")
            .to_owned(),
        time: str_at(event, "/eventTime").and_then(parse_time),
        callback_vars: Map::new(),
        identity: identity(event),
    })
}

/// A record already in the JD OSS-trigger format (`detail.s3…`).
pub fn jd_event(record: &Value) -> Result<ObjectRecord, String> {
    let detail = record
        .get("detail")
        .ok_or("/detail is missing".to_owned())?;
    Ok(ObjectRecord {
        sender: Sender::JdEvent,
        event_name: with_s3_prefix(required(detail, "/eventName")?),
        bucket: required(detail, "/s3/bucket/name")?.to_owned(),
        key: required(detail, "/s3/object/key")?.to_owned(),
        etag: etag(str_at(detail, "/s3/object/eTag")),
        size: size_at(detail, "/s3/object/size"),
        content_type: str_at(detail, "/s3/object/type").unwrap_or("").to_owned(),
        request_id: str_at(detail, "/responseElements/x-amz-request-id")
            .unwrap_or("")
            .to_owned(),
        time: str_at(record, "/time").and_then(parse_time),
        callback_vars: detail
            .pointer("/callBackVar/callBackVars")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        identity: identity(record),
    })
}
