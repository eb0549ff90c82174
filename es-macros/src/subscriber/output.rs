//! The code `#[event_handler]` and `#[projection]` expand to: the item as
//! written, its name constant, and the link-time registration of the
//! factory that builds its `Subscriber`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Item, ItemStruct, LitStr, Path, Type};

use super::{Spec, SubscriberAttrs};
use crate::ctxt::tokens_text;
use crate::ctxt::Ctxt;
use crate::{item, paths};

/// `let subscriber = subscriber.on::<E>();` for each event, every token
/// spanned on the event's name, so a missing `HandleEvent<E>`/`Project<E>`
/// impl is reported there with the trait's own message. (In one method
/// chain the compiler would underline the chain from its start, the whole
/// attribute.)
///
/// An event also in `prefetch` is added with `.prefetch::<E>()` instead,
/// spanned on its name in `prefetch(..)`, so a missing `Prefetch<E>` impl
/// is reported there.
fn on_statements(events: &[Path], prefetch: &[Path]) -> TokenStream {
    events
        .iter()
        .map(|path| {
            let text = tokens_text(path);
            match prefetch.iter().find(|named| tokens_text(*named) == text) {
                Some(named) => {
                    quote_spanned!(named.span()=> let subscriber = subscriber.prefetch::<#named>();)
                }
                None => quote_spanned!(path.span()=> let subscriber = subscriber.on::<#path>();),
            }
        })
        .collect()
}

/// `let subscriber = subscriber.uses::<T>();` for each state type, spanned
/// on the type.
pub(crate) fn uses_statements(types: &[Type]) -> TokenStream {
    types.iter().map(|ty| quote_spanned!(ty.span()=> let subscriber = subscriber.uses::<#ty>();)).collect()
}

/// Expands a subscriber attribute `#[spec(args)] input`: parses the item and
/// the arguments, lets `register` check the item and build its
/// registration (`None` after an error it reported), and emits the item as
/// written, its name constant (on a struct), the registration and every
/// error gathered. Always emits the item, so a mistake gives its own error
/// only.
pub(crate) fn expand(
    args: TokenStream,
    input: TokenStream,
    spec: &Spec,
    register: impl FnOnce(&Ctxt, &mut SubscriberAttrs, &Item) -> Option<TokenStream>,
) -> TokenStream {
    let cx = Ctxt::new();
    let item: Item = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    let mut attrs = SubscriberAttrs::parse(&cx, args, spec, item::name(&item));
    let registration = register(&cx, &mut attrs, &item);
    let constant = match &item {
        Item::Struct(structure) => {
            name_const(structure, &attrs.name_or(&structure.ident.to_string()), spec.what)
        }
        _ => TokenStream::new(),
    };
    let errors = cx.into_compile_errors();
    quote! {
        #item
        #constant
        #registration
        #errors
    }
}

/// `impl Type { const NAME: &str = "name"; }` for a subscriber struct (with
/// the struct's visibility), so that applications name the subscription
/// `Type::NAME` instead of spelling the string again. Nothing for a generic
/// struct, which is refused anyway.
fn name_const(structure: &ItemStruct, name: &LitStr, what: &str) -> TokenStream {
    if !structure.generics.params.is_empty() {
        return TokenStream::new();
    }
    let (ident, vis) = (&structure.ident, &structure.vis);
    let doc = format!("The name this {what} is registered under (`{}`).", name.value());
    quote! {
        #[automatically_derived]
        impl #ident {
            #[doc = #doc]
            #vis const NAME: &'static str = #name;
        }
    }
}

/// The registration of a subscriber struct built with `Default`:
/// `Subscriber::kind(..)`, one `.on::<E>()` per event in `events` (or
/// `.prefetch::<E>()` for one also in `prefetch`), its
/// `uses`, then `before_build` (a handler's `.replay(..)`), `.build()` and
/// the settings.
pub(crate) fn struct_registration(
    attrs: &SubscriberAttrs,
    ident: &Ident,
    events: &[Path],
    kind: TokenStream,
    before_build: TokenStream,
) -> TokenStream {
    let core = paths::core();
    let private = paths::private();
    let prefetch = attrs.prefetch.as_ref().map_or(&[][..], |list| list.events.as_slice());
    let on = on_statements(events, prefetch);
    // Spanned on the struct's name, so a missing `Default` is reported there.
    let new = quote_spanned!(ident.span()=> <#ident as #private::Default>::default());
    let uses = uses_statements(&attrs.uses);
    let settings = attrs.settings_calls();
    let build = quote! {
        let subscriber = #core::readside::Subscriber::#kind(#new);
        #on
        #uses
        subscriber #before_build .build() #settings
    };
    registration(&attrs.name_or(&ident.to_string()), TokenStream::new(), build)
}

/// The registration: `items` (helper items the factory uses), the factory
/// `fn() -> Subscriber` returning `build`, and its `inventory::submit!`,
/// all inside one `const _`.
pub(crate) fn registration(name: &LitStr, items: TokenStream, build: TokenStream) -> TokenStream {
    let core = paths::core();
    let private = paths::private();
    quote! {
        const _: () = {
            #items

            fn __es_subscriber() -> #core::readside::Subscriber {
                #build
            }

            #private::inventory::submit! {
                #private::Registration::new(#name, __es_subscriber)
            }
        };
    }
}
