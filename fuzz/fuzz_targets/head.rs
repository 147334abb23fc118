//! Request heads: any bytes give a head, "not yet", or a refusal; never a panic. A head that
//! parses answers every question the gateway asks of it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(head)) = fngate::http1::head::parse(data) {
        let _ = head.check_utf8(data);
        let _ = (head.target(data), head.path(data), head.query(data));
        let _ = head.headers(data).count();
        let _ = head.header(data, "host");
        if let Ok(target) = std::str::from_utf8(&data[..head.len.min(data.len())]) {
            let _ = fngate::http1::head::absolute_form(target);
        }
    }
});
