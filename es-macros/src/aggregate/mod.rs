//! `#[derive(Aggregate)]`: the aggregate's event and command enums, their
//! impls, and the `Aggregate` impl that dispatches to the user's `Apply`
//! and `Handle` impls.
//!
//! ```text
//! #[derive(Aggregate)]
//! #[aggregate(name = "account", error = AccountError, snapshot_version = 2,
//!             events(AccountOpened, MoneyDeposited), commands(OpenAccount, Deposit))]
//! pub struct Account { .. }
//! ```
//!
//! One mistake makes one error. When a required key is missing, the
//! `Aggregate` impl names [the stand-in type](crate::stand_in) for what it
//! would have said, so the code that leans on it (the user's `Handle`
//! impls, `Events::one(..)`, `#[command]` impls) adds no error of its own.

mod attrs;
mod commands;
mod events;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Ident, LitStr, Type, Visibility};

use self::attrs::{AggregateAttrs, Member};
use crate::ctxt::Ctxt;
use crate::{item, paths, stand_in};

/// Everything the expansion needs. `None` for a required part that was
/// missing (an error is reported then, and the stand-in type takes its
/// place).
struct AggregateDef<'a> {
    ident: &'a Ident,
    vis: &'a Visibility,
    name: String,
    error: Option<&'a Type>,
    events: Option<&'a [Member]>,
    commands: Option<&'a [Member]>,
    snapshot_version: u32,
    event_enum: Ident,
    command_enum: Ident,
}

impl AggregateDef<'_> {
    /// Whether a required part is missing, so the stand-in is needed.
    fn is_incomplete(&self) -> bool {
        self.error.is_none() || self.events.is_none() || self.commands.is_none()
    }
}

/// Expands `#[derive(Aggregate)]`. After a mistake it still emits both
/// enums and the `Aggregate` impl, so the mistake gives one error.
pub(crate) fn expand(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let ident = &input.ident;
    let head = match &input.data {
        Data::Struct(_) => None,
        Data::Enum(data) => Some(data.enum_token.to_token_stream()),
        Data::Union(data) => Some(data.union_token.to_token_stream()),
    };
    if let Some(head) = head {
        cx.error_spanned_by(
            quote!(#head #ident),
            "#[derive(Aggregate)] goes on a struct: the aggregate's state",
        );
        return cx.into_compile_errors();
    }
    let generic = item::reject_generics(&cx, &input.generics, "an aggregate");
    let mut attrs = AggregateAttrs::parse(&cx, input);
    attrs.check(&cx);
    let def = AggregateDef {
        ident: &input.ident,
        vis: &input.vis,
        name: attrs.name.as_ref().map_or_else(|| input.ident.to_string(), LitStr::value),
        error: attrs.error.as_ref(),
        events: attrs.events.as_ref().map(|list| &list.members[..]),
        commands: attrs.commands.as_ref().map(|list| &list.members[..]),
        snapshot_version: attrs.snapshot_version.unwrap_or(1),
        event_enum: format_ident!("{}Event", input.ident),
        command_enum: format_ident!("{}Command", input.ident),
    };
    let event_enum = events::event_enum(def.vis, def.ident, &def.event_enum, def.events.unwrap_or(&[]));
    let command_enum =
        commands::command_enum(def.vis, def.ident, &def.command_enum, def.commands.unwrap_or(&[]));
    if generic {
        let errors = cx.into_compile_errors();
        return quote!(#event_enum #command_enum #errors);
    }
    // With a part missing, the errors go into the stand-in type (reported
    // once there); otherwise they stand on their own.
    let (stand_in, errors) = if def.is_incomplete() {
        (stand_in::definition(cx.into_compile_errors()), TokenStream::new())
    } else {
        (TokenStream::new(), cx.into_compile_errors())
    };
    let impls = impls(&def);
    quote! {
        #event_enum
        #command_enum
        const _: () = {
            #stand_in
            #impls
        };
        #errors
    }
}

/// The impls, for one `const _` block so their helper items stay private.
fn impls(def: &AggregateDef<'_>) -> TokenStream {
    let event_impls = def.events.map(|events| events::impls(def.ident, &def.name, &def.event_enum, events));
    let command_impls = match def.commands {
        Some(commands) => commands::impls(def.ident, &def.command_enum, commands),
        None => commands::lists_every_command(def.ident),
    };
    let aggregate = aggregate_impl(def);
    quote! {
        #event_impls
        #command_impls
        #aggregate
    }
}

fn aggregate_impl(def: &AggregateDef<'_>) -> TokenStream {
    let core = paths::core();
    let private = paths::private();
    let stand_in = stand_in::name();
    let (ident, event_enum, command_enum) = (def.ident, &def.event_enum, &def.command_enum);
    let name = &def.name;
    let snapshot_version = Literal::u32_unsuffixed(def.snapshot_version);
    let error = match def.error {
        Some(error) => error.to_token_stream(),
        None => stand_in.to_token_stream(),
    };
    // Each dispatch carries the span of the name in the list, so a missing
    // `Apply`/`Handle` impl is reported at that name, with the message of
    // the trait's `#[diagnostic::on_unimplemented]`.
    let (event, apply) = match def.events {
        Some(events) => {
            let arms = events.iter().map(|Member { path, variant }| {
                let call = quote_spanned!(path.span()=> <Self as #core::Apply<#path>>::apply(self, event));
                quote!(#event_enum::#variant(ref event) => #call,)
            });
            (quote!(#event_enum), quote!(match *event { #(#arms)* }))
        }
        None => (quote!(#stand_in), quote!(let _ = event;)),
    };
    let (command, handle) = match def.commands {
        Some(commands) => {
            let arms = commands.iter().map(|Member { path, variant }| {
                let call =
                    quote_spanned!(path.span()=> <Self as #core::Handle<#path>>::handle(self, command));
                quote!(#command_enum::#variant(command) => #call,)
            });
            (quote!(#command_enum), quote!(match command { #(#arms)* }))
        }
        None => (quote!(#stand_in), quote!({ let _ = command; #private::unreachable!() })),
    };
    // The signatures name the types, not `Self::Event` and the like: a
    // projection through `Self` would ask again whether the struct is an
    // aggregate, and a missing supertrait (`Default`, serde) would be
    // reported once per method instead of once, at the struct's name.
    quote! {
        #[automatically_derived]
        impl #core::Aggregate for #ident {
            const NAME: &'static #private::str = #name;
            const SNAPSHOT_VERSION: #private::u32 = #snapshot_version;
            type Event = #event;
            type Command = #command;
            type Error = #error;

            fn apply_event(&mut self, event: &#event) {
                #apply
            }

            fn handle_command(
                &self,
                command: #command,
            ) -> #private::Result<#core::Events<Self>, #error> {
                #handle
            }
        }
    }
}
