//! The bytes as a request body, read as every JSON request type (the product
//! API's and a log event) and compared with serde_json's reading. See
//! `swiftlet::testing::fuzzing::check_requests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet::testing::fuzzing::check_requests(data);
});
