//! Size probe: only sniff (ours).
fn main() {
    let input = std::env::args().nth(1).unwrap_or_default(); println!("{:?}", swiftlet_crates_vs_ours::sniff_ours(input.as_bytes()));
}
