//! Replays every fuzz target's corpus (fuzz/corpus/<target>/) through the same
//! property checks the targets run (`swiftlet_protocol::fuzzing` for the wire
//! code, `swiftlet::testing::fuzzing` for the request types and the router), so every
//! input the fuzzer kept, each crash it found included, is re-checked by
//! `cargo test`. No fuzzer or nightly feature is needed.

use std::path::PathBuf;

use swiftlet::testing::fuzzing::{check_requests, check_route};
use swiftlet_protocol::fuzzing::{
    check_chunked, check_head, check_multipart, check_range, check_resp, check_rfc3339, check_sniff,
};

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its property check", path.display());
        count += 1;
    }
    assert!(count > 0, "no corpus in {}", dir.display());
    eprintln!("{target}: replayed {count} inputs");
}

#[test]
fn requests_corpus() {
    replay("requests", check_requests);
}

#[test]
fn router_corpus() {
    replay("router", check_route);
}

#[test]
fn head_corpus() {
    replay("head", check_head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", check_chunked);
}

#[test]
fn resp_corpus() {
    replay("resp", check_resp);
}

#[test]
fn rfc3339_corpus() {
    replay("rfc3339", check_rfc3339);
}

#[test]
fn multipart_corpus() {
    replay("multipart", check_multipart);
}

#[test]
fn range_corpus() {
    replay("range", check_range);
}

#[test]
fn media_corpus() {
    replay("media", check_sniff);
}
