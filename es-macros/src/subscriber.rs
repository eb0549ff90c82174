//! What `#[event_handler]` and `#[projection]` share: the attribute keys
//! that name and tune a read-side subscriber, their checks, and the
//! link-time registration both expand to.
//!
//! ```text
//! #[event_handler(name = "welcome-mail", replay = "skip", consistency = "strong", group = "mail")]
//! #[projection(name = "balances", events(MoneyDeposited, MoneyWithdrawn), group = "reports")]
//! #[projection(name = "balances", events(MoneyDeposited), prefetch(MoneyDeposited))]
//! ```
//! The registration is a factory fn building the `Subscriber` and an
//! `inventory::submit!` of `Registration::new(name, factory)`, at item
//! level inside `const _: () = { .. };` so nothing leaks into the user's
//! scope.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{parenthesized, Expr, ExprLit, Lit, LitStr, Path, Token, Type};

use crate::ctxt::{tokens_text, Ctxt, Slot};
use crate::paths;
use crate::symbol::{
    Symbol, CONSISTENCY, EVENTS, EVENTUAL, GROUP, NAME, PREFETCH, REPLAY, RUN, SKIP, STRONG, TABLE, USES,
};

mod output;

pub(crate) use output::{expand, registration, struct_registration, uses_statements};

/// The prefix the registry reserves for handler checkpoints.
const RESERVED_PREFIX: &str = "handler:";

/// Which macro is parsing, for keys and messages.
pub(crate) struct Spec {
    /// The macro as users write it: `#[event_handler]`.
    pub(crate) macro_name: &'static str,
    /// What it registers, for messages: `event handler`.
    pub(crate) what: &'static str,
    /// A name to show in examples: `welcome-mail`.
    pub(crate) example_name: &'static str,
    /// What its keys are called in messages: `event handler attribute`.
    pub(crate) scope: &'static str,
    /// The keys it accepts.
    pub(crate) keys: &'static [Symbol],
    /// Keys of the other macro it refuses, each with the reason.
    pub(crate) refused: &'static [(Symbol, &'static str)],
}

/// `events(A, B)`: the key (for spans) and the listed event types.
pub(crate) struct EventList {
    pub(crate) key: Path,
    pub(crate) events: Vec<Path>,
}

impl EventList {
    /// `key(A, B, ..)`: the event types a list key names.
    fn parse(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Self> {
        let content;
        parenthesized!(content in meta.input);
        let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
        Ok(Self { key: meta.path.clone(), events: paths.into_iter().collect() })
    }
}

/// What the attribute said, each value checked. A wrong value is reported
/// and left out, so the rest still expands.
pub(crate) struct SubscriberAttrs {
    /// The registered name (`None`: missing or wrong, already reported).
    pub(crate) name: Option<LitStr>,
    pub(crate) group: Option<LitStr>,
    /// `STRONG` or `EVENTUAL`.
    pub(crate) consistency: Option<Symbol>,
    /// `RUN` or `SKIP`.
    pub(crate) replay: Option<Symbol>,
    pub(crate) events: Option<EventList>,
    /// `uses(Mailer, Pool)`: the state types it reads.
    pub(crate) uses: Vec<Type>,
    /// `table`: a projection into the application's own tables.
    pub(crate) table: bool,
    /// `prefetch(A)`: the listed events whose documents a projection names
    /// for a batch read ([`check_prefetch`](SubscriberAttrs::check_prefetch)
    /// keeps only those also in `events(..)`).
    pub(crate) prefetch: Option<EventList>,
}

impl SubscriberAttrs {
    /// Parses the attribute's arguments, reporting every mistake; a missing
    /// `name` is reported at the arguments (or, when there are none, at
    /// `item_name`: the attribute itself is not among the tokens a macro
    /// gets).
    pub(crate) fn parse(cx: &Ctxt, args: TokenStream, spec: &Spec, item_name: TokenStream) -> Self {
        let mut name = Slot::new(cx, spec.scope, NAME);
        let mut group = Slot::new(cx, spec.scope, GROUP);
        let mut consistency = Slot::new(cx, spec.scope, CONSISTENCY);
        let mut replay = Slot::new(cx, spec.scope, REPLAY);
        let mut events = Slot::new(cx, spec.scope, EVENTS);
        let mut uses = Slot::new(cx, spec.scope, USES);
        let mut table = Slot::new(cx, spec.scope, TABLE);
        let mut prefetch = Slot::new(cx, spec.scope, PREFETCH);
        let parser = syn::meta::parser(|meta| {
            if let Some((_, reason)) = spec.refused.iter().find(|(key, _)| meta.path == *key) {
                cx.error_spanned_by(&meta.path, reason);
                if meta.input.peek(Token![=]) {
                    let _skipped: Expr = meta.value()?.parse()?;
                } else if meta.input.peek(syn::token::Paren) {
                    let content;
                    parenthesized!(content in meta.input);
                    let _skipped: TokenStream = content.parse()?;
                }
                return Ok(());
            }
            match cx.key(&meta, spec.scope, spec.keys)? {
                Some(NAME) => {
                    let expr: Expr = meta.value()?.parse()?;
                    // Set even when wrong (already reported), so it is not
                    // reported as missing too.
                    name.set(&meta.path, subscriber_name(cx, &expr, spec));
                }
                Some(GROUP) => {
                    let expr: Expr = meta.value()?.parse()?;
                    group.set(&meta.path, group_name(cx, &expr));
                }
                Some(CONSISTENCY) => {
                    let expr: Expr = meta.value()?.parse()?;
                    let value = word(
                        cx,
                        &expr,
                        CONSISTENCY,
                        &[
                            (EVENTUAL, "the default: it catches up in the background"),
                            (STRONG, "a command returns only after it handled the command's events"),
                        ],
                    );
                    consistency.set(&meta.path, value);
                }
                Some(REPLAY) => {
                    let expr: Expr = meta.value()?.parse()?;
                    let value = word(
                        cx,
                        &expr,
                        REPLAY,
                        &[
                            (RUN, "the default: it runs for replayed events too"),
                            (SKIP, "it never runs for replayed events, for side effects such as mail"),
                        ],
                    );
                    replay.set(&meta.path, value);
                }
                Some(EVENTS) => events.set(&meta.path, EventList::parse(&meta)?),
                Some(USES) => {
                    let content;
                    parenthesized!(content in meta.input);
                    let types = Punctuated::<Type, Token![,]>::parse_terminated(&content)?;
                    uses.set(&meta.path, types.into_iter().collect::<Vec<_>>());
                }
                Some(TABLE) => table.set(&meta.path, true),
                Some(PREFETCH) => prefetch.set(&meta.path, EventList::parse(&meta)?),
                _ => {}
            }
            Ok(())
        });
        let args_tokens = args.clone();
        if let Err(error) = parser.parse2(args) {
            cx.syn_error(error);
        }
        if !name.is_set() {
            let message = format!(
                "{} needs `name = \"..\"`: the unique name the {} is registered, checkpointed and selected by",
                spec.macro_name, spec.what
            );
            if args_tokens.is_empty() {
                cx.error_spanned_by(item_name, message);
            } else {
                cx.error_spanned_by(args_tokens, message);
            }
        }
        Self {
            name: name.get().flatten(),
            group: group.get().flatten(),
            consistency: consistency.get().flatten(),
            replay: replay.get().flatten(),
            events: events.get(),
            uses: uses.get().unwrap_or_default(),
            table: table.get().unwrap_or(false),
            prefetch: prefetch.get(),
        }
    }

    /// Checks `events(..)`: it must list something, and each type once. A
    /// type listed again is reported and dropped, so it makes one error.
    pub(crate) fn check_events(&mut self, cx: &Ctxt, what: &str) {
        let Some(list) = &mut self.events else { return };
        if list.events.is_empty() {
            cx.error_spanned_by(
                &list.key,
                format!("`events(..)` lists no event type: name the events {what}, such as `events(MoneyDeposited)`"),
            );
        }
        let mut kept: Vec<Path> = Vec::with_capacity(list.events.len());
        for path in list.events.drain(..) {
            let text = tokens_text(&path);
            if kept.iter().any(|earlier| tokens_text(earlier) == text) {
                cx.error_spanned_by(&path, format!("event `{text}` is listed twice in `events(..)`"));
            } else {
                kept.push(path);
            }
        }
        list.events = kept;
    }

    /// Checks `prefetch(..)`: each type once, each also in `events(..)`
    /// (run after [`check_events`](SubscriberAttrs::check_events)). A type
    /// that breaks a rule is reported and dropped, so it makes one error.
    pub(crate) fn check_prefetch(&mut self, cx: &Ctxt) {
        let Some(list) = &mut self.prefetch else { return };
        if list.events.is_empty() {
            cx.error_spanned_by(
                &list.key,
                "`prefetch(..)` lists no event type: name the events whose documents the projection \
                 names with `impl Prefetch<E>`, such as `prefetch(MoneyDeposited)`, or leave it out",
            );
        }
        let listed: Vec<String> =
            self.events.iter().flat_map(|list| list.events.iter()).map(tokens_text).collect();
        let mut kept: Vec<Path> = Vec::with_capacity(list.events.len());
        for path in list.events.drain(..) {
            let text = tokens_text(&path);
            if kept.iter().any(|earlier| tokens_text(earlier) == text) {
                cx.error_spanned_by(&path, format!("event `{text}` is listed twice in `prefetch(..)`"));
            } else if self.events.is_some() && !listed.contains(&text) {
                cx.error_spanned_by(
                    &path,
                    format!(
                        "event `{text}` is listed in `prefetch(..)` but not in `events(..)`: a projection \
                         prefetches for events it projects; add it to `events(..)` too"
                    ),
                );
            } else {
                kept.push(path);
            }
        }
        list.events = kept;
    }

    /// The name to register under: the given one, or `fallback` when it was
    /// missing or wrong (an error is reported then, so it never links).
    pub(crate) fn name_or(&self, fallback: &str) -> LitStr {
        self.name.clone().unwrap_or_else(|| LitStr::new(fallback, Span::call_site()))
    }

    /// `.replay(..)` for a handler builder, if `replay` was given.
    pub(crate) fn replay_call(&self) -> TokenStream {
        let core = paths::core();
        match self.replay {
            Some(SKIP) => quote!(.replay(#core::readside::Replay::Skip)),
            Some(_) => quote!(.replay(#core::readside::Replay::Run)),
            None => TokenStream::new(),
        }
    }

    /// `.in_group(..)` and `.consistency(..)` for a built `Subscriber`.
    pub(crate) fn settings_calls(&self) -> TokenStream {
        let core = paths::core();
        let group = self.group.as_ref().map(|group| quote!(.in_group(#group)));
        let consistency = match self.consistency {
            Some(STRONG) => quote!(.consistency(#core::readside::Consistency::Strong)),
            Some(_) => quote!(.consistency(#core::readside::Consistency::Eventual)),
            None => TokenStream::new(),
        };
        quote!(#group #consistency)
    }
}

fn string_literal<'e>(cx: &Ctxt, expr: &'e Expr, example: &str) -> Option<&'e LitStr> {
    if let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = expr {
        Some(lit)
    } else {
        cx.error_spanned_by(expr, format!("expected a string literal, such as `{example}`"));
        None
    }
}

/// The subscriber name, if it is a string literal the registry accepts
/// (an error is recorded otherwise).
fn subscriber_name(cx: &Ctxt, expr: &Expr, spec: &Spec) -> Option<LitStr> {
    let lit = string_literal(cx, expr, &format!("name = \"{}\"", spec.example_name))?;
    let value = lit.value();
    if value.trim().is_empty() {
        cx.error_spanned_by(lit, format!("the {} `name` must not be empty", spec.what));
        return None;
    }
    if value.starts_with(RESERVED_PREFIX) {
        cx.error_spanned_by(
            lit,
            format!(
                "name \"{value}\" starts with `{RESERVED_PREFIX}`, which is reserved for the checkpoints of \
                 handlers; choose another name"
            ),
        );
        return None;
    }
    Some(lit.clone())
}

fn group_name(cx: &Ctxt, expr: &Expr) -> Option<LitStr> {
    let lit = string_literal(cx, expr, "group = \"mail\"")?;
    if lit.value().trim().is_empty() {
        cx.error_spanned_by(lit, "`group` must not be empty; leave it out for no group");
        return None;
    }
    Some(lit.clone())
}

/// A string value that must be one of a few words, each with what it means
/// (for the message that lists them).
fn word(cx: &Ctxt, expr: &Expr, key: Symbol, allowed: &[(Symbol, &str)]) -> Option<Symbol> {
    let lit =
        string_literal(cx, expr, &format!("{key} = \"{}\"", allowed.first().map_or("", |a| a.0.as_str())))?;
    let value = lit.value();
    if let Some((word, _)) = allowed.iter().find(|(word, _)| word.as_str() == value) {
        return Some(*word);
    }
    let choices: Vec<String> =
        allowed.iter().map(|(word, meaning)| format!("\"{word}\" ({meaning})")).collect();
    cx.error_spanned_by(lit, format!("`{key}` must be {}, not \"{value}\"", choices.join(" or ")));
    None
}
