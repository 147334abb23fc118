//! Golden tests of the OSS bridge's mapping (docs/oss-bridge.md): every payload in
//! `tests/fixtures/notifications/` is recognised as the right sender and reduced to the
//! right record (or recognised as a test event, a handshake, or not a notification); key decoding
//! per sender; the JD event, field by field; deterministic ids; the seed's trigger filters.

mod support;
use fngate::config::{Config, GatewaySettings, OssTrigger};
use fngate::oss::classify::{classify, Notification};
use fngate::oss::event;
use fngate::oss::records::ObjectRecord;
use http::HeaderMap;
use serde_json::{json, Value};
use std::path::Path;
use std::time::SystemTime;
use support::{fixture, FIXTURES};

/// SNS posts its bodies with `x-amz-sns-message-type`.
fn headers_for(name: &str, body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    if name.starts_with("sns-") && !name.starts_with("sns-lambda") {
        let v: Value = serde_json::from_slice(body).unwrap();
        h.insert(
            "x-amz-sns-message-type",
            v["Type"].as_str().unwrap().parse().unwrap(),
        );
    }
    h
}

fn summary(r: &ObjectRecord) -> String {
    let time = r
        .time
        .map(|t| humantime::format_rfc3339_millis(t).to_string());
    format!(
        "{} {} {:?} {:?} etag={:?} size={:?} type={:?} req={:?} time={}",
        r.sender.as_str(),
        r.event_name,
        r.bucket,
        r.key,
        r.etag,
        r.size,
        r.content_type,
        r.request_id,
        time.as_deref().unwrap_or("-")
    )
}

fn describe(name: &str) -> Vec<String> {
    let body = fixture(name);
    match classify(&headers_for(name, &body), &body) {
        Ok(Notification::Records(list)) => list
            .iter()
            .map(|r| match r {
                Ok(r) => summary(r),
                Err(e) => format!("unmappable: {e}"),
            })
            .collect(),
        Ok(Notification::TestEvent) => vec!["test event".into()],
        Ok(Notification::SnsSubscription {
            topic,
            subscribe_url,
        }) => {
            vec![format!("sns subscription {topic} {subscribe_url}")]
        }
        Ok(Notification::SnsUnsubscribe { topic }) => vec![format!("sns unsubscribe {topic}")],
        Ok(Notification::JdHandshake { answer }) => vec![format!("jd handshake {answer}")],
        Err(e) => vec![format!("unrecognised: {e}")],
    }
}

#[test]
fn every_reference_payload_is_recognised_and_mapped() {
    let expected: &[(&str, &[&str])] = &[
        ("aliyun-oss-put.json", &[r#"aliyun-oss s3:ObjectCreated:Put "testbucket" "source/a.png" etag="688a7bf4f233dc9c88a80bf985ab****" size=Some(122539) type="" req="58F9FF2D3DF792092E12044C" time=2022-08-13T06:45:43.000Z"#]),
        ("aws-s3-delete-sam-template.json", &[r#"s3 s3:ObjectRemoved:Delete "{{{bucket}}}" "{{{key}}}" etag="" size=None type="" req="EXAMPLE123456789" time=1970-01-01T00:00:00.000Z"#]),
        ("aws-s3-lifecycle-transition-aws-lambda-go.json", &[r#"s3 s3:LifecycleTransition "example-bucket" "lifecycle-test.dat" etag="abcd1234ef5678901234567890abcdef" size=Some(10485760) type="" req="LIFECYCLE123456789" time=2023-08-20T14:25:00.321Z"#]),
        ("aws-s3-put-aws-lambda-go-with-decoded.json", &[r#"s3 s3:ObjectCreated:Put "sourcebucket" "Happy Face.jpg" etag="d41d8cd98f00b204e9800998ecf8427e" size=Some(1024) type="" req="C3D13FE58DE4C810" time=1970-01-01T00:00:00.123Z"#]),
        ("aws-s3-put-lambda-devguide.json", &[r#"s3 s3:ObjectCreated:Put "DOC-EXAMPLE-BUCKET" "b21b84d653bb07b05b1e6b33684dc11b" etag="b21b84d653bb07b05b1e6b33684dc11b" size=Some(1305107) type="" req="D82B88E5F771F645" time=2019-09-03T19:37:27.192Z"#]),
        ("aws-s3-put-plus-encoded-key-middy.json", &[r#"s3 s3:ObjectCreated:Put "sourcebucket" "This is a picture.jpg" etag="0123456789abcdef0123456789abcdef" size=Some(1024) type="" req="EXAMPLE123456789" time=1970-01-01T00:00:00.000Z"#]),
        ("aws-s3-put.json", &[r#"s3 s3:ObjectCreated:Put "mybucket" "HappyFace.jpg" etag="d41d8cd98f00b204e9800998ecf8427e" size=Some(1024) type="" req="C3D13FE58DE4C810" time=1970-01-01T00:00:00.000Z"#]),
        ("aws-s3-replication-failed-aws-lambda-go.json", &[r#"s3 s3:Replication:OperationFailedReplication "amzn-s3-demo-bucket1" "replication-test.png" etag="e12345ca7e88a38428305d3ff7fcb99f" size=Some(520080) type="" req="123bf045-2b4b-4ca8-a211-c34a63c59426" time=2024-09-05T21:04:32.527Z"#]),
        ("aws-s3-restore-completed-aws-lambda-go.json", &[r#"s3 s3:ObjectRestore:Completed "example-bucket" "glacier-test.txt" etag="0123456789abcdef0123456789abcdef" size=Some(1024) type="" req="EXAMPLE123456789" time=2023-05-10T15:00:00.123Z"#]),
        ("aws-s3-testevent.json", &["test event"]),
        ("ceph-rgw-put.json", &[r#"ceph s3:ObjectCreated:Put "mybucket1" "myimage1.jpg" etag="37b51d194a7513e45b56f6524f2d51f2" size=Some(1024) type="" req="503a4c37-85eb-47cd-8681-2817e80b4281.5330.903595" time=2019-11-22T13:47:35.124Z"#]),
        ("ceph-rgw-records-knative-eventing-contrib.json", &[
            r#"ceph s3:ObjectCreated:Put "ypqmbg-1" "9" etag="37b51d194a7513e45b56f6524f2d51f2" size=Some(3) type="" req="503a4c37-85eb-47cd-8681-2817e80b4281.5330.903595" time=2019-11-22T13:47:35.124Z"#,
            r#"ceph s3:ObjectCreated:Post "ypqmbg-1" "9" etag="37b51d194a7513e45b56f6524f2d51f2" size=Some(3) type="" req="503a4c37-85eb-47cd-8681-2817e80b4281.5330.903595" time=2019-11-22T13:47:35.124Z"#,
            r#"ceph s3:ObjectCreated:Put "tninfx-1" "foo" etag="80dad3aad8584778352c68ab06250327" size=Some(36) type="" req="7387828f-b5e8-46a7-8aef-d02d2b5b759b.4144.7224" time=2019-12-01T17:34:17.092Z"#,
        ]),
        ("eventbridge-object-created.json", &[r#"eventbridge s3:ObjectCreated:Put "DOC-EXAMPLE-BUCKET1" "example-key" etag="b1946ac92492d2347c6235b4d2611184" size=Some(5) type="" req="N4N7GDK58NMKJ12R" time=2021-11-12T00:00:00.000Z"#]),
        ("eventbridge-object-deleted-lifecycle.json", &[r#"eventbridge s3:LifecycleExpiration:DeleteMarkerCreated "DOC-EXAMPLE-BUCKET1" "example-key" etag="d41d8cd98f00b204e9800998ecf8427e" size=None type="" req="20EB74C14654DC47" time=2021-11-12T00:00:00.000Z"#]),
        ("eventbridge-object-deleted.json", &[r#"eventbridge s3:ObjectRemoved:DeleteMarkerCreated "DOC-EXAMPLE-BUCKET1" "example-key" etag="d41d8cd98f00b204e9800998ecf8427e" size=None type="" req="0BH729840619AG5K" time=2021-11-12T00:00:00.000Z"#]),
        ("eventbridge-object-restore-completed.json", &[r#"eventbridge s3:ObjectRestore:Completed "DOC-EXAMPLE-BUCKET1" "example-key" etag="b1946ac92492d2347c6235b4d2611184" size=Some(5) type="" req="189F19CB7FB1B6A4" time=2021-11-12T00:00:00.000Z"#]),
        ("jdcloud-oss-callback-notification-doc.json", &[r#"jdcloud-oss s3:event-type "bucket-name" "object-key" etag="object eTag" size=None type="" req="OSS generated request ID" time=2018-08-06T10:19:51.000Z"#]),
        ("jdcloud-oss-trigger-event-template.json", &[r#"jdcloud-event s3:event-type "bucket-name" "object-key" etag="object eTag" size=None type="object type" req="OSS generated request ID" time=2006-01-02T15:04:05.999Z"#]),
        ("lambda-async-invocation-record-failure.json", &["unrecognised: not a bucket notification of a known sender (S3, SNS, EventBridge, MinIO, Ceph, JD Cloud OSS, Alibaba OSS)"]),
        ("minio-webhook-delete.json", &[r#"minio s3:ObjectRemoved:Delete "vd-main" "Tile_+002_+002.mtl" etag="" size=None type="" req="17A76FF48418FD2E" time=2024-01-05T11:27:59.964Z"#]),
        ("minio-webhook-put.json", &[r#"minio s3:ObjectCreated:Put "test-bucket" "image.jpg" etag="eb52f8e46f60a27a8a1a704e25757f30" size=Some(84452) type="image/jpeg" req="182178E8B36AC9DF" time=2025-02-06T01:04:31.998Z"#]),
        ("sns-lambda-envelope-s3-copy-real.json", &[r#"sns s3:ObjectCreated:Copy "aws-cdk-v2-samples-s3-filter-bucket" "ptest/rename.txt" etag="d41d8cd98f00b204e9800998ecf8427e" size=Some(0) type="" req="KRRA75VHDM28RQJM" time=2023-10-24T03:55:16.105Z"#]),
        ("sns-lambda-envelope-s3-testevent-real.json", &["test event"]),
        ("sns-notification-doc-example-full-signature.json", &["unrecognised: the SNS Message is not an S3 event (not JSON)"]),
        ("sns-notification-doc-example.json", &["unrecognised: the SNS Message is not an S3 event (not JSON)"]),
        // "eventTime": "date" (a snapshot placeholder) cannot be parsed: the receipt time is used.
        ("sns-notification-s3-put-localstack-snapshot.json", &[r#"sns s3:ObjectCreated:Put "<resource:1>" "bucket-key" etag="c8e3a3027a133355210f85cfbb1acc35" size=Some(11) type="" req="amz-request-id" time=-"#]),
        ("sns-notification-s3-put.json", &[r#"sns s3:ObjectCreated:Put "<resource:1>" "bucket-key" etag="c8e3a3027a133355210f85cfbb1acc35" size=Some(11) type="" req="amz-request-id" time=-"#]),
        ("sns-subscription-confirmation.json", &["sns subscription arn:aws:sns:us-west-2:123456789012:MyTopic https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37..."]),
        ("sns-unsubscribe-confirmation.json", &["sns unsubscribe arn:aws:sns:us-west-2:123456789012:MyTopic"]),
    ];
    let mut on_disk: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, listed, "every fixture has an expectation");
    for (name, lines) in expected {
        assert_eq!(describe(name), *lines, "{name}");
    }
}

#[test]
fn keys_are_decoded_per_sender() {
    let aws = |key: &str| {
        json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})
    };
    let minio = |key: &str| {
        json!({"EventName": "s3:ObjectCreated:Put", "Key": "b/x", "Records": [{"eventVersion": "2.0", "eventSource": "minio:s3",
            "eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})
    };
    let ceph = |key: &str| {
        json!({"Records": [{"eventVersion": "2.2", "eventSource": "ceph:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b", "id": "x"}, "object": {"key": key}}, "eventId": "1"}]})
    };
    let key_of = |body: Value| -> Result<String, String> {
        match classify(&HeaderMap::new(), body.to_string().as_bytes()) {
            Ok(Notification::Records(mut r)) => r.remove(0).map(|r| r.key),
            other => panic!("{other:?}"),
        }
    };
    let cases = [
        (aws("red+flower.jpg"), "red flower.jpg"),
        (aws("a%40b"), "a@b"),
        (aws("ds%3D2023-12-12/part-0"), "ds=2023-12-12/part-0"),
        (aws("dir%2Fname"), "dir/name"),
        (aws("a%2Bb"), "a+b"),
        (aws("%E4%B8%96%E7%95%8C.txt"), "世界.txt"),
        (minio("dir%2Fred+flower%2B1.jpg"), "dir/red flower+1.jpg"),
        (
            ceph("literal space+plus%20.jpg"),
            "literal space+plus%20.jpg",
        ),
    ];
    for (body, key) in cases {
        assert_eq!(key_of(body.clone()), Ok(key.to_owned()), "{body}");
    }
    // A key that cannot be decoded makes the record unmappable, with the reason.
    let err = key_of(aws("bad%zzkey")).unwrap_err();
    assert!(
        err.contains("/s3/object/key") && err.contains("percent"),
        "{err}"
    );
}

fn gateway() -> GatewaySettings {
    GatewaySettings {
        region: "cn-north-1".into(),
        account_id: "104064078905".into(),
        base64_owner_pin: "ZnVuY3Rpb24tYS10ZXN0".into(),
        trust_request_id: false,
        trusted_proxies: vec![],
    }
}

/// Triggers from YAML, through the real config loader (`base` anchors `config_file:`).
fn triggers(yaml_triggers: &str, base: &Path) -> Vec<OssTrigger> {
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:1\"]\nfunctions:\n  f:\n    endpoints: [\"http://127.0.0.1:1/\"]\ntriggers:\n  oss:\n{yaml_triggers}"
    );
    Config::from_yaml(&yaml, base, "t.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .triggers
}

fn records(name: &str) -> Vec<ObjectRecord> {
    let body = fixture(name);
    match classify(&headers_for(name, &body), &body) {
        Ok(Notification::Records(r)) => r.into_iter().map(Result::unwrap).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_jd_event_has_every_field_of_the_mapping() {
    // AWS's documented Put example, mapped field by field (docs/oss-bridge.md, "Mapping").
    let t = triggers(
        "    - name: bgd32g0tpenuipc0thog\n      function: f\n      bucket: DOC-EXAMPLE-BUCKET\n      triggerConfig:\n        events: [s3:ObjectCreated:*]\n",
        Path::new("."),
    );
    let record = &records("aws-s3-put-lambda-devguide.json")[0];
    let matched: Vec<_> = event::matching(record, &t).collect();
    assert_eq!(matched.len(), 1);
    let (id, bytes) = event::build(record, matched[0], &gateway(), SystemTime::now());
    let got: Value = serde_json::from_slice(&bytes).unwrap();
    let want = json!({"Records": [{"version": "0", "id": id,
        "time": "2019-09-03T19:37:27.192Z", "source": "oss", "base64OwnerPin": "ZnVuY3Rpb24tYS10ZXN0",
        "resources": ["jrn:oss:cn-north-1:104064078905:DOC-EXAMPLE-BUCKET/b21b84d653bb07b05b1e6b33684dc11b"],
        "region": "cn-north-1", "detailType": "MessageReceived",
        "detail": {"eventName": "s3:ObjectCreated:Put", "responseElements": {"x-amz-request-id": "D82B88E5F771F645"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "bgd32g0tpenuipc0thog",
                "bucket": {"name": "DOC-EXAMPLE-BUCKET", "ownerIdentity": {"principalId": "104064078905"}},
                "object": {"key": "b21b84d653bb07b05b1e6b33684dc11b", "eTag": "b21b84d653bb07b05b1e6b33684dc11b", "size": 1305107, "type": ""}},
            "callBackVar": {"callBackVars": {}}}}]});
    assert_eq!(got, want);
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    // The seed's downloadOSS reads exactly these paths.
    let r = &got["Records"][0];
    assert_eq!(r["region"], "cn-north-1");
    assert_eq!(r["detail"]["s3"]["bucket"]["name"], "DOC-EXAMPLE-BUCKET");
    assert_eq!(
        r["detail"]["s3"]["object"]["key"],
        "b21b84d653bb07b05b1e6b33684dc11b"
    );

    // JD callback variables and MinIO's content type are carried; a delete has size 0.
    let jd = &records("jdcloud-oss-callback-notification-doc.json")[0];
    let any = OssTrigger {
        bucket: "bucket-name".into(),
        ..matched[0].clone()
    };
    let (_, bytes) = event::build(jd, &any, &gateway(), SystemTime::now());
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v["Records"][0]["detail"]["callBackVar"]["callBackVars"],
        json!({"var1": ["value1", "value3"], "var2": ["value2"]})
    );
    let minio = &records("minio-webhook-put.json")[0];
    let (_, bytes) = event::build(minio, &any, &gateway(), SystemTime::now());
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v["Records"][0]["detail"]["s3"]["object"]["type"],
        "image/jpeg"
    );
    let delete = &records("minio-webhook-delete.json")[0];
    let (_, bytes) = event::build(delete, &any, &gateway(), SystemTime::now());
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["Records"][0]["detail"]["s3"]["object"]["size"], 0);
}

#[test]
fn ids_are_deterministic_per_record_and_trigger() {
    let t = triggers(
        "    - name: a\n      function: f\n      bucket: test-bucket\n      triggerConfig:\n        events: [s3:ObjectCreated:*]\n    - name: b\n      function: f\n      bucket: other\n      triggerConfig:\n        events: [s3:ObjectCreated:*]\n",
        Path::new("."),
    );
    let once = &records("minio-webhook-put.json")[0];
    let again = &records("minio-webhook-put.json")[0];
    assert_eq!(
        event::event_id(once, &t[0]),
        event::event_id(again, &t[0]),
        "a retried notification keeps its id"
    );
    // The time of receipt does not enter the id.
    let (id1, _) = event::build(once, &t[0], &gateway(), SystemTime::UNIX_EPOCH);
    let (id2, _) = event::build(once, &t[0], &gateway(), SystemTime::now());
    assert_eq!(id1, id2);
    assert_ne!(
        event::event_id(once, &t[0]),
        event::event_id(once, &t[1]),
        "another trigger"
    );
    // Any difference in the record, even in a field the mapping ignores, is another event.
    let body = String::from_utf8(fixture("minio-webhook-put.json")).unwrap();
    for (from, to) in [
        ("182178E8B3728CAC", "182178E8B3728CAD"),
        ("192.168.1.10\"", "192.168.1.11\""),
    ] {
        let changed = body.replacen(from, to, 1);
        let Ok(Notification::Records(r)) = classify(&HeaderMap::new(), changed.as_bytes()) else {
            panic!()
        };
        let other = r[0].as_ref().unwrap();
        assert_ne!(
            event::event_id(once, &t[0]),
            event::event_id(other, &t[0]),
            "{from}"
        );
    }
}

#[test]
fn the_seeds_trigger_file_loads_as_written_and_filters() {
    let conf = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/conf"));
    let seed = std::fs::read_to_string(conf.join("ossTrigger.yml")).unwrap();
    assert!(
        seed.contains("   events:\n       s3:ObjectCreated:Put\n       s3:ObjectCreated:Post\n"),
        "{seed}"
    );
    let t = triggers("    - name: gif\n      function: f\n      bucket: media\n      config_file: ossTrigger.yml\n", conf);
    assert_eq!(
        t[0].events.names().collect::<Vec<_>>(),
        ["s3:ObjectCreated:Put", "s3:ObjectCreated:Post"]
    );
    assert_eq!(
        (t[0].prefix.as_str(), t[0].suffix.as_str()),
        ("sourcefile/", ".gif")
    );
    let record = |event: &str, key: &str| {
        let body = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event,
            "s3": {"bucket": {"name": "media"}, "object": {"key": key}}}]});
        let Ok(Notification::Records(mut r)) =
            classify(&HeaderMap::new(), body.to_string().as_bytes())
        else {
            panic!()
        };
        r.remove(0).unwrap()
    };
    let fires = |r: &ObjectRecord| event::matching(r, &t).count() == 1;
    assert!(fires(&record("ObjectCreated:Put", "sourcefile/x.gif")));
    assert!(fires(&record("ObjectCreated:Post", "sourcefile/x.gif")));
    assert!(!fires(&record("ObjectCreated:Put", "sourcefile/x.png")));
    assert!(!fires(&record("ObjectCreated:Put", "other/x.gif")));
    assert!(!fires(&record("ObjectRemoved:Delete", "sourcefile/x.gif")));
    assert!(
        !fires(&record("ObjectCreated:Copy", "sourcefile/x.gif")),
        "not in the seed's list"
    );
    assert!(
        !fires(&record("ObjectCreated:Put", "SourceFile/x.GIF")),
        "case-sensitive"
    );
    // The same trigger inline, as a list.
    let inline = triggers("    - name: gif\n      function: f\n      bucket: media\n      triggerConfig:\n        events: [s3:ObjectCreated:Put, s3:ObjectCreated:Post]\n        filter: {key: {prefix: sourcefile/, suffix: .gif}}\n", conf);
    assert_eq!(inline[0].events, t[0].events);
}

#[test]
fn trigger_config_errors_name_the_problem() {
    let conf = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/conf"));
    let load = |yaml: &str| {
        let yaml = format!(
            "server:\n  listen: [\"127.0.0.1:1\"]\nfunctions:\n  f:\n    endpoints: [\"http://127.0.0.1:1/\"]\ntriggers:\n  oss:\n{yaml}"
        );
        Config::from_yaml(&yaml, conf, "t.yaml")
            .unwrap_err()
            .to_string()
    };
    let t = |name: &str, bucket: &str, config: &str| {
        format!("    - name: {name}\n      function: f\n      bucket: {bucket}\n{config}")
    };
    let cases = [
        (
            format!("{}{}", t("seed", "media", "      config_file: ossTrigger.yml\n"), t("all", "media", "      triggerConfig:\n        events: s3:ObjectCreated:*\n")),
            "t.yaml:12:7: triggers \"seed\" and \"all\" overlap: both take s3:ObjectCreated:Put, s3:ObjectCreated:Post events on bucket \"media\"",
        ),
        (t("x", "b", "      triggerConfig:\n        events: [s3:ObjectCreated:PutTagging]\n"), "unknown event \"s3:ObjectCreated:PutTagging\""),
        (t("x", "b", "      triggerConfig:\n        events: [ObjectRemoved:Delete]\n"), "(did you mean s3:ObjectRemoved:Delete?)"),
        (t("x", "b", "      config_file: missing.yml\n"), "cannot read config_file"),
        (t("x", "b", ""), "needs exactly one of `triggerConfig` and `config_file`"),
        (t("x", "b", "      triggerConfig:\n        events: []\n"), "events is empty"),
    ];
    for (yaml, expected) in cases {
        let err = load(&yaml);
        assert!(err.contains(expected), "{err}\nshould contain {expected}");
    }
    // Disjoint filters on one bucket are fine.
    let ok = format!(
        "{}{}",
        t("gif", "media", "      triggerConfig:\n        events: s3:ObjectCreated:*\n        filter: {key: {suffix: .gif}}\n"),
        t("png", "media", "      triggerConfig:\n        events: s3:ObjectCreated:*\n        filter: {key: {suffix: .png}}\n")
    );
    assert_eq!(triggers(&ok, conf).len(), 2);
}

#[test]
fn sns_is_recognised_without_its_header_and_test_events_inside_it() {
    let body = fixture("sns-notification-s3-put.json");
    assert!(
        matches!(classify(&HeaderMap::new(), &body), Ok(Notification::Records(r)) if r.len() == 1)
    );
    let test = json!({"Type": "Notification", "TopicArn": "arn:aws:sns:x", "MessageId": "m",
        "Message": fixture_text("aws-s3-testevent.json")});
    assert!(matches!(
        classify(&HeaderMap::new(), test.to_string().as_bytes()),
        Ok(Notification::TestEvent)
    ));
    let mut h = HeaderMap::new();
    h.insert(
        "x-jdcloud-message-type",
        "SubscriptionConfirmation".parse().unwrap(),
    );
    match classify(&h, b"hello") {
        Ok(Notification::JdHandshake { answer }) => assert_eq!(answer, "aGVsbG8="),
        other => panic!("{other:?}"),
    }
    for bad in [
        &b"not json"[..],
        b"{}",
        b"[]",
        b"{\"Records\": 5}",
        b"{\"Records\": [{\"eventSource\": \"aws:s3\"}]}",
    ] {
        match classify(&HeaderMap::new(), bad) {
            Err(_) => {}
            Ok(Notification::Records(r)) => assert!(r.iter().all(|r| r.is_err()), "{r:?}"),
            other => panic!("{other:?}"),
        }
    }
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}
