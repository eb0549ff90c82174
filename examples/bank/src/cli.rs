//! The subcommands of the `bank` binary.

pub(crate) mod demo;
pub(crate) mod inspect;
pub(crate) mod serve;
