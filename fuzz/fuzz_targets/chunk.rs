//! Chunked framing: size lines and trailer sections from any bytes; a parsed length never
//! points past the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((len, _size))) = fngate::http1::chunk::size_line(data) {
        assert!(len <= data.len());
    }
    if let Ok(Some(len)) = fngate::http1::chunk::trailers(data) {
        assert!(len <= data.len());
    }
});
