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
//! `uses(Mailer)` declares the state it reads; `table` makes it a
//! projection into the application's own tables (`TableProjection` and
//! `ProjectRows<E>` instead of `Project<E>`).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Item;

use crate::ctxt::Ctxt;
use crate::subscriber::{self, Spec, SubscriberAttrs};
use crate::symbol::{CONSISTENCY, EVENTS, GROUP, NAME, REPLAY, TABLE, USES};
use crate::{item, paths};

const SPEC: Spec = Spec {
    what: "projection",
    example_name: "balances",
    macro_name: "#[projection]",
    scope: "projection attribute",
    keys: &[NAME, EVENTS, CONSISTENCY, GROUP, USES, TABLE],
    refused: &[(
        REPLAY,
        "`replay` is for event handlers: a projection is rebuilt from history, so it always runs for \
         replayed events",
    )],
};

/// Expands `#[projection(args)] item`. Always emits the item, so a mistake
/// gives its own error only.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let item: Item = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    let mut attrs = SubscriberAttrs::parse(&cx, args, &SPEC, item::name(&item));
    let registration = match &item {
        Item::Struct(structure) => {
            let ident = &structure.ident;
            let generic = item::reject_generics(&cx, &structure.generics, "a projection, registered once,");
            attrs.check_events(&cx, "it projects, each with its `impl Project<E>`");
            match &attrs.events {
                None => {
                    cx.error_spanned_by(
                        ident,
                        "#[projection] needs `events(..)`: the event types it projects, each with its \
                         `impl Project<E>`",
                    );
                    None
                }
                Some(_) if generic => None,
                Some(events) => {
                    let core = paths::core();
                    let private = paths::private();
                    let on = subscriber::on_statements(&events.events);
                    // Spanned on the struct's name, so a missing `Default`
                    // is reported there.
                    let new = quote_spanned!(ident.span()=> <#ident as #private::Default>::default());
                    let settings = attrs.settings_calls();
                    let uses = subscriber::uses_statements(&attrs.uses);
                    let kind = if attrs.table { quote!(table_projection) } else { quote!(projection) };
                    let build = quote! {
                        let subscriber = #core::readside::Subscriber::#kind(#new);
                        #on
                        #uses
                        subscriber.build() #settings
                    };
                    Some(subscriber::registration(
                        &attrs.name_or(&ident.to_string()),
                        TokenStream::new(),
                        build,
                    ))
                }
            }
        }
        other => {
            cx.error_spanned_by(
                item::head(other),
                "#[projection] goes on a struct: the projection, built with `Default`, that implements \
                 `Project<E>` for each event in `events(..)`",
            );
            None
        }
    };
    subscriber::output(cx, &item, &attrs, &SPEC, registration)
}
