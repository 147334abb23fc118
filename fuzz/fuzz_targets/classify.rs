//! Bucket notifications: any body, with or without SNS's header, is classified or refused.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (flag, body) = data.split_first().unwrap_or((&0, &[]));
    let mut headers = http::HeaderMap::new();
    if flag & 1 == 1 {
        headers.insert("x-amz-sns-message-type", http::HeaderValue::from_static("Notification"));
    }
    let _ = fngate::oss::classify::classify(&headers, body);
});
