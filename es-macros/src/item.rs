//! What the attribute macros sit on: spans for "wrong kind of item" errors
//! and the shared rule against generics.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Generics, Item};

use crate::ctxt::Ctxt;

/// The tokens that say what `item` is (`fn name`, `union Name`, ..), so an
/// error about the item's kind underlines its head, not its whole body.
pub(crate) fn head(item: &Item) -> TokenStream {
    match item {
        Item::Fn(f) => {
            let (fn_token, ident) = (&f.sig.fn_token, &f.sig.ident);
            quote!(#fn_token #ident)
        }
        Item::Union(u) => {
            let (union_token, ident) = (&u.union_token, &u.ident);
            quote!(#union_token #ident)
        }
        Item::Enum(e) => {
            let (enum_token, ident) = (&e.enum_token, &e.ident);
            quote!(#enum_token #ident)
        }
        Item::Struct(s) => {
            let (struct_token, ident) = (&s.struct_token, &s.ident);
            quote!(#struct_token #ident)
        }
        Item::Trait(t) => {
            let (trait_token, ident) = (&t.trait_token, &t.ident);
            quote!(#trait_token #ident)
        }
        Item::Type(t) => {
            let (type_token, ident) = (&t.type_token, &t.ident);
            quote!(#type_token #ident)
        }
        Item::Const(c) => {
            let (const_token, ident) = (&c.const_token, &c.ident);
            quote!(#const_token #ident)
        }
        Item::Static(s) => {
            let (static_token, ident) = (&s.static_token, &s.ident);
            quote!(#static_token #ident)
        }
        Item::Mod(m) => {
            let (mod_token, ident) = (&m.mod_token, &m.ident);
            quote!(#mod_token #ident)
        }
        Item::Impl(i) => {
            let (impl_token, self_ty) = (&i.impl_token, &i.self_ty);
            quote!(#impl_token #self_ty)
        }
        other => other.to_token_stream(),
    }
}

/// The item's name (`welcome`, `Audit`), or for an item without one its
/// head: where to report a mistake about the attribute as a whole when the
/// attribute has no arguments to point at.
pub(crate) fn name(item: &Item) -> TokenStream {
    match item {
        Item::Fn(f) => f.sig.ident.to_token_stream(),
        Item::Struct(s) => s.ident.to_token_stream(),
        Item::Enum(e) => e.ident.to_token_stream(),
        Item::Union(u) => u.ident.to_token_stream(),
        Item::Trait(t) => t.ident.to_token_stream(),
        Item::Type(t) => t.ident.to_token_stream(),
        Item::Const(c) => c.ident.to_token_stream(),
        Item::Static(s) => s.ident.to_token_stream(),
        Item::Mod(m) => m.ident.to_token_stream(),
        other => head(other),
    }
}

/// Records an error if `generics` declares any parameter or where clause:
/// the type is stored or routed under one name, whatever its parameters.
///
/// Returns whether the item is generic.
pub(crate) fn reject_generics(cx: &Ctxt, generics: &Generics, what: &str) -> bool {
    let message = format!("{what} cannot be generic");
    if !generics.params.is_empty() {
        cx.error_spanned_by(generics, message);
        true
    } else if let Some(where_clause) = &generics.where_clause {
        cx.error_spanned_by(where_clause, message);
        true
    } else {
        false
    }
}
