//! Compile-time behaviour of the macros: each file under `ui/fail` is one
//! mistake with the message it must produce (`.stderr`), each under
//! `ui/pass` a use that must compile. Regenerate the messages with
//! `TRYBUILD=overwrite cargo test -p es-macros --test ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
