//! Micro-benchmarks (criterion): route lookup, event building, reply validation and
//! notification mapping — the pure steps of the request path and the OSS bridge.
//!
//!     cargo bench --bench micro

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fngate::config::{Api, Config, EventFormat};
use fngate::event::apigw::{self, ApiRequest};
use fngate::oss::{classify, event};
use fngate::routing::RouteTable;
use http::{HeaderMap, HeaderValue, Method};
use std::hint::black_box;
use std::path::Path;
use std::time::SystemTime;

/// A config with `n` parameterised routes over one function and one API.
fn config(n: usize) -> Config {
    let mut yaml = String::from("server:\n  listen: [\"127.0.0.1:1\"]\ngateway:\n  region: cn-north-1\n  account_id: \"594035263019\"\nfunctions:\n  f:\n    endpoints: [\"http://127.0.0.1:1/\"]\ntriggers:\n  oss:\n    - name: t\n      function: f\n      bucket: b\n      triggerConfig:\n        events: [s3:ObjectCreated:*, s3:ObjectRemoved:*]\napis:\n  - id: bench\n    routes:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "      - path: /svc{i}/users/{{id}}/orders/{{order}}\n        function: f\n"
        ));
    }
    Config::from_yaml(&yaml, Path::new("."), "bench.yaml").expect("bench config")
}

fn route_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("route lookup");
    for n in [10, 100, 1000] {
        let cfg = config(n);
        let table = RouteTable::build(&cfg.routes).unwrap();
        let path = format!("/svc{}/users/42/orders/7", n / 2);
        g.bench_with_input(BenchmarkId::from_parameter(n), &path, |b, path| {
            b.iter(|| black_box(table.lookup(&Method::GET, black_box(path))))
        });
    }
    g.finish();
}

/// `n` header lines as a client sends them (mixed case, in order).
fn headers(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut h: Vec<(String, Vec<u8>)> = [
        ("Host", "api.example.com"),
        ("User-Agent", "curl/8.5.0"),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
    .collect();
    for i in h.len()..n {
        let value = b"some-value-of-moderate-length-0123456789".to_vec();
        h.push((format!("X-Custom-Header-{i}"), value));
    }
    h
}

fn as_lines(h: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    h.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect()
}

fn event_building(c: &mut Criterion) {
    let cfg = config(1);
    let (small_owned, big_owned) = (headers(4), headers(30));
    let (small_headers, big_headers) = (as_lines(&small_owned), as_lines(&big_owned));
    let json_body: Vec<u8> = {
        let mut s = String::from("{\"items\":[");
        while s.len() < 64 * 1024 - 64 {
            s.push_str("{\"id\":12345,\"name\":\"item \\\"quoted\\\" 名前\",\"ok\":true},");
        }
        s.push_str("{}]}");
        s.into_bytes()
    };
    let params = [("id", "42"), ("order", "7")];
    let mut g = c.benchmark_group("event building");
    // Each format's event from the same request (issue 20: no generic JSON value on the path).
    for format in [
        EventFormat::Jdcloud,
        EventFormat::AwsV1,
        EventFormat::AwsV2,
        EventFormat::Aliyun,
    ] {
        let api = Api {
            format,
            ..cfg.apis[0].clone()
        };
        let template = apigw::Template::new(&api, &cfg.gateway);
        let request = |method, headers, body| ApiRequest {
            template: &template,
            request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            method,
            path: "/svc0/users/42/orders/7",
            query: "lang=zh&page=2&tag=a&tag=b",
            headers,
            path_params: &params,
            forwarded_for: "203.0.113.7, 127.0.0.1",
            source_ip: "203.0.113.7",
            body,
            route_path: "/svc0/users/{id}/orders/{order}",
            any_method: true,
            binary: false,
            identity: None,
            time: SystemTime::now(),
        };
        // The JD names are the earlier runs' names, so that before and after compare.
        let name = |what: &str| match format {
            EventFormat::Jdcloud => what.to_owned(),
            other => format!("{what}, {other:?}"),
        };
        let small = request("GET", &small_headers, b"");
        g.throughput(Throughput::Elements(1));
        g.bench_function(name("small GET"), |b| {
            b.iter(|| black_box(apigw::build(black_box(&small)).unwrap()))
        });
        let big = request("POST", &big_headers, &json_body);
        g.throughput(Throughput::Bytes(json_body.len() as u64));
        g.bench_function(name("64 KiB JSON POST, 30 headers"), |b| {
            b.iter(|| black_box(apigw::build(black_box(&big)).unwrap()))
        });
    }
    g.finish();
}

fn reply_validation(c: &mut Criterion) {
    // The usual reply (string headers): read in one pass.
    let small = br#"{"statusCode":200,"headers":{"content-type":"application/json","x-a":"1"},"body":"{\"ok\":true}"}"#.to_vec();
    // A header array: the one-pass read gives up and the field-by-field path reads it again.
    let array = br#"{"statusCode":200,"headers":{"content-type":"application/json","x-a":["1","2"]},"body":"{\"ok\":true}"}"#.to_vec();
    let big = {
        let body = "x\\\"y".repeat(1024 * 1024 / 4);
        format!("{{\"statusCode\":200,\"headers\":{{\"content-type\":\"text/plain\"}},\"body\":\"{body}\"}}").into_bytes()
    };
    let mut g = c.benchmark_group("reply validation");
    g.bench_function("small", |b| {
        b.iter(|| black_box(fngate::contract::check(black_box(&small)).unwrap()))
    });
    g.bench_function("small, a header array", |b| {
        b.iter(|| black_box(fngate::contract::check(black_box(&array)).unwrap()))
    });
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("1 MiB body", |b| {
        b.iter(|| black_box(fngate::contract::check(black_box(&big)).unwrap()))
    });
    g.finish();
}

/// One record of each sender, small and self-contained (shapes as in docs/oss-bridge.md).
fn notifications() -> Vec<(&'static str, HeaderMap, Vec<u8>)> {
    let s3 = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2","eventTime":"2019-09-03T19:37:27.192Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:AIDAINPONIXQXHT3IKHL2"},"requestParameters":{"sourceIPAddress":"205.255.255.255"},"responseElements":{"x-amz-request-id":"D82B88E5F771F645","x-amz-id-2":"vlR7PnpV2Ce81l0PRw6jlUpck7Jo5ZsQjryTjKlc5aLWGVHPZLj5NeC6qMa0emYBDXOo6QBU0Wo="},"s3":{"s3SchemaVersion":"1.0","configurationId":"828aa6fc-f7b5-4305-8584-487c791949c1","bucket":{"name":"b","ownerIdentity":{"principalId":"A3I5XTEXAMAI3E"},"arn":"arn:aws:s3:::b"},"object":{"key":"dir/red+flower.jpg","size":1305107,"eTag":"b21b84d653bb07b05b1e6b33684dc11b","sequencer":"0C0F6F405D6ED209E1"}}}]}"#;
    let sns = serde_json::json!({"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324","TopicArn":"arn:aws:sns:us-west-2:123456789012:MyTopic","Subject":"Amazon S3 Notification","Message":s3,"Timestamp":"2019-09-03T19:37:28.000Z","SignatureVersion":"1","Signature":"x","SigningCertURL":"https://sns.us-west-2.amazonaws.com/x.pem","UnsubscribeURL":"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"}).to_string();
    let eventbridge = r#"{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created","source":"aws.s3","account":"111122223333","time":"2021-11-12T00:00:00Z","region":"ca-central-1","resources":["arn:aws:s3:::b"],"detail":{"version":"0","bucket":{"name":"b"},"object":{"key":"example-key","size":5,"etag":"b1946ac92492d2347c6235b4d2611184","version-id":"IYV3p45BT0ac8hjHg1houSdS1a.Mro8e","sequencer":"617f08299329d189"},"request-id":"N4N7GDK58NMKJ12R","requester":"123456789012","source-ip-address":"1.2.3.4","reason":"PutObject"}}"#;
    let minio = r#"{"EventName":"s3:ObjectCreated:Put","Key":"b/image.jpg","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2025-02-06T01:04:31.998Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"access_key"},"requestParameters":{"principalId":"access_key","region":"","sourceIPAddress":"192.168.1.10"},"responseElements":{"x-amz-id-2":"dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8","x-amz-request-id":"182178E8B36AC9DF","x-minio-deployment-id":"2369dcb4-348b-4d30-8fc9-61ab089ba4bc","x-minio-origin-endpoint":"https://minio.test.svc.cluster.local"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"b","ownerIdentity":{"principalId":"access_key"},"arn":"arn:aws:s3:::b"},"object":{"key":"image.jpg","size":84452,"eTag":"eb52f8e46f60a27a8a1a704e25757f30","contentType":"image/jpeg","userMetadata":{"content-type":"image/jpeg"},"sequencer":"182178E8B3728CAC"}},"source":{"host":"192.168.1.10","port":"","userAgent":"MinIO (linux; amd64) minio-go/v7.0.83"}}]}"#;
    let ceph = r#"{"Records":[{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"default","eventTime":"2024-04-21T10:03:18.419013Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"user"},"requestParameters":{"sourceIPAddress":""},"responseElements":{"x-amz-request-id":"89759221.14369.13245020851017049375","x-amz-id-2":"3821-default-default"},"s3":{"s3SchemaVersion":"1.0","configurationId":"HTTPNotification","bucket":{"name":"b","ownerIdentity":{"principalId":"user"},"arn":"arn:aws:s3:default::b","id":"89759221.14371.2"},"object":{"key":"notification file.json","size":177,"eTag":"a60023221945e53a31f07df71f37f032","versionId":"","sequencer":"66E42466712CA919","metadata":[],"tags":[]}},"eventId":"1713693798.430517.a60023221945e53a31f07df71f37f032","opaqueData":""}]}"#;
    let jd = r#"{"Records":[{"eventVersion":"1.0","eventSource":"oss","awsRegion":"cn-north-1","eventTime":"Mon, 06 Aug 2018 10:19:51 GMT","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"u"},"requestParameters":{"sourceIPAddress":"1.2.3.4"},"responseElements":{"x-amz-request-id":"req"},"s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"b","ownerIdentity":{"principalId":"o"}},"object":{"key":"object-key","eTag":"etag"}},"callBackVar":{"callBackVars":{"var1":["value1"]}}}]}"#;
    let mut sns_headers = HeaderMap::new();
    sns_headers.insert(
        "x-amz-sns-message-type",
        HeaderValue::from_static("Notification"),
    );
    vec![
        ("s3", HeaderMap::new(), s3.as_bytes().to_vec()),
        ("sns", sns_headers, sns.into_bytes()),
        (
            "eventbridge",
            HeaderMap::new(),
            eventbridge.as_bytes().to_vec(),
        ),
        ("minio", HeaderMap::new(), minio.as_bytes().to_vec()),
        ("ceph", HeaderMap::new(), ceph.as_bytes().to_vec()),
        ("jdcloud-oss", HeaderMap::new(), jd.as_bytes().to_vec()),
    ]
}

fn notification_mapping(c: &mut Criterion) {
    let cfg = config(1);
    let mut g = c.benchmark_group("notification mapping");
    for (sender, headers, body) in notifications() {
        g.bench_function(sender, |b| {
            b.iter(|| {
                let Ok(classify::Notification::Records(records)) =
                    classify::classify(&headers, black_box(&body))
                else {
                    panic!("{sender} did not map");
                };
                for record in records.iter().flatten() {
                    for trigger in event::matching(record, &cfg.triggers) {
                        black_box(event::build(
                            record,
                            trigger,
                            &cfg.gateway,
                            SystemTime::now(),
                        ));
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    route_lookup,
    event_building,
    reply_validation,
    notification_mapping
);
criterion_main!(benches);
