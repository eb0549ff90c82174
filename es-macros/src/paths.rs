//! The absolute paths generated code names.
//!
//! Everything goes through `::es_core` (with the leading `::`, so no item in
//! the user's scope can shadow it), and std items through
//! `::es_core::__private`, so a user type named `Result` or `Option` cannot
//! change what the generated code means.

use proc_macro2::TokenStream;
use quote::quote;

/// The public root of es: `::es_core`.
pub(crate) fn core() -> TokenStream {
    quote!(::es_core)
}

/// The hidden door for generated code: `::es_core::__private`.
pub(crate) fn private() -> TokenStream {
    quote!(::es_core::__private)
}
