//! A web inspector any es application can mount.

mod view;

pub use view::EventView;
