//! The lease store of a read side that was given none: it assumes it is the
//! only node, so every lease is granted and never lost.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::LeaseError;
use crate::store::{Lease, LeaseStore};

/// Grants every lease at once, with token 1: right for one node, whose
/// read side already runs each subscription in one task at a time. Several
/// nodes need a shared [`LeaseStore`] (such as `es_postgres::PgLeaseStore`).
///
/// It keeps no token, so it does not hand out a new one per acquisition as
/// the [`LeaseStore`] contract asks: nothing could check it. A projection
/// store checks a fence only against leases kept in its own database, and
/// these are kept nowhere (tokens counted here would start again at 1 on
/// every restart anyway). Within one process that loses nothing: a
/// subscription's next task starts only once the one before has exited.
/// Across a restart it cannot help: a commit a killed process left in
/// flight in the database is not fenced off from the restarted one. A
/// single node that needs that takes a lease store in its projection
/// store's database (such as `es_postgres::PgLeaseStore`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LocalLeases;

#[async_trait]
impl LeaseStore for LocalLeases {
    async fn try_acquire(
        &self,
        name: &str,
        owner: &str,
        _ttl: Duration,
    ) -> Result<Option<Lease>, LeaseError> {
        Ok(Some(Lease { name: name.to_owned(), owner: owner.to_owned(), token: 1 }))
    }

    async fn renew(&self, _lease: &Lease, _ttl: Duration) -> Result<bool, LeaseError> {
        Ok(true)
    }

    async fn release(&self, _lease: &Lease) -> Result<(), LeaseError> {
        Ok(())
    }
}
