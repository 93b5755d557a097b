//! The Range header of video playback. See `swiftlet_protocol::fuzzing::check_range`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    swiftlet_protocol::fuzzing::check_range(data);
});
