//! The stand-in type: what generated code names in place of a type the
//! user left out (an aggregate's `error = ..`, a command's `aggregate =
//! ..`), so that the one mistake makes one error.
//!
//! It is an array whose length is a block holding the `compile_error!`s
//! of the macro call, defined inside the generated `const _`:
//!
//! ```text
//! type __EsStandIn = [(); { ::core::compile_error! { ".." } 0 }];
//! ```
//!
//! The compiler reports each `compile_error!` once, where the user made
//! the mistake, and then takes every type that mentions the stand-in as
//! already failed: an obligation or mismatch involving it (the user's
//! `Handle` impl naming their own error type, `Events::one(..)`, a
//! `#[command]` converting into the aggregate's commands) adds no error of
//! its own. (A plain `compile_error!` in type position would not do: it
//! stands for `()`, which then mismatches everything.)

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// The stand-in's name, to use inside the `const _` that defines it.
pub(crate) fn name() -> Ident {
    Ident::new("__EsStandIn", Span::call_site())
}

/// The stand-in's definition carrying `errors` (the macro call's
/// `compile_error!`s, which must not be emitted anywhere else too).
pub(crate) fn definition(errors: TokenStream) -> TokenStream {
    let name = name();
    quote!(type #name = [(); { #errors 0 }];)
}
