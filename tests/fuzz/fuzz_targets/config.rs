//! Any configuration text is refused or accepted, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dlpgate::config::load_str(std::path::Path::new("fuzz.yaml"), text);
    }
});
