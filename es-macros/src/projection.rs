//! `#[projection]`: registers a projection at link time.
//!
//! It goes on a struct that implements `Default` (the factory builds it
//! with that) and `Project<E>` for each event listed in `events(..)`:
//!
//! ```text
//! #[projection(name = "balances", events(MoneyDeposited, MoneyWithdrawn), group = "reports")]
//! #[derive(Default)]
//! struct Balances;
//! ```
//!
//! `prefetch(MoneyDeposited)` adds a listed event with `.prefetch::<E>()`
//! instead of `.on::<E>()` (it needs `Prefetch<E>` too), so the runner
//! reads the documents a batch of them names at once.
//! `uses(Mailer)` declares the state it reads; `table` makes it a
//! projection into the application's own tables (`TableProjection` and
//! `ProjectRows<E>` instead of `Project<E>`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Item, ItemStruct};

use crate::ctxt::Ctxt;
use crate::item;
use crate::subscriber::{self, Spec, SubscriberAttrs};
use crate::symbol::{CONSISTENCY, EVENTS, GROUP, NAME, PREFETCH, REPLAY, TABLE, USES};

const SPEC: Spec = Spec {
    what: "projection",
    example_name: "balances",
    macro_name: "#[projection]",
    scope: "projection attribute",
    keys: &[NAME, EVENTS, CONSISTENCY, GROUP, USES, TABLE, PREFETCH],
    refused: &[(
        REPLAY,
        "`replay` is for event handlers: a projection is rebuilt from history, so it always runs for \
         replayed events",
    )],
};

/// Expands `#[projection(args)] item`. Always emits the item, so a mistake
/// gives its own error only.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    subscriber::expand(args, input, &SPEC, |cx, attrs, item| match item {
        Item::Struct(structure) => expand_struct(cx, attrs, structure),
        other => {
            cx.error_spanned_by(
                item::head(other),
                "#[projection] goes on a struct: the projection, built with `Default`, that implements \
                 `Project<E>` for each event in `events(..)`",
            );
            None
        }
    })
}

/// The struct, built with `Default`: one `.on::<E>()` per listed event.
fn expand_struct(cx: &Ctxt, attrs: &mut SubscriberAttrs, structure: &ItemStruct) -> Option<TokenStream> {
    let ident = &structure.ident;
    let generic = item::reject_generics(cx, &structure.generics, "a projection, registered once,");
    attrs.check_events(cx, "it projects, each with its `impl Project<E>`");
    attrs.check_prefetch(cx);
    if attrs.table {
        if let Some(prefetch) = attrs.prefetch.take() {
            cx.error_spanned_by(
                &prefetch.key,
                "`prefetch` is for document projections: a `table` projection reads and writes its own \
                 tables, which it can query a batch at a time itself",
            );
        }
    }
    let Some(events) = &attrs.events else {
        cx.error_spanned_by(
            ident,
            "#[projection] needs `events(..)`: the event types it projects, each with its \
             `impl Project<E>`",
        );
        return None;
    };
    if generic {
        return None;
    }
    let kind = if attrs.table { quote!(table_projection) } else { quote!(projection) };
    Some(subscriber::struct_registration(attrs, ident, &events.events, kind, TokenStream::new()))
}
