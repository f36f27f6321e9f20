//! Model-based test of the transaction engine.
//!
//! Random sequences of operations over several concurrently open transactions and snapshots
//! are applied both to a real database and to a small reference model of snapshot isolation
//! (every version of every document kept in a plain list, conflicts decided by the textbook
//! rules), and the two must agree after every operation: each operation's result (documents,
//! booleans, duplicate-id errors, exactly which commits conflict and why), the timestamps
//! snapshots read at, the counters of `Database::stats`, what every open snapshot and
//! transaction snapshot reads, and what a GC pass reports and reclaims.
//!
//! Every write stores `{"_id": id, "v": n}` where `n` is the index of the operation in the
//! sequence, so every version ever written has a distinct value and a read of the wrong version
//! cannot go unnoticed.
// The real engine only: under loom the library builds just what the models need.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use common::TestDb;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;
use snapbase::{ConflictKind, Database, Document, Error, GcPolicy, Isolation, Snapshot};
use snapbase::{Result, Transaction};

/// Transaction slots.
const TXS: usize = 4;
/// Snapshot slots.
const SNAPS: usize = 3;
/// Document ids are `0..IDS`: few, so that transactions collide often.
const IDS: i64 = 5;
/// The collections; neither exists at the start.
const NAMES: [&str; 2] = ["a", "b"];

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// A collection, by index into `NAMES`. Orders like its name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct C(usize);

impl C {
    fn name(self) -> &'static str {
        NAMES[self.0]
    }
}

impl fmt::Debug for C {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iso {
    Si,
    Ser,
}

impl Iso {
    fn level(self) -> Isolation {
        match self {
            Iso::Si => Isolation::Snapshot,
            Iso::Ser => Isolation::Serializable,
        }
    }
}

/// One step. `usize` fields are slots: transaction slots for the transaction operations,
/// snapshot slots for the `Snap*` ones. An operation on an empty slot does nothing (in both the
/// engine and the model), and so does `Begin` on an occupied one; `SnapOpen` on an occupied slot
/// drops the old snapshot first. `Auto*` operations go through `Database::collection`, each an
/// auto-commit unit at the latest state.
#[derive(Debug, Clone, Copy)]
enum Op {
    Begin(usize, Iso),
    Get(usize, C, i64),
    Scan(usize, C),
    Insert(usize, C, i64),
    Replace(usize, C, i64),
    Upsert(usize, C, i64),
    Delete(usize, C, i64),
    Commit(usize),
    Rollback(usize),
    SnapOpen(usize),
    SnapGet(usize, C, i64),
    SnapScan(usize, C),
    SnapDrop(usize),
    Gc,
    AutoInsert(C, i64),
    AutoReplace(C, i64),
    AutoUpsert(C, i64),
    AutoDelete(C, i64),
    AutoGet(C, i64),
    AutoScan(C),
}

fn op() -> impl Strategy<Value = Op> {
    let tx = || 0..TXS;
    let snap = || 0..SNAPS;
    let c = || (0..NAMES.len()).prop_map(C);
    let id = || 0..IDS;
    let iso = prop_oneof![Just(Iso::Si), Just(Iso::Ser)];
    prop_oneof![
        9 => (tx(), iso).prop_map(|(t, i)| Op::Begin(t, i)),
        4 => (tx(), c(), id()).prop_map(|(t, c, i)| Op::Get(t, c, i)),
        4 => (tx(), c()).prop_map(|(t, c)| Op::Scan(t, c)),
        5 => (tx(), c(), id()).prop_map(|(t, c, i)| Op::Insert(t, c, i)),
        4 => (tx(), c(), id()).prop_map(|(t, c, i)| Op::Replace(t, c, i)),
        4 => (tx(), c(), id()).prop_map(|(t, c, i)| Op::Upsert(t, c, i)),
        4 => (tx(), c(), id()).prop_map(|(t, c, i)| Op::Delete(t, c, i)),
        7 => tx().prop_map(Op::Commit),
        1 => tx().prop_map(Op::Rollback),
        3 => snap().prop_map(Op::SnapOpen),
        3 => (snap(), c(), id()).prop_map(|(s, c, i)| Op::SnapGet(s, c, i)),
        2 => (snap(), c()).prop_map(|(s, c)| Op::SnapScan(s, c)),
        2 => snap().prop_map(Op::SnapDrop),
        3 => Just(Op::Gc),
        3 => (c(), id()).prop_map(|(c, i)| Op::AutoInsert(c, i)),
        2 => (c(), id()).prop_map(|(c, i)| Op::AutoReplace(c, i)),
        3 => (c(), id()).prop_map(|(c, i)| Op::AutoUpsert(c, i)),
        2 => (c(), id()).prop_map(|(c, i)| Op::AutoDelete(c, i)),
        1 => (c(), id()).prop_map(|(c, i)| Op::AutoGet(c, i)),
        1 => c().prop_map(Op::AutoScan),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..200)
}

// ---------------------------------------------------------------------------------------------
// Results, as compared between engine and model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    WriteWrite,
    ReadWrite,
    ScanChanged,
}

/// What one operation returned. Documents are `(id, v)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    /// The slot was empty (or, for `Begin`, occupied): nothing happened.
    Skip,
    /// A transaction began or a snapshot was opened at this timestamp.
    Ts(u64),
    Doc(Option<(i64, i64)>),
    Docs(Vec<(i64, i64)>),
    /// Insert or upsert succeeded, returning this id.
    Id(i64),
    /// Replace or delete: whether it found the document.
    Found(bool),
    Committed,
    /// Rolled back or dropped.
    Done,
    Duplicate(String, i64),
    Conflict(String, Option<i64>, Kind),
    Gc {
        watermark: u64,
        reclaimed: u64,
        retired: usize,
    },
    /// An error the model never produces.
    Unexpected(String),
}

fn pair(d: &Document) -> (i64, i64) {
    let fields = d.as_object().map_or(0, serde_json::Map::len);
    assert_eq!(fields, 2, "a document has exactly _id and v: {d}");
    (d["_id"].as_i64().unwrap(), d["v"].as_i64().unwrap())
}

fn err(e: Error) -> Out {
    match e {
        Error::DuplicateId { collection, id } => match id.as_i64() {
            Some(id) => Out::Duplicate(collection, id),
            None => Out::Unexpected(format!("duplicate of a string id {id}")),
        },
        Error::WriteConflict(w) => {
            let kind = match w.kind {
                ConflictKind::WriteWrite => Kind::WriteWrite,
                ConflictKind::ReadWrite => Kind::ReadWrite,
                ConflictKind::ScanChanged => Kind::ScanChanged,
                _ => return Out::Unexpected(format!("{w}")),
            };
            Out::Conflict(w.collection, w.id.and_then(|id| id.as_i64()), kind)
        }
        other => Out::Unexpected(other.to_string()),
    }
}

fn doc_out(r: Result<Option<Document>>) -> Out {
    r.map_or_else(err, |d| Out::Doc(d.as_ref().map(pair)))
}

fn docs_out(r: Result<Vec<Document>>) -> Out {
    r.map_or_else(err, |ds| Out::Docs(ds.iter().map(pair).collect()))
}

fn id_out(r: Result<snapbase::DocId>) -> Out {
    r.map_or_else(err, |id| match id.as_i64() {
        Some(id) => Out::Id(id),
        None => Out::Unexpected(format!("string id {id}")),
    })
}

fn found_out(r: Result<bool>) -> Out {
    r.map_or_else(err, Out::Found)
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// The full history of one document, oldest first, plus how many of its newest versions GC
/// has left in memory (only for checking the version counters; reads use the full history).
#[derive(Debug, Default)]
struct History {
    versions: Vec<(u64, Option<i64>)>,
    /// Indices into `versions` of those still linked in the engine's chain, oldest first.
    linked: Vec<usize>,
}

/// Committed state: every version ever installed.
#[derive(Debug, Default)]
struct Store {
    /// Latest commit timestamp.
    ts: u64,
    docs: BTreeMap<(C, i64), History>,
    /// Versions reclaimed by GC so far.
    reclaimed: u64,
}

impl Store {
    /// The value of `(c, id)` as of `ts`: the newest version committed at or before it.
    fn at(&self, c: C, id: i64, ts: u64) -> Option<i64> {
        let h = self.docs.get(&(c, id))?;
        h.versions.iter().rev().find(|(t, _)| *t <= ts)?.1
    }

    fn scan_at(&self, c: C, ts: u64) -> Vec<(i64, i64)> {
        (0..IDS)
            .filter_map(|id| self.at(c, id, ts).map(|v| (id, v)))
            .collect()
    }

    fn latest_live(&self, c: C, id: i64) -> bool {
        self.at(c, id, self.ts).is_some()
    }

    /// Commit timestamp of the newest version of `(c, id)`, 0 if there is none.
    fn newest_ts(&self, c: C, id: i64) -> u64 {
        self.docs
            .get(&(c, id))
            .and_then(|h| h.versions.last())
            .map_or(0, |v| v.0)
    }

    /// Commit timestamp of the newest version in collection `c`, 0 if there is none.
    fn last_write(&self, c: C) -> u64 {
        (0..IDS).map(|id| self.newest_ts(c, id)).max().unwrap_or(0)
    }

    /// Installs `body` for `(c, id)` at the current timestamp, unless it deletes a document
    /// that is not live (which installs nothing).
    fn install(&mut self, c: C, id: i64, body: Option<i64>) {
        if body.is_none() && !self.latest_live(c, id) {
            return;
        }
        let h = self.docs.entry((c, id)).or_default();
        h.linked.push(h.versions.len());
        h.versions.push((self.ts, body));
    }

    /// One GC pass at watermark `w`, with snapshots open at `open`: in each chain keep the
    /// newest version at or below `w`, and of the newer ones those visible to an open snapshot
    /// or superseded after the latest commit (a later snapshot may need them); a chain left
    /// holding only a tombstone at or below `w` goes entirely.
    fn gc(&mut self, w: u64, open: &[u64]) -> u64 {
        let visible = self.ts;
        let mut freed = 0;
        for h in self.docs.values_mut() {
            // The newest version at or below `w` stays, everything older goes.
            let at_w = h.linked.iter().rposition(|&i| h.versions[i].0 <= w);
            let mut kept = Vec::new();
            if let Some(at_w) = at_w {
                freed += at_w;
                kept.push(h.linked[at_w]);
            }
            let above_w = at_w.map_or(0, |a| a + 1);
            // Newest first: each version above `w` against the newest kept one above it.
            let mut above: Option<usize> = None;
            let mut newer_kept = Vec::new();
            for &i in h.linked[above_w..].iter().rev() {
                let ts = h.versions[i].0;
                let needed = above.is_none_or(|a| {
                    let superseded = h.versions[a].0;
                    superseded > visible || open.iter().any(|&s| ts <= s && s < superseded)
                });
                if needed {
                    above = Some(i);
                    newer_kept.push(i);
                } else {
                    freed += 1;
                }
            }
            kept.extend(newer_kept.into_iter().rev());
            if at_w.is_some() && kept.len() == 1 && h.versions[kept[0]].1.is_none() {
                freed += 1;
                kept.clear();
            }
            h.linked = kept;
        }
        let freed = u64::try_from(freed).unwrap();
        self.reclaimed += freed;
        freed
    }
}

/// A transaction of the model.
#[derive(Debug)]
struct MTx {
    read_ts: u64,
    iso: Iso,
    /// Buffered writes; `None` deletes. Ordered like the engine validates them.
    writes: BTreeMap<(C, i64), Option<i64>>,
    /// Serializable only: documents read from the snapshot, and collections scanned.
    reads: BTreeSet<(C, i64)>,
    scans: BTreeSet<C>,
}

impl MTx {
    /// The value of `(c, id)` as this transaction sees it; records a snapshot read.
    fn view(&mut self, store: &Store, c: C, id: i64) -> Option<i64> {
        if let Some(w) = self.writes.get(&(c, id)) {
            return *w;
        }
        if self.iso == Iso::Ser {
            self.reads.insert((c, id));
        }
        store.at(c, id, self.read_ts)
    }

    fn scan(&mut self, store: &Store, c: C) -> Vec<(i64, i64)> {
        if self.iso == Iso::Ser {
            self.scans.insert(c);
        }
        (0..IDS)
            .filter_map(|id| {
                let v = match self.writes.get(&(c, id)) {
                    Some(w) => *w,
                    None => store.at(c, id, self.read_ts),
                };
                v.map(|v| (id, v))
            })
            .collect()
    }

    /// First committer wins on the write set, then (serializable) reads, then scans, each in
    /// (collection, id) order; the first failing check is the reported conflict.
    fn validate(&self, store: &Store) -> Option<Out> {
        let conflict = |c: C, id: Option<i64>, kind| Some(Out::Conflict(c.name().into(), id, kind));
        for &(c, id) in self.writes.keys() {
            if store.newest_ts(c, id) > self.read_ts {
                return conflict(c, Some(id), Kind::WriteWrite);
            }
        }
        if self.iso == Iso::Ser {
            for &(c, id) in &self.reads {
                if store.newest_ts(c, id) > self.read_ts {
                    return conflict(c, Some(id), Kind::ReadWrite);
                }
            }
            for &c in &self.scans {
                if store.last_write(c) > self.read_ts {
                    return conflict(c, None, Kind::ScanChanged);
                }
            }
        }
        None
    }
}

/// The counters of `Database::stats` that the model predicts.
#[derive(Debug, PartialEq, Eq)]
struct Counters {
    collections: usize,
    names: Vec<String>,
    documents: u64,
    versions: u64,
    reclaimable: u64,
    reclaimed: u64,
    open_snapshots: usize,
    last_commit_ts: u64,
}

#[derive(Debug, Default)]
struct Model {
    store: Store,
    txs: [Option<MTx>; TXS],
    snaps: [Option<u64>; SNAPS],
}

impl Model {
    fn apply(&mut self, op: Op, value: i64) -> Out {
        let store = &mut self.store;
        match op {
            Op::Begin(t, iso) => {
                if self.txs[t].is_some() {
                    return Out::Skip;
                }
                self.txs[t] = Some(MTx {
                    read_ts: store.ts,
                    iso,
                    writes: BTreeMap::new(),
                    reads: BTreeSet::new(),
                    scans: BTreeSet::new(),
                });
                Out::Ts(store.ts)
            }
            Op::Commit(t) => {
                let Some(tx) = self.txs[t].take() else {
                    return Out::Skip;
                };
                if tx.writes.is_empty() {
                    return Out::Committed;
                }
                if let Some(conflict) = tx.validate(store) {
                    return conflict;
                }
                // The timestamp advances even if every write turns out to install nothing.
                store.ts += 1;
                for (&(c, id), &body) in &tx.writes {
                    store.install(c, id, body);
                }
                Out::Committed
            }
            Op::Rollback(t) => match self.txs[t].take() {
                Some(_) => Out::Done,
                None => Out::Skip,
            },
            Op::Get(t, ..)
            | Op::Scan(t, ..)
            | Op::Insert(t, ..)
            | Op::Replace(t, ..)
            | Op::Upsert(t, ..)
            | Op::Delete(t, ..) => match &mut self.txs[t] {
                Some(tx) => Self::tx_op(tx, store, op, value),
                None => Out::Skip,
            },
            Op::SnapOpen(s) => {
                self.snaps[s] = Some(store.ts);
                Out::Ts(store.ts)
            }
            Op::SnapDrop(s) => match self.snaps[s].take() {
                Some(_) => Out::Done,
                None => Out::Skip,
            },
            Op::SnapGet(s, c, id) => match self.snaps[s] {
                Some(ts) => Out::Doc(store.at(c, id, ts).map(|v| (id, v))),
                None => Out::Skip,
            },
            Op::SnapScan(s, c) => match self.snaps[s] {
                Some(ts) => Out::Docs(store.scan_at(c, ts)),
                None => Out::Skip,
            },
            Op::Gc => {
                let open: Vec<u64> = self
                    .txs
                    .iter()
                    .flatten()
                    .map(|tx| tx.read_ts)
                    .chain(self.snaps.iter().flatten().copied())
                    .collect();
                let w = open.iter().copied().fold(store.ts, u64::min);
                Out::Gc {
                    watermark: w,
                    reclaimed: store.gc(w, &open),
                    retired: 0,
                }
            }
            Op::AutoInsert(..)
            | Op::AutoReplace(..)
            | Op::AutoUpsert(..)
            | Op::AutoDelete(..)
            | Op::AutoGet(..)
            | Op::AutoScan(..) => Self::auto_op(store, op, value),
        }
    }

    fn tx_op(tx: &mut MTx, store: &Store, op: Op, value: i64) -> Out {
        match op {
            Op::Get(_, c, id) => Out::Doc(tx.view(store, c, id).map(|v| (id, v))),
            Op::Scan(_, c) => Out::Docs(tx.scan(store, c)),
            Op::Insert(_, c, id) => {
                if tx.view(store, c, id).is_some() {
                    return Out::Duplicate(c.name().into(), id);
                }
                tx.writes.insert((c, id), Some(value));
                Out::Id(id)
            }
            Op::Replace(_, c, id) | Op::Delete(_, c, id) => {
                if tx.view(store, c, id).is_none() {
                    return Out::Found(false);
                }
                let body = matches!(op, Op::Replace(..)).then_some(value);
                tx.writes.insert((c, id), body);
                Out::Found(true)
            }
            Op::Upsert(_, c, id) => {
                tx.writes.insert((c, id), Some(value));
                Out::Id(id)
            }
            _ => unreachable!("not a transaction operation: {op:?}"),
        }
    }

    /// Auto-commit operations check their precondition against the latest state, so they never
    /// conflict; each one that writes is one commit.
    fn auto_op(store: &mut Store, op: Op, value: i64) -> Out {
        match op {
            Op::AutoInsert(c, id) => {
                if store.latest_live(c, id) {
                    return Out::Duplicate(c.name().into(), id);
                }
                store.ts += 1;
                store.install(c, id, Some(value));
                Out::Id(id)
            }
            Op::AutoReplace(c, id) | Op::AutoDelete(c, id) => {
                if !store.latest_live(c, id) {
                    return Out::Found(false);
                }
                store.ts += 1;
                let body = matches!(op, Op::AutoReplace(..)).then_some(value);
                store.install(c, id, body);
                Out::Found(true)
            }
            Op::AutoUpsert(c, id) => {
                store.ts += 1;
                store.install(c, id, Some(value));
                Out::Id(id)
            }
            Op::AutoGet(c, id) => Out::Doc(store.at(c, id, store.ts).map(|v| (id, v))),
            Op::AutoScan(c) => Out::Docs(store.scan_at(c, store.ts)),
            _ => unreachable!("not an auto-commit operation: {op:?}"),
        }
    }

    fn counters(&self) -> Counters {
        let s = &self.store;
        let names: Vec<String> = (0..NAMES.len())
            .map(C)
            .filter(|&c| s.docs.range((c, i64::MIN)..=(c, i64::MAX)).next().is_some())
            .map(|c| c.name().to_owned())
            .collect();
        let documents = s
            .docs
            .values()
            .filter(|h| h.versions.last().is_some_and(|v| v.1.is_some()));
        let documents = u64::try_from(documents.count()).unwrap();
        let versions =
            u64::try_from(s.docs.values().map(|h| h.linked.len()).sum::<usize>()).unwrap();
        Counters {
            collections: names.len(),
            names,
            documents,
            versions,
            reclaimable: versions.saturating_sub(documents),
            reclaimed: s.reclaimed,
            open_snapshots: self.txs.iter().flatten().count() + self.snaps.iter().flatten().count(),
            last_commit_ts: s.ts,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The engine side
// ---------------------------------------------------------------------------------------------

struct Engine {
    db: TestDb,
    txs: [Option<Transaction>; TXS],
    snaps: [Option<Snapshot>; SNAPS],
}

impl Engine {
    fn new() -> Self {
        Self {
            db: common::build(Database::builder().gc(GcPolicy::Manual)),
            txs: Default::default(),
            snaps: Default::default(),
        }
    }

    fn apply(&mut self, op: Op, value: i64) -> Out {
        match op {
            Op::Begin(t, iso) => {
                if self.txs[t].is_some() {
                    return Out::Skip;
                }
                let tx = self.db.begin_with(iso.level());
                let ts = tx.snapshot().timestamp().get();
                self.txs[t] = Some(tx);
                Out::Ts(ts)
            }
            Op::Commit(t) => match self.txs[t].take() {
                Some(tx) => tx.commit().map_or_else(err, |()| Out::Committed),
                None => Out::Skip,
            },
            Op::Rollback(t) => match self.txs[t].take() {
                Some(tx) => {
                    tx.rollback();
                    Out::Done
                }
                None => Out::Skip,
            },
            Op::Get(t, ..)
            | Op::Scan(t, ..)
            | Op::Insert(t, ..)
            | Op::Replace(t, ..)
            | Op::Upsert(t, ..)
            | Op::Delete(t, ..) => match &mut self.txs[t] {
                Some(tx) => Self::tx_op(tx, op, value),
                None => Out::Skip,
            },
            Op::SnapOpen(s) => {
                self.snaps[s] = None;
                let snap = self.db.snapshot();
                let ts = snap.timestamp().get();
                self.snaps[s] = Some(snap);
                Out::Ts(ts)
            }
            Op::SnapDrop(s) => match self.snaps[s].take() {
                Some(_) => Out::Done,
                None => Out::Skip,
            },
            Op::SnapGet(s, c, id) => match &self.snaps[s] {
                Some(snap) => doc_out(snap.get(c.name(), id)),
                None => Out::Skip,
            },
            Op::SnapScan(s, c) => match &self.snaps[s] {
                Some(snap) => docs_out(snap.scan(c.name())),
                None => Out::Skip,
            },
            Op::Gc => {
                let r = self.db.gc();
                Out::Gc {
                    watermark: r.watermark.get(),
                    reclaimed: r.versions_reclaimed,
                    retired: r.collections_retired,
                }
            }
            Op::AutoInsert(c, id) => id_out(self.coll(c).insert(json!({"_id": id, "v": value}))),
            Op::AutoReplace(c, id) => {
                found_out(self.coll(c).replace(id, json!({"_id": id, "v": value})))
            }
            Op::AutoUpsert(c, id) => id_out(self.coll(c).upsert(json!({"_id": id, "v": value}))),
            Op::AutoDelete(c, id) => found_out(self.coll(c).delete(id)),
            Op::AutoGet(c, id) => doc_out(self.coll(c).get(id)),
            Op::AutoScan(c) => docs_out(self.coll(c).scan()),
        }
    }

    fn tx_op(tx: &mut Transaction, op: Op, value: i64) -> Out {
        match op {
            Op::Get(_, c, id) => doc_out(tx.get(c.name(), id)),
            Op::Scan(_, c) => docs_out(tx.scan(c.name())),
            Op::Insert(_, c, id) => id_out(tx.insert(c.name(), json!({"_id": id, "v": value}))),
            // Without `_id`: the engine fills it in from the id the operation names.
            Op::Replace(_, c, id) => found_out(tx.replace(c.name(), id, json!({"v": value}))),
            Op::Upsert(_, c, id) => id_out(tx.upsert(c.name(), json!({"_id": id, "v": value}))),
            Op::Delete(_, c, id) => found_out(tx.delete(c.name(), id)),
            _ => unreachable!("not a transaction operation: {op:?}"),
        }
    }

    fn coll(&self, c: C) -> snapbase::Collection {
        self.db.collection(c.name()).unwrap()
    }

    fn counters(&self) -> Counters {
        let s = self.db.stats();
        Counters {
            collections: s.collections,
            names: self.db.collection_names(),
            documents: s.documents,
            versions: s.versions,
            reclaimable: s.reclaimable_versions,
            reclaimed: s.reclaimed_versions,
            open_snapshots: s.open_snapshots,
            last_commit_ts: s.last_commit_ts.get(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

/// How often each interesting outcome happened (to check the generator reaches them).
#[derive(Debug, Default)]
struct Tally {
    commits: u32,
    write_write: u32,
    read_write: u32,
    scan_changed: u32,
    duplicates: u32,
    gc_reclaimed: u32,
}

impl Tally {
    fn count(&mut self, out: &Out) {
        match out {
            Out::Conflict(_, _, Kind::WriteWrite) => self.write_write += 1,
            Out::Conflict(_, _, Kind::ReadWrite) => self.read_write += 1,
            Out::Conflict(_, _, Kind::ScanChanged) => self.scan_changed += 1,
            Out::Duplicate(..) => self.duplicates += 1,
            Out::Gc { reclaimed, .. } if *reclaimed > 0 => self.gc_reclaimed += 1,
            Out::Committed => self.commits += 1,
            _ => {}
        }
    }
}

/// Everything every open snapshot and transaction snapshot reads, and the latest state, must
/// match the model: no commit leaks into an older snapshot and GC never takes a version someone
/// can still see. Reads through `Transaction::snapshot` record nothing in the read set.
fn check_views(engine: &Engine, model: &Model) -> Result<(), TestCaseError> {
    for c in (0..NAMES.len()).map(C) {
        let latest = engine
            .coll(c)
            .scan()
            .map(|ds| ds.iter().map(pair).collect::<Vec<_>>());
        let want_latest = model.store.scan_at(c, model.store.ts);
        prop_assert_eq!(
            engine.coll(c).len(),
            Ok(want_latest.len()),
            "latest len {:?}",
            c
        );
        prop_assert_eq!(latest, Ok(want_latest), "latest {:?}", c);
        for (s, (snap, ts)) in engine.snaps.iter().zip(&model.snaps).enumerate() {
            prop_assert_eq!(snap.is_some(), ts.is_some());
            if let (Some(snap), Some(ts)) = (snap, ts) {
                prop_assert_eq!(snap.timestamp().get(), *ts);
                let got = snap
                    .scan(c.name())
                    .map(|ds| ds.iter().map(pair).collect::<Vec<_>>());
                let want = model.store.scan_at(c, *ts);
                prop_assert_eq!(snap.len(c.name()), Ok(want.len()), "snapshot {} {:?}", s, c);
                prop_assert_eq!(got, Ok(want), "snapshot {} {:?}", s, c);
            }
        }
        for (t, (tx, mtx)) in engine.txs.iter().zip(&model.txs).enumerate() {
            prop_assert_eq!(tx.is_some(), mtx.is_some());
            if let (Some(tx), Some(mtx)) = (tx, mtx) {
                let snap = tx.snapshot();
                prop_assert_eq!(snap.timestamp().get(), mtx.read_ts);
                let got = snap
                    .scan(c.name())
                    .map(|ds| ds.iter().map(pair).collect::<Vec<_>>());
                let want = model.store.scan_at(c, mtx.read_ts);
                prop_assert_eq!(got, Ok(want), "snapshot of transaction {} {:?}", t, c);
            }
        }
    }
    Ok(())
}

fn run(ops: &[Op], tally: &mut Tally) -> Result<(), TestCaseError> {
    let mut engine = Engine::new();
    let mut model = Model::default();
    for (i, &op) in ops.iter().enumerate() {
        let value = i64::try_from(i).unwrap();
        let got = engine.apply(op, value);
        let want = model.apply(op, value);
        prop_assert_eq!(&got, &want, "op #{} {:?}", i, op);
        tally.count(&got);
        prop_assert_eq!(
            engine.counters(),
            model.counters(),
            "stats after op #{} {:?}",
            i,
            op
        );
        check_views(&engine, &model)
            .map_err(|e| TestCaseError::fail(format!("after op #{i} {op:?}: {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_snapshot_isolation_model(ops in ops()) {
        run(&ops, &mut Tally::default())?;
    }
}

/// The generator is only useful if it reaches the interesting outcomes: every kind of
/// conflict, duplicate ids, commits that apply, GC passes that reclaim something.
#[test]
fn generator_reaches_every_outcome() {
    let mut runner = TestRunner::deterministic();
    let mut tally = Tally::default();
    for _ in 0..64 {
        let ops = ops().new_tree(&mut runner).unwrap().current();
        run(&ops, &mut tally).unwrap();
    }
    assert!(tally.commits > 0, "{tally:?}");
    assert!(tally.write_write > 0, "{tally:?}");
    assert!(tally.read_write > 0, "{tally:?}");
    assert!(tally.scan_changed > 0, "{tally:?}");
    assert!(tally.duplicates > 0, "{tally:?}");
    assert!(tally.gc_reclaimed > 0, "{tally:?}");
}
