//! Procedural macros of es. Use them through `es-core`.
use proc_macro::TokenStream;

/// Placeholder until the macro crate lands.
#[proc_macro_attribute]
pub fn event(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
/// Placeholder until the macro crate lands.
#[proc_macro_attribute]
pub fn command(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
/// Placeholder until the macro crate lands.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
