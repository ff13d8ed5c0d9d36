#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kennel_fuzz::backup::run(data));
