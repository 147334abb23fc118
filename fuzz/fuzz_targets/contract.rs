//! The reply contracts: any bytes from a function are a reply or a violation under every API
//! format's rules (JD Cloud's, AWS's payload 1.0 and 2.0, Alibaba Cloud's), never a panic.
#![no_main]
use fngate::config::EventFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [
        EventFormat::Jdcloud,
        EventFormat::AwsV1,
        EventFormat::AwsV2,
        EventFormat::Aliyun,
    ] {
        if let Ok(reply) = fngate::contract::check_format(format, data) {
            assert!((100..=599).contains(&reply.status));
            // Every header that reaches the client is one a client can read.
            for (name, value) in &reply.headers {
                assert!(!name.is_empty() && !value.contains(['\r', '\n']), "{name:?}: {value:?}");
            }
        }
    }
    let _ = fngate::contract::raised(data);
});
