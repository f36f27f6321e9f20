//! Transactions: the oracle (the commit serialization point), buffered writes with
//! read-your-own-writes, the commit path with first-committer-wins validation, and the
//! `Transaction` handle.

pub(crate) mod commit;
pub(crate) mod log;
pub(crate) mod oracle;
pub(crate) mod transaction;
pub(crate) mod write_set;

/// Isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Isolation {
    /// Snapshot isolation: reads see the snapshot taken at `begin` plus the transaction's own
    /// writes; the commit fails if another transaction committed a write to a document this one
    /// wrote after its snapshot (first committer wins). Allows write skew (G2-item, G2).
    #[default]
    Snapshot,
    /// Snapshot isolation plus read validation: the commit also fails if a document this
    /// transaction read, or a collection it scanned, was changed by a transaction that committed
    /// after its snapshot. Prevents write skew and predicate anomalies.
    Serializable,
}
