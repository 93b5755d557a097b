//! Byte 0 picks the method (and whether the test routes exist), the rest is
//! the path; the router's answer is compared with its route table. See
//! `swiftlet::testing::fuzzing::check_route`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet::testing::fuzzing::check_route(data);
});
