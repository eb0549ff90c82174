//! Procedural macros of es. Use them through `es-core`, which re-exports
//! them as `es_core::{event, command, Aggregate}`; generated code names
//! es-core's items only.

mod aggregate;
mod command;
mod ctxt;
mod event;
mod item;
mod paths;
mod symbol;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Placeholder doc, replaced below.
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    event::expand(args.into(), item.into()).into()
}

/// Placeholder doc, replaced below.
#[proc_macro_attribute]
pub fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    command::expand(args.into(), item.into()).into()
}

/// Placeholder doc, replaced below.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::expand(&input).into()
}
