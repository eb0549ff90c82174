//! Procedural macros of es: `#[event]`, `#[command]`,
//! `#[derive(Aggregate)]`, `#[event_handler]` and `#[projection]`.
//!
//! Use them through `es-core`, which re-exports them as
//! `es_core::{event, command, Aggregate, event_handler, projection}`. The code they generate names
//! only `::es_core` and its hidden `__private` module, so a crate that uses
//! them needs no dependency on serde, serde_json or this crate for its
//! events and commands.
//!
//! Each macro parses its input into a typed model, reports every mistake
//! together (each at the token that is wrong), and still emits the user's
//! item after a mistake, so one mistake gives one error.

mod aggregate;
mod command;
mod ctxt;
mod event;
mod handler;
mod item;
mod paths;
mod projection;
mod stand_in;
mod subscriber;
mod symbol;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Makes a struct or enum a stored event: serde derives and an
/// `es_core::Event` impl.
///
/// Keys, all optional:
/// - `name = "X"`: the type name stored with each event (default: the Rust
///   type name). Two events of one aggregate must not share it.
/// - `version = N`: the current schema version (default 1, at least 1).
/// - `upcast = path`: a
///   `fn(u32, serde_json::Value) -> Result<serde_json::Value, es_core::error::UpcastError>`
///   that turns the payload of an older version (the `u32`) into the
///   current one; without it, older payloads are read as they are.
///
/// serde's derives come from the attribute; es needs nothing more of an
/// event. Derive `Debug`, `Clone` or `PartialEq` where you want them: the
/// aggregate's event enum has each when every listed event does, and the
/// test kit's checks that compare or print events (such as
/// `then_expect_events`) ask for `PartialEq` and `Debug`.
///
/// ```
/// use es_core::error::UpcastError;
/// use es_core::{event, Event};
///
/// #[event]
/// pub struct MoneyDeposited {
///     pub amount: u64,
/// }
///
/// /// Version 1 had no `currency`; it was always euros.
/// #[event(name = "Withdrawn", version = 2, upcast = withdrawn_from_v1)]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct MoneyWithdrawn {
///     pub amount: u64,
///     pub currency: String,
/// }
///
/// fn withdrawn_from_v1(
///     from_version: u32,
///     mut payload: serde_json::Value,
/// ) -> Result<serde_json::Value, UpcastError> {
///     match from_version {
///         1 => {
///             payload["currency"] = "EUR".into();
///             Ok(payload)
///         }
///         from => Err(UpcastError::UnsupportedVersion { from }),
///     }
/// }
///
/// assert_eq!((MoneyDeposited::TYPE, MoneyDeposited::VERSION), ("MoneyDeposited", 1));
/// assert_eq!((MoneyWithdrawn::TYPE, MoneyWithdrawn::VERSION), ("Withdrawn", 2));
/// let upcast = MoneyWithdrawn::upcast(1, serde_json::json!({"amount": 5})).unwrap();
/// assert_eq!(upcast, serde_json::json!({"amount": 5, "currency": "EUR"}));
/// ```
///
/// A version starts at 1:
///
/// ```compile_fail
/// #[es_core::event(version = 0)]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct MoneyDeposited {
///     pub amount: u64,
/// }
/// ```
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    event::expand(args.into(), item.into()).into()
}

/// Makes a struct with named fields a command of an aggregate: an
/// `es_core::Command` impl.
///
/// - `aggregate = Type` (required): the aggregate that handles it; the
///   struct must be listed in that aggregate's `commands(..)`. The tie is
///   checked both ways: a command whose aggregate does not list it is an
///   error at the `Type` written here, and a type listed in `commands(..)`
///   that is not a command of that aggregate is an error at its name in
///   the list.
/// - `validate = path` (optional): a `fn(&Self) -> Result<(), es_core::error::ValidationError>`
///   for rules about the whole command.
/// - `#[id]` on exactly one field: its `ToString` value is the id of the
///   target aggregate instance.
/// - `#[validate(..)]` on fields: `non_empty` (anything with
///   `is_empty()`: `String`, `&str`, `Vec`), `min = N` and `max = N`
///   (numbers; `N` an integer or float literal).
///
/// `Command::validate` checks every field rule and reports every broken
/// one in one `ValidationError`. Only when all field rules hold does it run
/// the `validate` function, which may then rely on them. The helper
/// attributes are removed from the emitted struct.
///
/// ```
/// use es_core::{command, event, Aggregate, Apply, Command, Events, Handle};
/// use es_core::error::ValidationError;
///
/// #[command(aggregate = Account, validate = not_to_self)]
/// #[derive(Debug, Clone)]
/// pub struct Transfer {
///     #[id]
///     pub account_id: u64,
///     #[validate(non_empty)]
///     pub to: String,
///     #[validate(min = 1, max = 10_000)]
///     pub amount: u64,
/// }
///
/// fn not_to_self(command: &Transfer) -> Result<(), ValidationError> {
///     let mut error = ValidationError::new(Transfer::NAME);
///     if command.to == command.account_id.to_string() {
///         error.field("to", "must be another account");
///     }
///     error.into_result()
/// }
///
/// let transfer = Transfer { account_id: 7, to: String::new(), amount: 0 };
/// assert_eq!(transfer.aggregate_id(), "7");
/// let error = transfer.validate().unwrap_err();
/// assert_eq!(error.to_string(), "command `Transfer` is invalid: `to` must not be empty; `amount` must be at least 1");
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq)]
/// # pub struct Transferred { pub amount: u64 }
/// # #[derive(Debug)]
/// # pub struct Refused;
/// # impl std::fmt::Display for Refused {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("refused") }
/// # }
/// # impl std::error::Error for Refused {}
/// # #[derive(Aggregate, Default, serde::Serialize, serde::Deserialize)]
/// # #[aggregate(name = "account", error = Refused, events(Transferred), commands(Transfer))]
/// # pub struct Account { balance: u64 }
/// # impl Handle<Transfer> for Account {
/// #     fn handle(&self, command: Transfer) -> Result<Events<Self>, Refused> {
/// #         Ok(Events::one(Transferred { amount: command.amount }))
/// #     }
/// # }
/// # impl Apply<Transferred> for Account {
/// #     fn apply(&mut self, event: &Transferred) { self.balance -= event.amount; }
/// # }
/// ```
///
/// A command is listed by the aggregate it names:
///
/// ```compile_fail
/// # use es_core::{command, event, Aggregate, Apply};
/// # #[event]
/// # pub struct Opened {}
/// #[command(aggregate = Account)]
/// #[derive(Debug, Clone)]
/// pub struct Close {
///     #[id]
///     pub account_id: String,
/// }
///
/// #[derive(Aggregate, Default, serde::Serialize, serde::Deserialize)]
/// #[aggregate(name = "account", error = std::convert::Infallible, events(Opened), commands())]
/// pub struct Account {}
/// # impl Apply<Opened> for Account { fn apply(&mut self, _: &Opened) {} }
/// // error: `Close` says `aggregate = Account` but `Account` does not list it in `commands(..)`
/// ```
#[proc_macro_attribute]
pub fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    command::expand(args.into(), item.into()).into()
}

/// Ties an aggregate's events and commands together: generates
/// `{Name}Event` and `{Name}Command` enums (one variant per listed type,
/// named after it, with `From` impls), the events' `EventSet` impl, and the
/// `Aggregate` impl that dispatches to your `Apply` and `Handle` impls.
///
/// `#[aggregate(..)]` keys:
/// - `name = ".."` (required): the aggregate type name; streams are named
///   `{name}-{id}`, so it may use ASCII letters, digits, `_` and `.` only.
/// - `error = Type` (required): what a refused command returns.
/// - `events(A, B, ..)` (required, not empty): the events it records.
/// - `commands(X, Y, ..)` (required): the commands it handles.
/// - `snapshot_version = N` (optional, default 1): bump it when the
///   state's serialized shape changes, so older snapshots are ignored.
///
/// A listed event without its `Apply` impl, or command without its
/// `Handle` impl, is a compile error at its name in the list; so are a
/// listed type that is not an `#[event]`, a listed command that names
/// another aggregate, and two listed events stored under the same type
/// name. The enums get the struct's visibility; the event enum is `Debug`,
/// `Clone` and `PartialEq` when every listed event is. The state itself
/// derives `Default` and serde's `Serialize` and `Deserialize` (for
/// snapshots).
///
/// Each listed event is also recorded at link time as owned by this
/// aggregate, so the read side can route events by aggregate type and
/// event type together.
///
/// ```
/// use es_core::{command, event, Aggregate, Apply, Events, EventSet, Handle};
///
/// #[event]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct Rang {
///     pub times: u32,
/// }
///
/// #[command(aggregate = Bell)]
/// #[derive(Debug, Clone)]
/// pub struct Ring {
///     #[id]
///     pub bell: String,
///     #[validate(min = 1)]
///     pub times: u32,
/// }
///
/// #[derive(Debug, PartialEq)]
/// pub enum BellError {
///     Cracked,
/// }
///
/// impl std::fmt::Display for BellError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the bell is cracked")
///     }
/// }
///
/// impl std::error::Error for BellError {}
///
/// #[derive(Aggregate, Default, serde::Serialize, serde::Deserialize)]
/// #[aggregate(name = "bell", error = BellError, events(Rang), commands(Ring))]
/// pub struct Bell {
///     rung: u32,
/// }
///
/// impl Handle<Ring> for Bell {
///     fn handle(&self, command: Ring) -> Result<Events<Self>, BellError> {
///         if self.rung + command.times > 1_000 {
///             return Err(BellError::Cracked);
///         }
///         Ok(Events::one(Rang { times: command.times }))
///     }
/// }
///
/// impl Apply<Rang> for Bell {
///     fn apply(&mut self, event: &Rang) {
///         self.rung += event.times;
///     }
/// }
///
/// let event = BellEvent::from(Rang { times: 3 });
/// assert_eq!((event.event_type(), event.schema_version()), ("Rang", 1));
/// let payload = event.to_payload().unwrap();
/// assert_eq!(BellEvent::from_stored("Rang", 1, &payload).unwrap(), event);
/// ```
///
/// Every listed event needs its `Apply` impl:
///
/// ```compile_fail
/// # use es_core::{event, Aggregate};
/// #[event]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct Rang {
///     pub times: u32,
/// }
///
/// #[derive(Aggregate, Default, serde::Serialize, serde::Deserialize)]
/// #[aggregate(name = "bell", error = std::convert::Infallible, events(Rang), commands())]
/// pub struct Bell {
///     rung: u32,
/// }
/// // error: `Bell` lists `Rang` in `events(..)` but does not apply it
/// ```
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::expand(&input).into()
}

/// Registers an event handler at link time, under a unique name, for
/// `es_core::readside::Registry::from_inventory` (and so for a `ReadSide` built
/// without an explicit registry).
///
/// Keys:
/// - `name = ".."` (required): the name it is registered, checkpointed and
///   selected by; not empty, not starting with `handler:`.
/// - `replay = "run" | "skip"` (default `"run"`): with `"skip"` it never
///   runs for replayed history (side effects such as mail).
/// - `consistency = "eventual" | "strong"` (default `"eventual"`): with
///   `"strong"` a command returns only after the handler handled its
///   events.
/// - `group = ".."` (optional): a group an application can select.
/// - `events(A, B, ..)`: only on a struct, see below.
///
/// On an `async fn name(event: &Recorded<E>, ctx: &HandlerCtx) ->
/// Result<(), HandlerError>` it handles the one event type `E`; the fn
/// stays as written and can still be called.
///
/// ```
/// use es_core::{event, event_handler, HandlerCtx, HandlerError, Recorded};
/// use es_core::readside::{Registry, Replay};
///
/// #[event]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct AccountOpened {
///     pub owner: String,
/// }
///
/// #[event_handler(name = "welcome-mail", replay = "skip", group = "mail")]
/// async fn welcome(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
///     println!("{}: welcome, {}", ctx.name(), e.owner);
///     Ok(())
/// }
///
/// let registry = Registry::from_inventory()?;
/// let welcome = registry.get("welcome-mail").unwrap();
/// assert_eq!((welcome.event_types(), welcome.replay_mode()), (vec!["AccountOpened"], Replay::Skip));
/// # Ok::<(), es_core::error::RegistryError>(())
/// ```
///
/// On a struct, it handles every event type listed in `events(..)`: the
/// struct implements `Default` (the registration builds it with that) and
/// `HandleEvent<E>` for each listed `E`. A listed event without its impl
/// is a compile error at its name in the list. The struct gets the name as
/// an associated `const NAME: &str` (a fn, having no type, gets none).
///
/// ```
/// use es_core::{event, event_handler, HandleEvent, HandlerCtx, HandlerError, Recorded};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq)]
/// # pub struct AccountOpened {}
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq)]
/// # pub struct AccountClosed {}
///
/// #[event_handler(name = "audit", events(AccountOpened, AccountClosed))]
/// #[derive(Default)]
/// struct Audit;
///
/// impl HandleEvent<AccountOpened> for Audit {
///     async fn handle(&self, e: &Recorded<AccountOpened>, _: &HandlerCtx) -> Result<(), HandlerError> {
///         println!("opened: {}", e.stream_id);
///         Ok(())
///     }
/// }
///
/// impl HandleEvent<AccountClosed> for Audit {
///     async fn handle(&self, e: &Recorded<AccountClosed>, _: &HandlerCtx) -> Result<(), HandlerError> {
///         println!("closed: {}", e.stream_id);
///         Ok(())
///     }
/// }
/// assert_eq!(Audit::NAME, "audit");
/// ```
///
/// A handler fn is async:
///
/// ```compile_fail
/// # use es_core::{event, event_handler, HandlerCtx, HandlerError, Recorded};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq)]
/// # pub struct AccountOpened {}
/// #[event_handler(name = "welcome-mail")]
/// fn welcome(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}

/// Registers a projection at link time, under a unique name, for
/// `es_core::readside::Registry::from_inventory` (and so for a `ReadSide` built
/// without an explicit registry).
///
/// It goes on a struct that implements `Default` (the registration builds
/// it with that) and `Project<E>` for each event type in `events(..)`, and
/// gives the struct its name as an associated `const NAME: &str`. Keys:
/// - `name = ".."` (required): the name it is registered and selected by,
///   and the namespace of its documents; not empty, not starting with
///   `handler:`.
/// - `events(A, B, ..)` (required, not empty): the event types it projects.
/// - `consistency = "eventual" | "strong"` (default `"eventual"`): with
///   `"strong"` a command returns only after the projection has its
///   events.
/// - `group = ".."` (optional): a group an application can select.
///
/// ```
/// use es_core::{event, projection, HandlerError, Project, ProjectionTx, Recorded};
///
/// #[event]
/// #[derive(Debug, Clone, PartialEq)]
/// pub struct MoneyDeposited {
///     pub amount: u64,
/// }
///
/// #[projection(name = "deposits", events(MoneyDeposited), consistency = "strong")]
/// #[derive(Default)]
/// struct Deposits;
///
/// impl Project<MoneyDeposited> for Deposits {
///     async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
///         let total: u64 = tx.get(e.stream_id.as_str()).await?.unwrap_or(0);
///         tx.put(e.stream_id.as_str(), &(total + e.amount))?;
///         Ok(())
///     }
/// }
///
/// let registry = es_core::readside::Registry::from_inventory()?;
/// assert_eq!(registry.get(Deposits::NAME).unwrap().consistency_level(), es_core::readside::Consistency::Strong);
/// # Ok::<(), es_core::error::RegistryError>(())
/// ```
///
/// Every listed event needs its `Project` impl:
///
/// ```compile_fail
/// # use es_core::{event, projection};
/// # #[event]
/// # #[derive(Debug, Clone, PartialEq)]
/// # pub struct MoneyDeposited { pub amount: u64 }
/// #[projection(name = "deposits", events(MoneyDeposited))]
/// #[derive(Default)]
/// struct Deposits;
/// // error: `Deposits` is asked to project `MoneyDeposited` but does not implement `Project<MoneyDeposited>`
/// ```
#[proc_macro_attribute]
pub fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    projection::expand(args.into(), item.into()).into()
}
