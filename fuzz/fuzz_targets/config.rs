//! The config loader: any text is a config or a list of problems, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fngate::config::Config::from_yaml(text, std::path::Path::new("/nonexistent"), "f.yaml");
    }
});
