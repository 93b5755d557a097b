//! Size probe: only rfc3339_write (ours).
fn main() {
    let input = std::env::args().count() as u64 * 1_795_335_428; let mut out = Vec::new(); swiftlet_crates_vs_ours::rfc3339_write_ours(input as _, &mut out); println!("{}", out.len());
}
