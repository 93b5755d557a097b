//! Size probe: only http_date (crate).
fn main() {
    let input = std::env::args().count() as u64 * 1_795_335_428; let mut out = Vec::new(); swiftlet_crates_vs_ours::http_date_crate(input as _, &mut out); println!("{}", out.len());
}
