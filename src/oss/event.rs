//! Matching a record against the triggers, and the JD Cloud OSS-trigger event it becomes
//! (docs/oss-bridge.md): one `{"Records": [record]}` per record per matching trigger.

use super::records::ObjectRecord;
use crate::config::{GatewaySettings, OssTrigger};
use serde_json::json;
use std::time::SystemTime;
use uuid::Uuid;

/// Namespace of the deterministic event ids (UUID v5).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x8580c16c_1dad_4d4e_ac49_22d358dc2414);

/// Triggers whose bucket, event set and key filters all take the record.
pub fn matching<'a>(
    record: &'a ObjectRecord,
    triggers: &'a [OssTrigger],
) -> impl Iterator<Item = &'a OssTrigger> + 'a {
    triggers.iter().filter(move |t| {
        t.bucket == record.bucket
            && t.events.contains(&record.event_name)
            && record.key.starts_with(&t.prefix)
            && record.key.ends_with(&t.suffix)
    })
}

/// The same source record for the same trigger always gets the same id, so a retried
/// notification is recognisable; anything else differs.
pub fn event_id(record: &ObjectRecord, trigger: &OssTrigger) -> String {
    let name = format!(
        "{}\n{}\n{}",
        record.sender.as_str(),
        trigger.name,
        record.identity
    );
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string()
}

/// The JD event for one record and one trigger. `received` stands in for a missing or
/// unparseable source time.
pub fn build(
    record: &ObjectRecord,
    trigger: &OssTrigger,
    gateway: &GatewaySettings,
    received: SystemTime,
) -> (String, Vec<u8>) {
    let id = event_id(record, trigger);
    let time = humantime::format_rfc3339_millis(record.time.unwrap_or(received)).to_string();
    let resource = format!(
        "jrn:oss:{}:{}:{}/{}",
        gateway.region, gateway.account_id, record.bucket, record.key
    );
    let event = json!({"Records": [{
        "version": "0",
        "id": id,
        "time": time,
        "source": "oss",
        "base64OwnerPin": gateway.base64_owner_pin,
        "resources": [resource],
        "region": gateway.region,
        "detailType": "MessageReceived",
        "detail": {
            "eventName": record.event_name,
            "responseElements": {"x-amz-request-id": record.request_id},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": trigger.name,
                "bucket": {
                    "name": record.bucket,
                    "ownerIdentity": {"principalId": gateway.account_id},
                },
                "object": {
                    "key": record.key,
                    "eTag": record.etag,
                    "size": record.size.unwrap_or(0),
                    "type": record.content_type,
                },
            },
            "callBackVar": {"callBackVars": record.callback_vars},
        },
    }]});
    (id, event.to_string().into_bytes())
}
