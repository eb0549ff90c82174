//! `#[command(aggregate = T)]`: an `es_core::Command` impl on a struct with
//! named fields, routed by its `#[id]` field and checked by its
//! `#[validate(..)]` field rules.
//!
//! ```text
//! #[command(aggregate = Account, validate = check_withdraw)]
//! pub struct Withdraw {
//!     #[id] pub account_id: String,
//!     #[validate(min = 1, max = 10_000)] pub amount: u64,
//!     #[validate(non_empty)] pub reference: String,
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, ExprUnary, Field, Fields, Ident, Item, ItemStruct, Lit, Path, Type, UnOp,
};

use crate::ctxt::{Ctxt, Slot};
use crate::symbol::{AGGREGATE, ID, MAX, MIN, NON_EMPTY, VALIDATE};
use crate::{item, paths};

const SCOPE: &str = "command attribute";
const RULE: &str = "validate rule";

/// What `#[command(..)]` said.
struct CommandAttrs {
    /// The aggregate that handles the command.
    aggregate: Option<Type>,
    /// The user's whole-command check.
    validate: Option<Path>,
}

impl CommandAttrs {
    fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut aggregate = Slot::new(cx, SCOPE, AGGREGATE);
        let mut validate = Slot::new(cx, SCOPE, VALIDATE);
        let parser = syn::meta::parser(|meta| {
            match cx.key(&meta, SCOPE, &[AGGREGATE, VALIDATE])? {
                Some(AGGREGATE) => {
                    let ty: Type = meta.value()?.parse()?;
                    aggregate.set(&meta.path, ty);
                }
                Some(VALIDATE) => {
                    let path: Path = meta.value()?.parse()?;
                    validate.set(&meta.path, path);
                }
                _ => {}
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            cx.syn_error(error);
        }
        Self { aggregate: aggregate.get(), validate: validate.get() }
    }
}

/// One field rule from `#[validate(..)]`.
enum Rule {
    /// `non_empty`: `.is_empty()` must be false.
    NonEmpty,
    /// `min = N`: the value must be at least `N` (shown as the string).
    Min(Expr, String),
    /// `max = N`: the value must be at most `N`.
    Max(Expr, String),
}

/// A rule with the key the user wrote, for spans.
struct SpannedRule {
    rule: Rule,
    key: Path,
}

/// One field of the command with its rules.
struct CommandField<'a> {
    ident: &'a Ident,
    rules: Vec<SpannedRule>,
}

/// The command, parsed: its routing field and every rule.
struct CommandDef<'a> {
    ident: &'a Ident,
    id_field: Option<&'a Ident>,
    fields: Vec<CommandField<'a>>,
}

impl<'a> CommandDef<'a> {
    fn parse(cx: &Ctxt, item: &'a ItemStruct) -> Option<Self> {
        let named = match &item.fields {
            Fields::Named(named) => named,
            Fields::Unnamed(unnamed) => {
                cx.error_spanned_by(
                    unnamed,
                    "#[command] needs a struct with named fields, not a tuple struct",
                );
                return None;
            }
            Fields::Unit => {
                cx.error_spanned_by(
                    &item.ident,
                    "#[command] needs a struct with named fields, not a unit struct",
                );
                return None;
            }
        };
        let mut id_field = None;
        let mut fields = Vec::new();
        for field in &named.named {
            let Some(ident) = &field.ident else { continue };
            if let Some(id_attr) = field.attrs.iter().find(|attr| attr.path() == &ID) {
                if id_attr.meta.require_path_only().is_err() {
                    cx.error_spanned_by(&id_attr.meta, "`#[id]` takes no arguments: write `#[id]`");
                }
                if id_field.is_some() {
                    cx.error_spanned_by(
                        id_attr,
                        "`#[command]` takes one field marked `#[id]`; this is the second",
                    );
                } else {
                    id_field = Some(ident);
                }
            }
            fields.push(CommandField { ident, rules: parse_rules(cx, field) });
        }
        if id_field.is_none() {
            cx.error_spanned_by(
                &item.ident,
                "`#[command]` needs one field marked `#[id]`: its value is the id of the target aggregate",
            );
        }
        Some(Self { ident: &item.ident, id_field, fields })
    }
}

fn parse_rules(cx: &Ctxt, field: &Field) -> Vec<SpannedRule> {
    // One slot per rule and field, across all of the field's `#[validate]`
    // attributes, so a rule given twice is an error wherever it repeats.
    let mut non_empty = Slot::new(cx, RULE, NON_EMPTY);
    let mut min = Slot::new(cx, RULE, MIN);
    let mut max = Slot::new(cx, RULE, MAX);
    for attr in field.attrs.iter().filter(|attr| attr.path() == &VALIDATE) {
        let parsed = attr.parse_nested_meta(|meta| {
            let key = cx.key(&meta, RULE, &[NON_EMPTY, MIN, MAX])?;
            match key {
                Some(NON_EMPTY) => {
                    non_empty.set(&meta.path, SpannedRule { rule: Rule::NonEmpty, key: meta.path.clone() });
                }
                Some(bound @ (MIN | MAX)) => {
                    let expr: Expr = meta.value()?.parse()?;
                    let Some(shown) = number(&expr) else {
                        cx.error_spanned_by(
                            &expr,
                            format!("`{bound}` takes a number literal, such as `{bound} = 1`"),
                        );
                        return Ok(());
                    };
                    let key = meta.path.clone();
                    if bound == MIN {
                        min.set(&meta.path, SpannedRule { rule: Rule::Min(expr, shown), key });
                    } else {
                        max.set(&meta.path, SpannedRule { rule: Rule::Max(expr, shown), key });
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
    [non_empty.get(), min.get(), max.get()].into_iter().flatten().collect()
}

/// The number `expr` spells (an integer or float literal, maybe negated),
/// as shown in messages; `None` if it is not one.
fn number(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => Some(lit.base10_digits().to_owned()),
        Expr::Lit(ExprLit { lit: Lit::Float(lit), .. }) => Some(lit.base10_digits().to_owned()),
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. }) => number(expr).map(|n| format!("-{n}")),
        _ => None,
    }
}

fn is_helper(attr: &Attribute) -> bool {
    attr.path() == &ID || attr.path() == &VALIDATE
}

/// Expands `#[command(args)] item`. Always emits the struct (without the
/// helper attributes), so a mistake gives its own error and nothing else.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let attrs = CommandAttrs::parse(&cx, args);
    let item: Item = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.into_compile_error(),
    };
    let Item::Struct(item) = item else {
        cx.error_spanned_by(item::head(&item), "#[command] goes on a struct with named fields");
        let errors = cx.into_compile_errors();
        return quote!(#item #errors);
    };
    if attrs.aggregate.is_none() {
        cx.error_spanned_by(
            quote_spanned!(Span::call_site()=> command),
            "#[command] needs `aggregate = Type`: the aggregate that handles the command",
        );
    }
    let generic = item::reject_generics(&cx, &item.generics, "a command");
    let def = CommandDef::parse(&cx, &item);

    let command_impl = match (&def, &attrs.aggregate, generic) {
        (Some(def), Some(aggregate), false) => command_impl(def, aggregate, attrs.validate.as_ref()),
        _ => TokenStream::new(),
    };
    let mut stripped = item.clone();
    for field in stripped.fields.iter_mut() {
        field.attrs.retain(|attr| !is_helper(attr));
    }
    let errors = cx.into_compile_errors();
    quote! {
        #stripped
        #command_impl
        #errors
    }
}

fn command_impl(def: &CommandDef<'_>, aggregate: &Type, validate: Option<&Path>) -> TokenStream {
    let core = paths::core();
    let private = paths::private();
    let ident = def.ident;
    let name = ident.unraw().to_string();
    let aggregate_id = match def.id_field {
        Some(field) => quote!(#private::ToString::to_string(&self.#field)),
        // Only reached when an error was already reported: the missing
        // `#[id]`. The body keeps the impl whole so that error stays alone.
        None => quote!(#private::unreachable!("`#[command]` without an `#[id]` field")),
    };
    let checks = def.fields.iter().flat_map(|field| {
        let ident = field.ident;
        let shown = ident.unraw().to_string();
        field.rules.iter().map(move |SpannedRule { rule, key }| {
            let (broken, message) = match rule {
                Rule::NonEmpty => {
                    (quote_spanned!(key.span()=> self.#ident.is_empty()), "must not be empty".to_owned())
                }
                Rule::Min(bound, n) => (quote!(self.#ident < #bound), format!("must be at least {n}")),
                Rule::Max(bound, n) => (quote!(self.#ident > #bound), format!("must be at most {n}")),
            };
            quote! {
                if #broken {
                    violations.field(#shown, #message);
                }
            }
        })
    });
    // Coerced to the expected fn pointer at the user's path, so a function
    // of the wrong shape gives one error there.
    let user_check = validate.map(|path| {
        let check = quote_spanned! {path.span()=>
            let check: fn(&Self) -> #private::Result<(), #core::error::ValidationError> = #path;
        };
        quote! {
            #check
            check(self)?;
        }
    });
    let checks: Vec<TokenStream> = checks.collect();
    let validate_fn = if checks.is_empty() && user_check.is_none() {
        TokenStream::new()
    } else {
        let field_checks = (!checks.is_empty()).then(|| {
            quote! {
                let mut violations = #core::error::ValidationError::new(<Self as #core::Command>::NAME);
                #(#checks)*
                // Field rules first: the user's check may rely on them.
                violations.into_result()?;
            }
        });
        quote! {
            fn validate(&self) -> #private::Result<(), #core::error::ValidationError> {
                #field_checks
                #user_check
                #private::Result::Ok(())
            }
        }
    };
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #core::Command for #ident {
                type Aggregate = #aggregate;
                const NAME: &'static #private::str = #name;

                fn aggregate_id(&self) -> #private::String {
                    #aggregate_id
                }

                #validate_fn

                fn into_aggregate_command(self) -> <#aggregate as #core::Aggregate>::Command {
                    #private::From::from(self)
                }
            }
        };
    }
}
