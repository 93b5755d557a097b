//! Size probe: only rfc3339_read (ours).
fn main() {
    let input = std::env::args().nth(1).unwrap_or_default(); println!("{:?}", swiftlet_crates_vs_ours::rfc3339_read_ours(&input));
}
