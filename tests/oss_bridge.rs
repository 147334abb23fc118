//! The OSS bridge endpoint on real sockets, `delivery: sync`: credential, method and size checks,
//! each sender's body delivered as the JD event to the matching function, control messages
//! answered without an invocation, and failures answered 5xx so that the sender retries.

mod support;
use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "test-token-0123456789";
fn bridge(f: &FakeFunction, bridge_extra: &str) -> Gateway {
    Gateway::start(&format!(
        "gateway:\n  region: cn-north-1\n  account_id: \"594035263019\"\n  owner_pin: \"594035263019\"\nfunctions:\n  fn:\n    endpoints: [\"{}\"]\n    timeout: 2s\napis:\n  - id: a\n    routes:\n      - path: /api/{{x}}\n        function: fn\ntriggers:\n  oss:\n    - name: test-trigger\n      function: fn\n      bucket: test-bucket\n      triggerConfig:\n        events: s3:ObjectCreated:*\n    - name: aws-trigger\n      function: fn\n      bucket: sourcebucket\n      triggerConfig:\n        events: [s3:ObjectCreated:Put]\n        filter: {{key: {{suffix: .jpg}}}}\noss_bridge:\n  path: /oss/notify\n  token: {TOKEN}\n  delivery: sync\n  max_body_bytes: 65536\n{bridge_extra}",
        f.url()
    ))
}

fn post(g: &Gateway, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let auth = format!("Bearer {TOKEN}");
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    g.client().request("POST", "/oss/notify", &all, body)
}

#[test]
fn a_minio_notification_reaches_the_function_as_the_jd_event() {
    let f = FakeFunction::replying(json!("download file successfully"));
    let g = bridge(&f, "");
    let r = post(
        &g,
        &[("Content-Type", "application/json")],
        &fixture("minio-webhook-put.json"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"records": 1, "matched": 1, "delivered": 1, "unmappable": 0})
    );
    let call = f.last_event();
    let event = call.json();
    let record = &event["Records"][0];
    assert_eq!(call.header("x-jdcloud-request-id"), record["id"].as_str());
    assert_eq!(call.header("x-fngate-function"), Some("fn"));
    assert_eq!(record["source"], "oss");
    assert_eq!(record["region"], "cn-north-1");
    assert_eq!(record["detail"]["eventName"], "s3:ObjectCreated:Put");
    assert_eq!(record["detail"]["s3"]["configurationId"], "test-trigger");
    assert_eq!(record["detail"]["s3"]["bucket"]["name"], "test-bucket");
    assert_eq!(record["detail"]["s3"]["object"]["key"], "image.jpg");
    assert_eq!(record["detail"]["s3"]["object"]["size"], 84452);
    assert_eq!(
        record["resources"][0],
        "jrn:oss:cn-north-1:594035263019:test-bucket/image.jpg"
    );
    // The same notification again (a sender's retry) carries the same id.
    assert_eq!(
        post(&g, &[], &fixture("minio-webhook-put.json")).status,
        200
    );
    let events = f.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].json()["Records"][0]["id"],
        events[1].json()["Records"][0]["id"]
    );
}

#[test]
fn sns_and_direct_s3_bodies_are_delivered_with_decoded_keys() {
    let f = FakeFunction::replying(json!(null));
    let g = bridge(&f, "");
    // aws-s3-put-plus-encoded-key-middy: bucket sourcebucket, key This+is+a+picture.jpg
    let record =
        serde_json::from_slice::<Value>(&fixture("aws-s3-put-plus-encoded-key-middy.json"))
            .unwrap();
    let sns = json!({"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Subject": "Amazon S3 Notification", "Message": record.to_string(), "Timestamp": "2026-11-21T10:00:00.000Z"});
    let r = post(
        &g,
        &[
            ("x-amz-sns-message-type", "Notification"),
            ("Content-Type", "text/plain; charset=UTF-8"),
        ],
        sns.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let key = &f.last_event().json()["Records"][0]["detail"]["s3"]["object"]["key"];
    assert_eq!(key, "This is a picture.jpg");
    let r = post(&g, &[], &fixture("aws-s3-put-plus-encoded-key-middy.json"));
    assert_eq!(r.json()["delivered"], 1);
    assert_eq!(f.events().len(), 2);
}

#[test]
fn the_credential_method_and_size_are_checked_before_anything_is_called() {
    let f = FakeFunction::replying(json!(null));
    let g = bridge(&f, "");
    let body = fixture("minio-webhook-put.json");
    let mut c = g.client();
    let r = c.request("POST", "/oss/notify", &[], &body);
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (401, Some("UNAUTHORIZED"))
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = c.request(
        "POST",
        "/oss/notify",
        &[("Authorization", "Bearer nope")],
        &body,
    );
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (403, Some("FORBIDDEN"))
    );
    let r = c.request("POST", "/oss/notify?token=nope", &[], &body);
    assert_eq!(r.status, 403);
    let r = c.request("GET", &format!("/oss/notify?token={TOKEN}"), &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    // The token in the query string, as SNS and Ceph subscription URLs carry it.
    let r = c.request("POST", &format!("/oss/notify?token={TOKEN}"), &[], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let big = vec![b' '; 70_000];
    let r = post(&g, &[], &big);
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );
    assert_eq!(
        f.events().len(),
        1,
        "only the authorised, well-formed notification"
    );
    // The API routes are untouched by the bridge.
    assert_eq!(
        g.client().get("/api/1").status,
        503,
        "the fake replies null: a contract violation"
    );
}

#[test]
fn control_messages_are_answered_and_invoke_nothing() {
    let f = FakeFunction::replying(json!(null));
    let g = bridge(&f, "");
    let r = post(
        &g,
        &[("x-amz-sns-message-type", "SubscriptionConfirmation")],
        &fixture("sns-subscription-confirmation.json"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        &g,
        &[("x-amz-sns-message-type", "UnsubscribeConfirmation")],
        &fixture("sns-unsubscribe-confirmation.json"),
    );
    assert_eq!(r.status, 200);
    let r = post(&g, &[], &fixture("aws-s3-testevent.json"));
    assert_eq!((r.status, r.json()), (200, json!({"test": true})));
    let r = post(
        &g,
        &[("x-jdcloud-message-type", "SubscriptionConfirmation")],
        b"{\"hello\":1}",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "eyJoZWxsbyI6MX0="));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // Records that match no trigger are acknowledged.
    let r = post(&g, &[], &fixture("aws-s3-put.json"));
    assert_eq!(
        r.json(),
        json!({"records": 1, "matched": 0, "delivered": 0, "unmappable": 0})
    );
    assert!(f.events().is_empty());
}

#[test]
fn unmappable_bodies_get_400_and_failures_get_5xx_for_a_retry() {
    let f = FakeFunction::start(|rec| {
        let key = rec.json()["Records"][0]["detail"]["s3"]["object"]["key"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        match key.as_str() {
            "fail.jpg" => Scripted {
                status: 500,
                ..Scripted::json(json!({"errorType": "OSError", "errorMessage": "disk full"}))
            },
            _ => Scripted::json(json!("ok")),
        }
    });
    let g = bridge(&f, "");
    for bad in [
        &b"not json"[..],
        b"{\"Records\": [{\"eventSource\": \"aws:s3\"}]}",
        &fixture("lambda-async-invocation-record-failure.json"),
    ] {
        let r = post(&g, &[], bad);
        assert_eq!(
            (r.status, r.header("x-fngate-error")),
            (400, Some("BAD_NOTIFICATION")),
            "{}",
            r.text()
        );
    }
    let body = |key: &str| {
        json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "sourcebucket"}, "object": {"key": key, "size": 1}}}]}).to_string()
    };
    let r = post(&g, &[], body("fail.jpg").as_bytes());
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (503, Some("FUNCTION_ERROR"))
    );
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("OSError: disk full"));
    drop(f);
    let r = post(&g, &[], body("ok.jpg").as_bytes());
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (502, Some("FUNCTION_UNREACHABLE"))
    );
}

#[test]
fn sns_subscriptions_are_confirmed_only_when_configured_and_only_on_sns_or_listed_hosts() {
    let f = FakeFunction::replying(json!(null));
    // Stands in for SNS's ConfirmSubscription endpoint.
    let sns = FakeFunction::replying(json!({"ConfirmSubscriptionResponse": {}}));
    let message = |url: &str| {
        json!({"Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "t", "TopicArn": "arn:aws:sns:us-west-2:1:MyTopic",
            "Message": "You have chosen to subscribe", "SubscribeURL": url, "Timestamp": "2026-11-21T10:00:00.000Z"}).to_string()
    };
    let url = format!("http://{}/?Action=ConfirmSubscription&Token=t", sns.addr);
    let headers = [("x-amz-sns-message-type", "SubscriptionConfirmation")];

    let off = bridge(&f, "");
    let r = post(&off, &headers, message(&url).as_bytes());
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"subscription": "received"}))
    );
    assert!(sns.events().is_empty(), "not fetched unless configured");

    let on = bridge(
        &f,
        &format!(
            "  confirm_subscriptions: true\n  subscription_hosts: [\"{}\"]\n",
            sns.addr
        ),
    );
    let r = post(&on, &headers, message(&url).as_bytes());
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"subscription": "confirmed"}))
    );
    let got = sns.last_event();
    assert_eq!(got.path, "/?Action=ConfirmSubscription&Token=t");
    for (url, why) in [
        (
            "http://example.com/?Action=ConfirmSubscription",
            "not an SNS host",
        ),
        (
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "TLS",
        ),
        (
            "http://sns.mybucket.s3.amazonaws.com/?Action=ConfirmSubscription",
            "not an SNS host",
        ),
        (
            "http://127.0.0.1:9/?Action=ConfirmSubscription",
            "not an SNS host",
        ),
    ] {
        let r = post(&on, &headers, message(url).as_bytes());
        assert_eq!(r.json()["confirmed"], false, "{url}");
        assert!(
            r.json()["why"].as_str().unwrap().contains(why),
            "{}",
            r.text()
        );
    }
    assert_eq!(sns.events().len(), 1);
    assert!(f.events().is_empty());
}
