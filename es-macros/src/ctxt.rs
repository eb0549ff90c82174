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
use syn::{parenthesized, Path, Token};

use crate::symbol::{self, Symbol};

/// The tokens as the user wrote them, without spaces: for messages.
pub(crate) fn tokens_text<T: ToTokens>(tokens: &T) -> String {
    tokens.to_token_stream().to_string().replace(' ', "")
}

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

    /// Which of `keys` the nested meta names.
    ///
    /// A known key is returned as is. An unknown key is reported at the key
    /// ("unknown {what} `evnts`", `what` being such as `aggregate
    /// attribute`). When it is a near miss of exactly one known key, the
    /// message suggests that key and it is returned, so its value is still
    /// parsed and one typo makes one message; otherwise its value (`= ..` or
    /// `(..)`) is skipped and `None` returned.
    ///
    /// # Errors
    /// syn's error if the value of an unknown key cannot even be skipped.
    pub(crate) fn key(
        &self,
        meta: &ParseNestedMeta<'_>,
        what: &str,
        keys: &[Symbol],
    ) -> syn::Result<Option<Symbol>> {
        if let Some(key) = keys.iter().find(|key| meta.path == **key) {
            return Ok(Some(*key));
        }
        let written = meta.path.to_token_stream().to_string().replace(' ', "");
        let near: Vec<Symbol> =
            keys.iter().copied().filter(|key| symbol::is_near_miss(&written, key.as_str())).collect();
        if let [suggestion] = near[..] {
            self.error_spanned_by(
                &meta.path,
                format!("unknown {what} `{written}`; did you mean `{suggestion}`?"),
            );
            return Ok(Some(suggestion));
        }
        self.error_spanned_by(
            &meta.path,
            format!("unknown {what} `{written}`; expected {}", symbol::one_of(keys)),
        );
        if meta.input.peek(Token![=]) {
            let _skipped: syn::Expr = meta.value()?.parse()?;
        } else if meta.input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in meta.input);
            let _skipped: TokenStream = content.parse()?;
        }
        Ok(None)
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
    /// What the key is, for messages: such as `event attribute`.
    what: &'static str,
    key: Symbol,
    value: Option<T>,
    /// Whether `value` was given under a misspelt key.
    misspelt: bool,
}

impl<'c, T> Slot<'c, T> {
    /// An empty slot for `key`, a `what` (such as `event attribute`).
    pub(crate) fn new(cx: &'c Ctxt, what: &'static str, key: Symbol) -> Self {
        Self { cx, what, key, value: None, misspelt: false }
    }

    /// Sets the value, or records "duplicate {what} `key`" spanned on `at`
    /// (the second occurrence) and keeps the first value.
    ///
    /// A key the user misspelt (`at` is not the key itself; [`Ctxt::key`]
    /// reported it with a suggestion) never makes a duplicate error: one
    /// typo, one message. A value under the correct spelling replaces one
    /// set under a misspelt key.
    pub(crate) fn set(&mut self, at: &Path, value: T) {
        let misspelt = *at != self.key;
        match (&self.value, misspelt) {
            (None, _) => {
                self.value = Some(value);
                self.misspelt = misspelt;
            }
            (Some(_), false) if self.misspelt => {
                self.value = Some(value);
                self.misspelt = false;
            }
            (Some(_), false) => {
                self.cx.error_spanned_by(at, format!("duplicate {} `{}`", self.what, self.key));
            }
            (Some(_), true) => {}
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
