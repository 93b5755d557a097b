//! Size probe: only range (crate).
fn main() {
    let input = std::env::args().nth(1).unwrap_or_default(); println!("{:?}", swiftlet_crates_vs_ours::range_crate(input.as_bytes(), 1 << 20));
}
