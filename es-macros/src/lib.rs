//! Procedural macros of es: `#[event]`, `#[command]`,
//! `#[derive(Aggregate)]`, `#[event_handler]` and `#[projection]`.
//!
//! Use them through `es-core`, which re-exports them as
//! `es_core::{event, command, Aggregate, event_handler, projection}`. The code they generate names
//! only `::es_core` and its hidden `__private` module, so a crate that uses
//! them needs no dependency on serde, serde_json or this crate for its
//! events and commands.
//!
//! Each macro parses its input into a typed model, reports every mistake
//! together (each at the token that is wrong), and still emits the user's
//! item after a mistake, so one mistake gives one error.

mod aggregate;
mod command;
mod ctxt;
mod event;
mod handler;
mod item;
mod paths;
mod projection;
mod stand_in;
mod subscriber;
mod symbol;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

// Each entry point's documentation (what users read on `es_core::event` and
// the others, examples doc-tested) is in `docs/<macro>.md`; its parsing and
// expansion in the module of the same name.

#[doc = include_str!("docs/event.md")]
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    event::expand(args.into(), item.into()).into()
}

#[doc = include_str!("docs/command.md")]
#[proc_macro_attribute]
pub fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    command::expand(args.into(), item.into()).into()
}

#[doc = include_str!("docs/aggregate.md")]
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::expand(&input).into()
}

#[doc = include_str!("docs/event_handler.md")]
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}

#[doc = include_str!("docs/projection.md")]
#[proc_macro_attribute]
pub fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    projection::expand(args.into(), item.into()).into()
}
