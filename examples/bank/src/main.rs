//! The bank demo (being written).
fn main() {}
