//! `#[event]`: serde derives and an `es_core::Event` impl on a struct or
//! enum.
//!
//! ```text
//! #[event(name = "Deposited", version = 2, upcast = upcast_deposited)]
//! ```
//! `name` defaults to the Rust type name, `version` to 1; `upcast` names a
//! `fn(u32, serde_json::Value) -> Result<serde_json::Value, String>`.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Item, Lit, LitStr, Path};

use crate::ctxt::{Ctxt, Slot};
use crate::symbol::{NAME, UPCAST, VERSION};
use crate::{item, paths};

const SCOPE: &str = "event attribute";

/// What `#[event(..)]` said, checked.
struct EventAttrs {
    /// The stored type name (`None`: the Rust type name).
    name: Option<String>,
    /// The schema version (`None`: 1).
    version: Option<u32>,
    /// The user's upcaster.
    upcast: Option<Path>,
}

impl EventAttrs {
    fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut name = Slot::new(cx, SCOPE, NAME);
        let mut version = Slot::new(cx, SCOPE, VERSION);
        let mut upcast = Slot::new(cx, SCOPE, UPCAST);
        let parser = syn::meta::parser(|meta| {
            match cx.key(&meta, SCOPE, &[NAME, VERSION, UPCAST])? {
                Some(NAME) => {
                    let expr: Expr = meta.value()?.parse()?;
                    match &expr {
                        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) if lit.value().is_empty() => {
                            cx.error_spanned_by(lit, "event `name` must not be empty");
                        }
                        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => name.set(&meta.path, lit.value()),
                        other => cx.error_spanned_by(
                            other,
                            "event `name` must be a string literal, such as `name = \"MoneyDeposited\"`",
                        ),
                    }
                }
                Some(VERSION) => {
                    let expr: Expr = meta.value()?.parse()?;
                    if let Some(v) = parse_version(cx, &expr) {
                        version.set(&meta.path, v);
                    }
                }
                Some(UPCAST) => {
                    let path: Path = meta.value()?.parse()?;
                    upcast.set(&meta.path, path);
                }
                _ => {}
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            cx.syn_error(error);
        }
        Self { name: name.get(), version: version.get(), upcast: upcast.get() }
    }
}

fn parse_version(cx: &Ctxt, expr: &Expr) -> Option<u32> {
    let Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) = expr else {
        cx.error_spanned_by(expr, "event `version` must be an integer literal, such as `version = 2`");
        return None;
    };
    match lit.base10_parse::<u32>() {
        Ok(0) => {
            cx.error_spanned_by(lit, "event versions start at 1");
            None
        }
        Ok(v) => Some(v),
        Err(error) => {
            cx.syn_error(error);
            None
        }
    }
}

/// Expands `#[event(args)] item`. Always emits the item, so a mistake in
/// the attribute gives its own error and nothing else.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let attrs = EventAttrs::parse(&cx, args);
    let item: Item = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    let (ident, generics) = match &item {
        Item::Struct(s) => (&s.ident, &s.generics),
        Item::Enum(e) => (&e.ident, &e.generics),
        other => {
            cx.error_spanned_by(item::head(other), "#[event] goes on a struct or enum");
            let errors = cx.into_compile_errors();
            return quote!(#item #errors);
        }
    };
    let generic = item::reject_generics(&cx, generics, "an event, stored under one type name,");

    let private = paths::private();
    let serde_crate = LitStr::new("::es_core::__private::serde", ident.span());
    let event_impl = if generic { TokenStream::new() } else { event_impl(ident, &attrs) };
    let errors = cx.into_compile_errors();
    quote! {
        #[derive(#private::serde::Serialize, #private::serde::Deserialize)]
        #[serde(crate = #serde_crate)]
        #item
        #event_impl
        #errors
    }
}

fn event_impl(ident: &Ident, attrs: &EventAttrs) -> TokenStream {
    let core = paths::core();
    let private = paths::private();
    let type_name = attrs.name.clone().unwrap_or_else(|| ident.to_string());
    let version = Literal::u32_unsuffixed(attrs.version.unwrap_or(1));
    let upcast = attrs.upcast.as_ref().map(|path| {
        // Spanned on the user's path, so a function of the wrong shape is
        // reported there.
        // Coerced to the expected fn pointer at the user's path, so a
        // function of the wrong shape gives one error there.
        let upcaster = quote_spanned! {path.span()=>
            let upcaster: fn(
                #private::u32,
                #private::serde_json::Value,
            ) -> #private::Result<#private::serde_json::Value, #core::error::UpcastError> = #path;
        };
        quote! {
            fn upcast(
                from_version: #private::u32,
                payload: #private::serde_json::Value,
            ) -> #private::Result<#private::serde_json::Value, #core::error::UpcastError> {
                #upcaster
                upcaster(from_version, payload)
            }
        }
    });
    let ident_tokens = ident.to_token_stream();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #core::Event for #ident_tokens {
                const TYPE: &'static #private::str = #type_name;
                const VERSION: #private::u32 = #version;
                #upcast
            }
        };
    }
}
