//! Validation. Placeholder.
pub fn render_masked(c: &super::Config) -> String {
    format!("{c:?}")
}
