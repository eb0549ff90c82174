//! `#[event_handler]`: registers an event handler at link time.
//!
//! On an async fn, the handler of one event type (the `E` of its
//! `&Recorded<E>` parameter); the fn stays as written and a hidden unit
//! struct implements `HandleEvent<E>` by calling it:
//!
//! ```text
//! #[event_handler(name = "welcome-mail", replay = "skip")]
//! async fn welcome(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> { .. }
//! ```
//!
//! On a struct, the handler of several event types, one `HandleEvent<E>`
//! impl each, built with `Default`:
//!
//! ```text
//! #[event_handler(name = "audit", events(AccountOpened, AccountClosed))]
//! #[derive(Default)]
//! struct Audit;
//! ```

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, GenericParam, Item, ItemFn, ItemStruct, PathArguments, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::subscriber::{self, Spec, SubscriberAttrs};
use crate::symbol::{CONSISTENCY, EVENTS, GROUP, NAME, PREFETCH, REPLAY, USES};
use crate::{item, paths};

const SPEC: Spec = Spec {
    what: "event handler",
    example_name: "welcome-mail",
    macro_name: "#[event_handler]",
    scope: "event handler attribute",
    keys: &[NAME, EVENTS, REPLAY, CONSISTENCY, GROUP, USES],
    refused: &[(
        PREFETCH,
        "`prefetch` is for projections: it loads the documents a batch of events reads, and an event \
         handler reads no documents",
    )],
};

const SHAPE: &str = "async fn name(event: &Recorded<E>, ctx: &HandlerCtx) -> Result<(), HandlerError>";

/// Expands `#[event_handler(args)] item`. Always emits the item, so a
/// mistake in the attribute or the signature gives its own error only.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    subscriber::expand(args, input, &SPEC, |cx, attrs, item| match item {
        Item::Fn(function) => expand_fn(cx, attrs, function),
        Item::Struct(structure) => expand_struct(cx, attrs, structure),
        other => {
            cx.error_spanned_by(
                item::head(other),
                format!(
                    "#[event_handler] goes on an async fn handling one event type (`{SHAPE}`) \
                     or on a struct listing several in `events(..)`"
                ),
            );
            None
        }
    })
}

/// The fn form: a unit struct whose `HandleEvent<E>` calls the fn.
fn expand_fn(cx: &Ctxt, attrs: &SubscriberAttrs, function: &ItemFn) -> Option<TokenStream> {
    if let Some(events) = &attrs.events {
        cx.error_spanned_by(
            &events.key,
            "`events(..)` is for a handler struct: an event handler fn handles the one event type \
             of its `&Recorded<E>` parameter",
        );
    }
    let signature = Signature::parse(cx, function)?;
    let core = paths::core();
    let private = paths::private();
    let (ident, event) = (&function.sig.ident, signature.event);
    // Each argument carries the span of its parameter's type, and the call
    // the span of the return type, so a wrong type is reported there.
    let event_arg = quote_spanned!(signature.event_param.span()=> event);
    let ctx_arg = quote_spanned!(signature.ctx_param.span()=> ctx);
    let returns_at = match &function.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => function.sig.paren_token.span.close(),
    };
    let call = quote_spanned!(returns_at=> #ident(#event_arg, #ctx_arg));
    let returns = quote_spanned! {returns_at=>
        impl #private::Future<Output = #private::Result<(), #core::HandlerError>> + #private::Send
    };
    // The impl is spanned on the event type (the trait path is spelled out
    // rather than interpolated, so its tokens carry that span too). It
    // holds only if the type is an event: the bound is wrapped in
    // `for<'__es>` so that it does not fail here but makes the impl not
    // apply, and a type that is not an event is reported once, by the
    // `.on::<E>()` of the registration.
    let handle_event = quote_spanned! {event.span()=>
        #[automatically_derived]
        impl ::es_core::HandleEvent<#event> for __EsHandler
        where
            for<'__es> #event: ::es_core::Event,
        {
            fn handle(&self, event: &#core::Recorded<#event>, ctx: &#core::HandlerCtx) -> #returns {
                #call
            }
        }
    };
    let items = quote! {
        struct __EsHandler;

        #handle_event
    };
    let (replay, settings) = (attrs.replay_call(), attrs.settings_calls());
    // The whole `.on::<E>()` carries the event type's span: its two
    // requirements (`E: Event`, and the impl above, which holds only for
    // an event) then fail at one place and the compiler reports one error.
    let on = quote_spanned!(event.span()=> let subscriber = subscriber.on::<#event>(););
    let uses = subscriber::uses_statements(&attrs.uses);
    let build = quote! {
        let subscriber = #core::readside::Subscriber::handler(__EsHandler);
        #on
        #uses
        subscriber #replay .build() #settings
    };
    Some(subscriber::registration(&attrs.name_or(&ident.to_string()), items, build))
}

/// An event handler fn's parameters, checked.
struct Signature<'a> {
    /// The `E` of `&Recorded<E>`.
    event: &'a Type,
    /// The first parameter's type, for spans.
    event_param: &'a Type,
    /// The second parameter's type, for spans.
    ctx_param: &'a Type,
}

impl<'a> Signature<'a> {
    /// Every mistake in the signature is reported; `None` if there was one.
    fn parse(cx: &Ctxt, function: &'a ItemFn) -> Option<Self> {
        let sig = &function.sig;
        let mut ok = true;
        if sig.asyncness.is_none() {
            let (fn_token, ident) = (&sig.fn_token, &sig.ident);
            cx.error_spanned_by(
                quote!(#fn_token #ident),
                format!("an event handler fn must be async: `{SHAPE}`"),
            );
            ok = false;
        }
        let generic = sig.generics.params.iter().find(|p| !matches!(p, GenericParam::Lifetime(_)));
        if let Some(param) = generic {
            cx.error_spanned_by(
                param,
                "an event handler fn cannot be generic: it is registered once, for one event type",
            );
            ok = false;
        }
        let params: Vec<&FnArg> = sig.inputs.iter().collect();
        let typed: Vec<Option<&Type>> = params
            .iter()
            .map(|param| match param {
                FnArg::Typed(typed) => Some(&*typed.ty),
                FnArg::Receiver(receiver) => {
                    cx.error_spanned_by(receiver, format!("an event handler fn takes no `self`: `{SHAPE}`"));
                    None
                }
            })
            .collect();
        let [Some(event_param), Some(ctx_param)] = typed[..] else {
            if params.len() != 2 {
                let message =
                    format!("an event handler fn takes two parameters, the event and the context: `{SHAPE}`");
                if params.is_empty() {
                    cx.syn_error(syn::Error::new(sig.paren_token.span.join(), message));
                } else {
                    cx.error_spanned_by(&sig.inputs, message);
                }
            }
            return None;
        };
        let event = recorded_event(event_param);
        if event.is_none() {
            cx.error_spanned_by(
                event_param,
                "the first parameter of an event handler fn must be `&Recorded<E>`, with `E` the \
                 event type handled, such as `&Recorded<AccountOpened>`",
            );
        }
        if !matches!(ctx_param, Type::Reference(r) if r.mutability.is_none()) {
            cx.error_spanned_by(
                ctx_param,
                "the second parameter of an event handler fn must be `&HandlerCtx`",
            );
            ok = false;
        }
        Some(Self { event: event.filter(|_| ok)?, event_param, ctx_param })
    }
}

/// The `E` of `&Recorded<E>` (any path ending in `Recorded`).
fn recorded_event(ty: &Type) -> Option<&Type> {
    let Type::Reference(reference) = ty else { return None };
    if reference.mutability.is_some() {
        return None;
    }
    let Type::Path(path) = &*reference.elem else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Recorded" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else { return None };
    match arguments.args.iter().collect::<Vec<_>>()[..] {
        [GenericArgument::Type(event)] => Some(event),
        _ => None,
    }
}

/// The struct form: built with `Default`, one `.on::<E>()` per listed event.
fn expand_struct(cx: &Ctxt, attrs: &mut SubscriberAttrs, structure: &ItemStruct) -> Option<TokenStream> {
    let ident = &structure.ident;
    if item::reject_generics(cx, &structure.generics, "an event handler, registered once,") {
        return None;
    }
    attrs.check_events(cx, "the handler handles, each with its `impl HandleEvent<E>`");
    let Some(events) = &attrs.events else {
        cx.error_spanned_by(
            ident,
            "#[event_handler] on a struct needs `events(..)`: the event types it handles, each with \
             its `impl HandleEvent<E>` (or put it on an async fn handling one event type)",
        );
        return None;
    };
    Some(subscriber::struct_registration(attrs, ident, &events.events, quote!(handler), attrs.replay_call()))
}
