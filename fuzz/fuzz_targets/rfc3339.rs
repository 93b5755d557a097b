//! RFC 3339 timestamps as log events and `GET /api/logs` carry them: arbitrary
//! bytes to `parse_rfc3339`; see `check_rfc3339` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet_protocol::fuzzing::check_rfc3339(data);
});
