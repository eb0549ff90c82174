//! What `#[aggregate(..)]` says, parsed and checked: every key once, each
//! value at the user's token, and the rules that span several keys.

use syn::punctuated::Punctuated;
use syn::{parenthesized, DeriveInput, Expr, ExprLit, Ident, Lit, LitStr, Path, Token, Type};

use crate::ctxt::{tokens_text, Ctxt, Slot};
use crate::symbol::{Symbol, AGGREGATE, COMMANDS, ERROR, EVENTS, NAME, SNAPSHOT_VERSION};

const SCOPE: &str = "aggregate attribute";
const KEYS: [Symbol; 5] = [NAME, ERROR, EVENTS, COMMANDS, SNAPSHOT_VERSION];

/// A listed event or command: the user's path and the enum variant named
/// after its last segment.
pub(super) struct Member {
    pub(super) path: Path,
    pub(super) variant: Ident,
}

impl Member {
    fn new(path: Path) -> Option<Self> {
        let variant = path.segments.last()?.ident.clone();
        Some(Self { path, variant })
    }
}

/// A parenthesized list (`events(A, B)`), with the key for spans.
pub(super) struct List {
    pub(super) key: Path,
    pub(super) members: Vec<Member>,
}

/// What `#[aggregate(..)]` said. A missing required key is reported and
/// left `None`; the expansion then stands in for it.
pub(super) struct AggregateAttrs {
    pub(super) name: Option<LitStr>,
    pub(super) error: Option<Type>,
    pub(super) events: Option<List>,
    pub(super) commands: Option<List>,
    pub(super) snapshot_version: Option<u32>,
}

impl AggregateAttrs {
    /// Parses every `#[aggregate(..)]` of the input and reports each
    /// mistake; a missing key once, at the attribute (or, without one, at
    /// the struct's name, with all the keys it needs in one message).
    pub(super) fn parse(cx: &Ctxt, input: &DeriveInput) -> Self {
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
        match attrs.first() {
            None => cx.error_spanned_by(
                &input.ident,
                "#[derive(Aggregate)] needs \
                 `#[aggregate(name = \"..\", error = Type, events(..), commands(..))]`",
            ),
            Some(attr) => {
                let missing = [
                    (name.is_set(), "`name = \"..\"`: the aggregate type name that streams are named after"),
                    (error.is_set(), "`error = Type`: the error a refused command returns"),
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
        }
        Self {
            name: name.get().flatten(),
            error: error.get(),
            events: events.get(),
            commands: commands.get(),
            snapshot_version: snapshot_version.get(),
        }
    }

    /// Cross-key rules: no empty `events(..)`, no member listed twice, no
    /// two members sharing a variant name. A member that breaks a rule is
    /// reported and dropped, so the enums stay valid and the mistake gives
    /// one error.
    pub(super) fn check(&mut self, cx: &Ctxt) {
        if let Some(events) = &self.events {
            if events.members.is_empty() {
                cx.error_spanned_by(
                    &events.key,
                    "`events(..)` lists no event: an aggregate changes only through its events",
                );
            }
        }
        for (list, what) in [(&mut self.events, "event"), (&mut self.commands, "command")] {
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
