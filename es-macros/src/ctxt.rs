//! Error accumulation: every mistake in one macro call is reported at once,
//! each at the user's token.
//!
//! Parsing goes on after a mistake (an unknown key is skipped, a duplicate
//! ignored) so the user fixes all of them in one round instead of one per
//! build.

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{parenthesized, Token};

use crate::symbol::{self, Symbol};

/// Collects the errors of one macro call.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    /// An empty context.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error spanned on `tokens` (from their first to their last
    /// token).
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, message: M) {
        self.errors.borrow_mut().push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records an error syn produced (it already carries its span).
    pub(crate) fn syn_error(&self, error: syn::Error) {
        self.errors.borrow_mut().push(error);
    }

    /// Records "unknown {what} `key`" at the key (`what` is such as
    /// `event attribute`), then skips the
    /// key's value (`= ..` or `(..)`) so parsing can go on with the next key.
    ///
    /// # Errors
    /// syn's error if the value cannot even be skipped.
    pub(crate) fn unknown_key(
        &self,
        meta: &ParseNestedMeta<'_>,
        what: &str,
        expected: &[Symbol],
    ) -> syn::Result<()> {
        let key = meta.path.to_token_stream().to_string().replace(' ', "");
        self.error_spanned_by(
            &meta.path,
            format!("unknown {what} `{key}`; expected {}", symbol::one_of(expected)),
        );
        if meta.input.peek(Token![=]) {
            let _skipped: syn::Expr = meta.value()?.parse()?;
        } else if meta.input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in meta.input);
            let _skipped: TokenStream = content.parse()?;
        }
        Ok(())
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty()
    }

    /// Every recorded error as `compile_error!` invocations, in order.
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.errors.into_inner().into_iter().map(syn::Error::into_compile_error).collect()
    }
}

/// One attribute key's value: set once; a second occurrence is an error at
/// that occurrence.
pub(crate) struct Slot<'c, T> {
    cx: &'c Ctxt,
    scope: &'static str,
    key: Symbol,
    value: Option<T>,
}

impl<'c, T> Slot<'c, T> {
    /// An empty slot for `key` of the `scope` attribute (such as `event`).
    pub(crate) fn new(cx: &'c Ctxt, scope: &'static str, key: Symbol) -> Self {
        Self { cx, scope, key, value: None }
    }

    /// Sets the value, or records "duplicate {scope} attribute `key`"
    /// spanned on `at` (the second occurrence) and keeps the first value.
    pub(crate) fn set<A: ToTokens>(&mut self, at: A, value: T) {
        if self.value.is_some() {
            self.cx.error_spanned_by(at, format!("duplicate {} attribute `{}`", self.scope, self.key));
        } else {
            self.value = Some(value);
        }
    }

    /// Whether a value was set.
    pub(crate) fn is_set(&self) -> bool {
        self.value.is_some()
    }

    /// The value, if one was set.
    pub(crate) fn get(self) -> Option<T> {
        self.value
    }
}
