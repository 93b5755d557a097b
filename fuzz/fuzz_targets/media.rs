//! Video container sniffing by magic bytes. See `swiftlet_protocol::fuzzing::check_sniff`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet_protocol::fuzzing::check_sniff(data);
});
