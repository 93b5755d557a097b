//! multipart/form-data as uploads send it, fed in pieces. See `swiftlet_protocol::fuzzing::check_multipart`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet_protocol::fuzzing::check_multipart(data);
});
