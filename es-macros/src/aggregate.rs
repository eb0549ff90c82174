//! `#[derive(Aggregate)]`: the aggregate's event and command enums, their
//! `EventSet` and `From` impls, and the `Aggregate` impl that dispatches to
//! the user's `Apply` and `Handle` impls.
//!
//! ```text
//! #[derive(Aggregate)]
//! #[aggregate(name = "account", error = AccountError, snapshot_version = 2,
//!             events(AccountOpened, MoneyDeposited), commands(OpenAccount, Deposit))]
//! pub struct Account { .. }
//! ```

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    parenthesized, Data, DeriveInput, Expr, ExprLit, Ident, Lit, LitStr, Path, Token, Type, Visibility,
};

use crate::ctxt::{Ctxt, Slot};
use crate::symbol::{Symbol, AGGREGATE, COMMANDS, ERROR, EVENTS, NAME, SNAPSHOT_VERSION};
use crate::{item, paths};

const SCOPE: &str = "aggregate attribute";
const KEYS: [Symbol; 5] = [NAME, ERROR, EVENTS, COMMANDS, SNAPSHOT_VERSION];

/// A listed event or command: the user's path and the enum variant named
/// after its last segment.
struct Member {
    path: Path,
    variant: Ident,
}

impl Member {
    fn new(path: Path) -> Option<Self> {
        let variant = path.segments.last()?.ident.clone();
        Some(Self { path, variant })
    }
}

/// A parenthesized list (`events(A, B)`), with the key for spans.
struct List {
    key: Path,
    members: Vec<Member>,
}

/// What `#[aggregate(..)]` said.
struct AggregateAttrs {
    name: Option<LitStr>,
    error: Option<Type>,
    events: Option<List>,
    commands: Option<List>,
    snapshot_version: Option<u32>,
}

impl AggregateAttrs {
    fn parse(cx: &Ctxt, input: &DeriveInput) -> Self {
        let mut name = Slot::new(cx, SCOPE, NAME);
        let mut error = Slot::new(cx, SCOPE, ERROR);
        let mut events = Slot::new(cx, SCOPE, EVENTS);
        let mut commands = Slot::new(cx, SCOPE, COMMANDS);
        let mut snapshot_version = Slot::new(cx, SCOPE, SNAPSHOT_VERSION);
        let attrs: Vec<_> = input.attrs.iter().filter(|attr| attr.path() == &AGGREGATE).collect();
        for attr in &attrs {
            let parsed = attr.parse_nested_meta(|meta| {
                match cx.key(&meta, SCOPE, &KEYS)? {
                    Some(NAME) => {
                        let expr: Expr = meta.value()?.parse()?;
                        // Set even when wrong (already reported), so it
                        // is not reported as missing too.
                        name.set(&meta.path, aggregate_name(cx, &expr));
                    }
                    Some(ERROR) => {
                        let ty: Type = meta.value()?.parse()?;
                        error.set(&meta.path, ty);
                    }
                    Some(key @ (EVENTS | COMMANDS)) => {
                        let content;
                        parenthesized!(content in meta.input);
                        let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                        let members = paths.into_iter().filter_map(Member::new).collect();
                        let list = List { key: meta.path.clone(), members };
                        if key == EVENTS {
                            events.set(&meta.path, list);
                        } else {
                            commands.set(&meta.path, list);
                        }
                    }
                    Some(SNAPSHOT_VERSION) => {
                        let expr: Expr = meta.value()?.parse()?;
                        if let Some(version) = snapshot_version_of(cx, &expr) {
                            snapshot_version.set(&meta.path, version);
                        }
                    }
                    _ => {}
                }
                Ok(())
            });
            if let Err(error) = parsed {
                cx.syn_error(error);
            }
        }
        if let Some(attr) = attrs.first() {
            let missing = [
                (name.is_set(), "`name = \"..\"`: the aggregate type name that streams are named after"),
                (events.is_set(), "`events(..)`: the events the aggregate records"),
                (commands.is_set(), "`commands(..)`: the commands the aggregate handles"),
            ];
            for (set, what) in missing {
                if !set {
                    cx.error_spanned_by(
                        attr,
                        format!("#[derive(Aggregate)] needs {what}, in `#[aggregate(..)]`"),
                    );
                }
            }
        }
        match attrs.first() {
            None => cx.error_spanned_by(
                &input.ident,
                "#[derive(Aggregate)] needs \
                 `#[aggregate(name = \"..\", error = Type, events(..), commands(..))]`",
            ),
            Some(attr) if !error.is_set() => cx.error_spanned_by(
                attr,
                "#[derive(Aggregate)] needs `error = Type`: the error a refused command returns, \
                 in `#[aggregate(..)]`",
            ),
            Some(_) => {}
        }
        Self {
            name: name.get().flatten(),
            error: error.get(),
            events: events.get(),
            commands: commands.get(),
            snapshot_version: snapshot_version.get(),
        }
    }
}

/// The aggregate name, if it is a string literal; an error is also
/// recorded unless a stream id can carry it.
fn aggregate_name(cx: &Ctxt, expr: &Expr) -> Option<LitStr> {
    let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = expr else {
        cx.error_spanned_by(expr, "aggregate `name` must be a string literal, such as `name = \"account\"`");
        return None;
    };
    let value = lit.value();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    if value.is_empty() {
        cx.error_spanned_by(lit, "aggregate `name` must not be empty");
    } else if !value.chars().all(allowed) {
        cx.error_spanned_by(
            lit,
            format!(
                "aggregate name \"{value}\" may only use ASCII letters, digits, `_` and `.`: \
                 streams are named `{{name}}-{{id}}`, so the name must not contain `-`"
            ),
        );
    }
    Some(lit.clone())
}

fn snapshot_version_of(cx: &Ctxt, expr: &Expr) -> Option<u32> {
    let Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) = expr else {
        cx.error_spanned_by(
            expr,
            "`snapshot_version` must be an integer literal, such as `snapshot_version = 2`",
        );
        return None;
    };
    match lit.base10_parse::<u32>() {
        Ok(0) => {
            cx.error_spanned_by(lit, "snapshot versions start at 1");
            None
        }
        Ok(version) => Some(version),
        Err(error) => {
            cx.syn_error(error);
            None
        }
    }
}

/// Cross-key rules: no empty `events(..)`, no member listed twice, no two
/// members sharing a variant name. A member that breaks a rule is reported
/// and dropped, so the enums stay valid and the mistake gives one error.
fn check(cx: &Ctxt, attrs: &mut AggregateAttrs) {
    if let Some(events) = &attrs.events {
        if events.members.is_empty() {
            cx.error_spanned_by(
                &events.key,
                "`events(..)` lists no event: an aggregate changes only through its events",
            );
        }
    }
    for (list, what) in [(&mut attrs.events, "event"), (&mut attrs.commands, "command")] {
        let Some(list) = list else { continue };
        let mut kept: Vec<Member> = Vec::with_capacity(list.members.len());
        for member in list.members.drain(..) {
            let Some(earlier) = kept.iter().find(|m| m.variant == member.variant) else {
                kept.push(member);
                continue;
            };
            let (earlier_path, later_path) = (tokens_text(&earlier.path), tokens_text(&member.path));
            let message = if earlier_path == later_path {
                format!("{what} `{later_path}` is listed twice in `{}(..)`", tokens_text(&list.key))
            } else {
                format!(
                    "{what}s `{earlier_path}` and `{later_path}` would both be the enum variant `{}`; \
                     list types with distinct names",
                    member.variant
                )
            };
            cx.error_spanned_by(&member.path, message);
        }
        list.members = kept;
    }
}

fn tokens_text<T: ToTokens>(tokens: &T) -> String {
    tokens.to_token_stream().to_string().replace(' ', "")
}

/// Everything the expansion needs, with a stand-in for each part that was
/// missing or wrong (an error is reported then, and the stand-ins keep the
/// user's other code from failing on top of it).
struct AggregateDef<'a> {
    ident: &'a Ident,
    vis: &'a Visibility,
    name: String,
    error: Option<&'a Type>,
    events: &'a [Member],
    commands: &'a [Member],
    snapshot_version: u32,
    event_enum: Ident,
    command_enum: Ident,
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
    check(&cx, &mut attrs);
    let def = AggregateDef {
        ident: &input.ident,
        vis: &input.vis,
        name: attrs.name.as_ref().map_or_else(|| input.ident.to_string(), LitStr::value),
        error: attrs.error.as_ref(),
        events: attrs.events.as_ref().map_or(&[], |list| &list.members),
        commands: attrs.commands.as_ref().map_or(&[], |list| &list.members),
        snapshot_version: attrs.snapshot_version.unwrap_or(1),
        event_enum: format_ident!("{}Event", input.ident),
        command_enum: format_ident!("{}Command", input.ident),
    };
    let event_enum = event_enum(&def);
    let command_enum = command_enum(&def);
    let impls = if generic { TokenStream::new() } else { impls(&def) };
    let errors = cx.into_compile_errors();
    quote! {
        #event_enum
        #command_enum
        #impls
        #errors
    }
}

fn event_enum(def: &AggregateDef<'_>) -> TokenStream {
    let private = paths::private();
    let (vis, ident, enum_ident) = (def.vis, def.ident, &def.event_enum);
    let doc = format!(" The events of the `{ident}` aggregate, generated by `#[derive(Aggregate)]`.");
    let variants = def.events.iter().map(|Member { path, variant }| {
        let doc = format!(" A `{variant}` event.");
        quote!(#[doc = #doc] #variant(#path))
    });
    quote! {
        #[doc = #doc]
        #[derive(#private::Debug, #private::Clone, #private::PartialEq)]
        #vis enum #enum_ident {
            #(#variants,)*
        }
    }
}

fn command_enum(def: &AggregateDef<'_>) -> TokenStream {
    let private = paths::private();
    let (vis, ident, enum_ident) = (def.vis, def.ident, &def.command_enum);
    let doc = format!(" The commands of the `{ident}` aggregate, generated by `#[derive(Aggregate)]`.");
    let variants = def.commands.iter().map(|Member { path, variant }| {
        let doc = format!(" A `{variant}` command.");
        quote!(#[doc = #doc] #variant(#path))
    });
    quote! {
        #[doc = #doc]
        #[derive(#private::Debug, #private::Clone)]
        #vis enum #enum_ident {
            #(#variants,)*
        }
    }
}

/// The impls, in one `const _` block so their helper items stay private.
fn impls(def: &AggregateDef<'_>) -> TokenStream {
    let event_set = event_set_impl(def);
    let froms = from_impls(&def.event_enum, def.events).chain(from_impls(&def.command_enum, def.commands));
    let aggregate = aggregate_impl(def);
    let distinct = distinct_type_names(def);
    quote! {
        const _: () = {
            #event_set
            #(#froms)*
            #aggregate
            #distinct
        };
    }
}

fn from_impls<'a>(enum_ident: &'a Ident, members: &'a [Member]) -> impl Iterator<Item = TokenStream> + 'a {
    let private = paths::private();
    members.iter().map(move |Member { path, variant }| {
        quote! {
            #[automatically_derived]
            impl #private::From<#path> for #enum_ident {
                fn from(value: #path) -> Self {
                    Self::#variant(value)
                }
            }
        }
    })
}

fn event_set_impl(def: &AggregateDef<'_>) -> TokenStream {
    let core = paths::core();
    let private = paths::private();
    let enum_ident = &def.event_enum;
    let variants: Vec<&Ident> = def.events.iter().map(|m| &m.variant).collect();
    let paths: Vec<&Path> = def.events.iter().map(|m| &m.path).collect();
    // Spelled out and spanned on the event's name, so an event without
    // `#[event]` is reported there.
    let encode =
        paths.iter().map(|path| quote_spanned!(path.span()=> ::es_core::__private::event_payload(event)));
    let decode = paths.iter().zip(&variants).map(|(path, variant)| {
        quote! {
            if event_type == <#path as #core::Event>::TYPE {
                return #private::decode_event::<#path>(schema_version, payload).map(Self::#variant);
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #core::EventSet for #enum_ident {
            fn event_type(&self) -> &'static #private::str {
                match *self {
                    #(Self::#variants(_) => <#paths as #core::Event>::TYPE,)*
                }
            }

            fn schema_version(&self) -> #private::u32 {
                match *self {
                    #(Self::#variants(_) => <#paths as #core::Event>::VERSION,)*
                }
            }

            fn to_payload(
                &self,
            ) -> #private::Result<#core::store::Payload, #private::serde_json::Error> {
                match *self {
                    #(Self::#variants(ref event) => #encode,)*
                }
            }

            fn from_stored(
                event_type: &#private::str,
                schema_version: #private::u32,
                payload: &#core::store::Payload,
            ) -> #private::Result<Self, #core::error::DecodeErrorKind> {
                #(#decode)*
                let _ = (schema_version, payload);
                #private::Result::Err(#core::error::DecodeErrorKind::UnknownType)
            }

            fn event_types() -> &'static [&'static #private::str] {
                const TYPES: &[&#private::str] = &[#(<#paths as #core::Event>::TYPE),*];
                TYPES
            }
        }
    }
}

fn aggregate_impl(def: &AggregateDef<'_>) -> TokenStream {
    let core = paths::core();
    let private = paths::private();
    let (ident, event_enum, command_enum) = (def.ident, &def.event_enum, &def.command_enum);
    let name = &def.name;
    let snapshot_version = Literal::u32_unsuffixed(def.snapshot_version);
    // Each dispatch carries the span of the name in the list, so a missing
    // `Apply`/`Handle` impl is reported at that name, with the message of
    // the trait's `#[diagnostic::on_unimplemented]`.
    let apply_arms = def.events.iter().map(|Member { path, variant }| {
        let call = quote_spanned!(path.span()=> <Self as #core::Apply<#path>>::apply(self, event));
        quote!(#event_enum::#variant(ref event) => #call,)
    });
    let handle_arms = def.commands.iter().map(|Member { path, variant }| {
        let call = quote_spanned!(path.span()=> <Self as #core::Handle<#path>>::handle(self, command));
        quote!(#command_enum::#variant(command) => #call,)
    });
    // Without `error = ..` the associated type is left out: the compiler
    // adds "missing `Error` in implementation" to our message, but takes the
    // type as failed, so the user's `Handle` impls that name their error
    // type add no errors of their own (a stand-in type would make each of
    // them a mismatch).
    let error = def.error.map(|error| quote!(type Error = #error;));
    quote! {
        #[automatically_derived]
        impl #core::Aggregate for #ident {
            const NAME: &'static #private::str = #name;
            const SNAPSHOT_VERSION: #private::u32 = #snapshot_version;
            type Event = #event_enum;
            type Command = #command_enum;
            #error

            fn apply_event(&mut self, event: &Self::Event) {
                match *event {
                    #(#apply_arms)*
                }
            }

            fn handle_command(
                &self,
                command: Self::Command,
            ) -> #private::Result<#core::Events<Self>, Self::Error> {
                match command {
                    #(#handle_arms)*
                }
            }
        }
    }
}

/// One const assertion per pair of listed events: two events stored under
/// the same type name could not be told apart on read. The assertion is
/// spanned on the later event of the pair.
fn distinct_type_names(def: &AggregateDef<'_>) -> TokenStream {
    let mut asserts = TokenStream::new();
    for (i, later) in def.events.iter().enumerate() {
        for earlier in &def.events[..i] {
            let (a, b) = (&earlier.path, &later.path);
            let message = format!(
                "events `{}` and `{}` are stored under the same type name, so they could not be told \
                 apart on read; give one of them its own `#[event(name = \"..\")]`",
                tokens_text(a),
                tokens_text(b),
            );
            // The paths are spelled out rather than interpolated from
            // `paths`, so that every token carries the span of the later
            // event's name and the compiler reports the failure there.
            asserts.extend(quote_spanned! {b.span()=>
                const _: () = if ::es_core::__private::str_eq(
                    <#a as ::es_core::Event>::TYPE,
                    <#b as ::es_core::Event>::TYPE,
                ) {
                    ::es_core::__private::panic!(#message)
                };
            });
        }
    }
    asserts
}
