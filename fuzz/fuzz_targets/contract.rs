//! The reply contract: any bytes from a function are a reply or a violation, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = fngate::contract::check(data) {
        assert!((100..=599).contains(&reply.status));
    }
    let _ = fngate::contract::raised(data);
});
