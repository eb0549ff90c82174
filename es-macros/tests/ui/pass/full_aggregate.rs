//! Everything a user writes for one aggregate compiles without a warning
//! under strict lints, and events need no serde dependency of their own.
#![deny(warnings, missing_docs, unreachable_pub, unused)]

/// The domain, public so that `missing_docs` applies to what the macros
/// generate in it.
pub mod domain {
    use es_core::{command, event, Aggregate, Apply, Events, Handle};
    use es_core::error::ValidationError;

    /// Why a command was refused.
    #[derive(Debug)]
    pub struct CartError;

    impl std::fmt::Display for CartError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused")
        }
    }

    impl std::error::Error for CartError {}

    /// An item was added.
    #[event(name = "cart.ItemAdded", version = 2, upcast = upcast_item_added)]
    #[derive(Debug, Clone, PartialEq)]
    pub struct ItemAdded {
        /// The item.
        pub sku: String,
        /// How many.
        pub quantity: u32,
    }

    fn upcast_item_added(
        _from_version: u32,
        payload: es_core::__private::serde_json::Value,
    ) -> Result<es_core::__private::serde_json::Value, es_core::error::UpcastError> {
        Ok(payload)
    }

    /// The cart changed state: an event that is an enum.
    #[event]
    #[derive(Debug, Clone, PartialEq)]
    pub enum CartStatus {
        /// Checked out.
        CheckedOut,
        /// Abandoned, with a reason.
        Abandoned {
            /// Why.
            reason: String,
        },
    }

    /// Adds an item.
    #[command(aggregate = Cart, validate = check_add)]
    #[derive(Debug, Clone)]
    pub struct AddItem {
        /// The cart.
        #[id]
        pub cart_id: u64,
        /// The item.
        #[validate(non_empty)]
        pub sku: String,
        /// How many.
        #[validate(min = 1, max = 99)]
        pub quantity: u32,
        /// Discount in percent.
        #[validate(min = 0.0, max = 100.0)]
        pub discount: f64,
        /// Shift of the delivery date, in days.
        #[validate(min = -7, max = 7)]
        pub delivery_shift: i64,
    }

    fn check_add(command: &AddItem) -> Result<(), ValidationError> {
        let mut error = ValidationError::new("AddItem");
        if command.sku == "forbidden" {
            error.field("sku", "is not sold");
        }
        error.into_result()
    }

    /// Checks out; no rules at all.
    #[command(aggregate = Cart)]
    #[derive(Debug, Clone)]
    pub struct CheckOut {
        /// The cart.
        #[id]
        pub cart_id: u64,
    }

    /// A shopping cart.
    #[derive(Aggregate, Debug, Default, serde::Serialize, serde::Deserialize)]
    #[aggregate(
        name = "shop.cart_v2",
        error = CartError,
        events(ItemAdded, CartStatus),
        commands(AddItem, CheckOut),
        snapshot_version = 2
    )]
    pub struct Cart {
        items: u32,
        checked_out: bool,
    }

    impl Handle<AddItem> for Cart {
        fn handle(&self, command: AddItem) -> Result<Events<Self>, Self::Error> {
            Ok(Events::one(ItemAdded { sku: command.sku, quantity: command.quantity }))
        }
    }

    impl Handle<CheckOut> for Cart {
        fn handle(&self, _command: CheckOut) -> Result<Events<Self>, CartError> {
            if self.checked_out {
                return Err(CartError);
            }
            Ok(Events::one(CartStatus::CheckedOut))
        }
    }

    impl Apply<ItemAdded> for Cart {
        fn apply(&mut self, event: &ItemAdded) {
            self.items += event.quantity;
        }
    }

    impl Apply<CartStatus> for Cart {
        fn apply(&mut self, event: &CartStatus) {
            self.checked_out = matches!(event, CartStatus::CheckedOut);
        }
    }
}

fn main() {
    use es_core::{Aggregate, Command, Event, EventSet};

    use domain::{AddItem, Cart, CartCommand, CartEvent, CartStatus, ItemAdded};

    assert_eq!((ItemAdded::TYPE, ItemAdded::VERSION, CartStatus::TYPE), ("cart.ItemAdded", 2, "CartStatus"));
    assert_eq!((Cart::NAME, Cart::SNAPSHOT_VERSION), ("shop.cart_v2", 2));
    assert_eq!(CartEvent::event_types(), ["cart.ItemAdded", "CartStatus"]);
    let add = AddItem { cart_id: 3, sku: "tea".into(), quantity: 2, discount: 10.0, delivery_shift: -7 };
    assert_eq!(add.aggregate_id(), "3");
    assert!(add.validate().is_ok());
    let late = AddItem { delivery_shift: -8, ..add.clone() };
    assert_eq!(late.validate().unwrap_err().to_string(), "command `AddItem` is invalid: `delivery_shift` must be at least -7");
    assert!(matches!(add.into_aggregate_command(), CartCommand::AddItem(_)));
}
