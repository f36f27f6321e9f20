//! Compaction (issue 3, "Compaction"): a crash at every step of the swap leaves the state
//! exactly as it was, old snapshots and transactions keep reading their values, readers and
//! writers go on during compaction, the automatic trigger fires and reports progress, the
//! statistics add up, and an online backup holds exactly one snapshot.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::damage::{check, dir, files, overwrite, read, runs};
use super::support::{self, snapshot_state, State};
use crate::db::Database;
use crate::error::Error;
use crate::id::DocId;
use crate::options::{AutoCompaction, CompactionProgress, Durability, GcPolicy};
use crate::storage::sim_fs::{CrashMode, Fault, OpKind, Persistence, SimFs};
use crate::storage::temp_dir::TempDir;
use crate::storage::vfs::Vfs;
use crate::sync::{Arc, AtomicBool, Mutex, Ordering};

fn open(fs: &Arc<SimFs>) -> Database {
    support::open(fs, Durability::Immediate).unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// Five checkpoints' worth of history, so five runs: overwrites, deletes, a deleted id inserted
/// again, a dropped collection, one dropped and re-created with some of the same ids, then a
/// WAL tail that no checkpoint covers.
fn history(db: &Database) {
    let pad = "p".repeat(40);
    let c = db.collection("c").unwrap();
    c.insert_many((0..30).map(|i| json!({"_id": i, "v": i, "pad": pad})))
        .unwrap();
    db.collection("d")
        .unwrap()
        .insert_many((0..5).map(|i| json!({"_id": i, "old": true})))
        .unwrap();
    db.collection("f")
        .unwrap()
        .insert_many([json!({"_id": 1, "gen": 1}), json!({"_id": 2, "gen": 1})])
        .unwrap();
    db.checkpoint().unwrap();

    for i in 0..15 {
        c.replace(i, json!({"v": i * 10})).unwrap();
    }
    for i in 20..25 {
        c.delete(i).unwrap();
    }
    db.collection("e")
        .unwrap()
        .insert(json!({"_id": "e1"}))
        .unwrap();
    db.drop_collection("f").unwrap();
    db.collection("f")
        .unwrap()
        .insert(json!({"_id": 1, "gen": 2}))
        .unwrap();
    db.checkpoint().unwrap();

    db.drop_collection("d").unwrap();
    c.delete(0).unwrap();
    c.insert(json!({"_id": 20, "v": "back"})).unwrap();
    db.checkpoint().unwrap();

    db.collection("d")
        .unwrap()
        .insert(json!({"_id": 100, "new": true}))
        .unwrap();
    db.drop_collection("e").unwrap();
    db.checkpoint().unwrap();

    c.replace(29, json!({"v": "last run"})).unwrap();
    db.checkpoint().unwrap();

    c.replace(1, json!({"v": "wal only"})).unwrap();
    c.delete(2).unwrap();
}

/// Spells out what `history` deleted and dropped, for a clearer failure than a state diff.
fn assert_nothing_resurrected(state: &State, case: &str) {
    let c = &state["c"];
    for id in [0, 2, 21, 22, 23, 24] {
        assert!(
            !c.contains_key(&DocId::from(id)),
            "{case}: c/{id} came back"
        );
    }
    let d: Vec<_> = state["d"].keys().collect();
    assert_eq!(
        d,
        [&DocId::from(100)],
        "{case}: d of the dropped incarnation came back"
    );
    assert!(
        !state.contains_key("e"),
        "{case}: the dropped collection e came back"
    );
    let f: Vec<_> = state["f"].keys().collect();
    assert_eq!(
        f,
        [&DocId::from(1)],
        "{case}: f/2 of the dropped incarnation came back"
    );
    assert_eq!(state["f"][&DocId::from(1)]["gen"], 2, "{case}");
}

/// Opens a crash image, checks the state, compacts again, verifies, reopens.
fn check_recovered(fs: &Arc<SimFs>, state: &State, case: &str) {
    let db = support::open(fs, Durability::Immediate)
        .unwrap_or_else(|e| panic!("{case}: open failed: {e}"));
    let got = support::state(&db);
    assert_nothing_resurrected(&got, case);
    assert_eq!(&got, state, "{case}");
    db.compact()
        .unwrap_or_else(|e| panic!("{case}: compact after recovery failed: {e}"));
    assert_eq!(
        &support::state(&db),
        state,
        "{case}: after compacting again"
    );
    db.close().unwrap();
    assert_eq!(runs(fs).len(), 1, "{case}: {:?}", files(fs).keys());
    let report = check(fs);
    assert!(
        report.is_ok() && report.notes.is_empty(),
        "{case}: {report}"
    );
    let db = support::open(fs, Durability::Immediate)
        .unwrap_or_else(|e| panic!("{case}: reopen failed: {e}"));
    assert_eq!(&support::state(&db), state, "{case}: after reopening");
    db.close().unwrap();
}

/// The crash images tried at each point: the deterministic one, and seeded ones of the two
/// random modes.
fn crash_images() -> Vec<(CrashMode, u64)> {
    let mut out = vec![(CrashMode::DropUnsynced, 0)];
    for seed in 1..=4 {
        out.push((CrashMode::Random, seed));
        out.push((CrashMode::InOrder, seed));
    }
    out
}

#[test]
fn a_crash_at_every_step_of_compaction_leaves_the_state_unchanged() {
    let base = Arc::new(SimFs::new());
    let db = open(&base);
    history(&db);
    let state = support::state(&db);
    assert_nothing_resurrected(&state, "before compaction");
    db.close().unwrap();
    assert_eq!(runs(&base).len(), 5);

    let total = {
        let fs = Arc::new(base.snapshot());
        let db = open(&fs);
        let before = fs.ops();
        let merged = db.compact().unwrap();
        assert_eq!(merged.runs_merged, 5);
        assert_eq!(support::state(&db), state, "compaction changed the state");
        fs.ops() - before
    };
    assert!(total >= 10, "a compaction of {total} operations");

    let mut cases = 0;
    for n in 0..=total {
        let fs = Arc::new(base.snapshot());
        let db = open(&fs);
        fs.fail_after(n);
        let result = db.compact();
        assert_eq!(
            result.is_ok(),
            n >= total,
            "compaction killed after {n} of {total} operations: {result:?}"
        );
        if result.is_err() {
            // Reads go on from memory, whatever the disk did.
            assert_eq!(
                support::state(&db),
                state,
                "killed after {n}: reads changed"
            );
        }
        for (mode, seed) in crash_images() {
            let case = format!(
                "compaction killed after {n} of {total} operations, crash {mode:?} seed {seed}"
            );
            let image = Arc::new(fs.crash(seed, mode));
            check_recovered(&image, &state, &case);
            cases += 1;
        }
        drop(db);
    }
    assert!(cases >= 90, "{cases} crash cases");
}

#[test]
fn a_snapshot_and_a_transaction_from_before_compaction_still_read_their_values() {
    let fs = Arc::new(SimFs::new());
    let db = open(&fs);
    history(&db);
    let snap = db.snapshot();
    let old = snapshot_state(&snap);
    let mut tx = db.begin();
    let old_c1 = tx.get("c", 1).unwrap();
    assert!(old_c1.is_some());

    let c = db.collection("c").unwrap();
    c.replace(1, json!({"v": "changed"})).unwrap();
    c.delete(3).unwrap();
    db.drop_collection("d").unwrap();
    db.collection("late")
        .unwrap()
        .insert(json!({"_id": 1}))
        .unwrap();
    for round in 0..2 {
        db.checkpoint().unwrap();
        let stats = db.compact().unwrap();
        // Round 1 checkpoints nothing new, so its compaction has nothing to merge.
        assert_eq!(
            stats.runs_merged >= 1,
            round == 0,
            "round {round}: {stats:?}"
        );
        db.gc();
        assert_eq!(
            snapshot_state(&snap),
            old,
            "round {round}: the snapshot changed"
        );
        assert_eq!(
            snap.get("c", 3).unwrap().map(|d| d.as_value().clone()),
            old["c"].get(&DocId::from(3)).cloned(),
            "round {round}"
        );
        assert_eq!(
            tx.get("c", 1).unwrap(),
            old_c1,
            "round {round}: the transaction's read"
        );
        assert_eq!(
            tx.scan("d").unwrap().len(),
            old["d"].len(),
            "round {round}: the dropped collection, read by the transaction"
        );
        assert!(snap.get("late", 1).unwrap().is_none(), "round {round}");
    }
    // Its writes do not conflict with anything committed since: it commits.
    tx.insert("from_tx", json!({"_id": 1, "ok": true})).unwrap();
    tx.commit().unwrap();
    let now = support::state(&db);
    assert!(now.contains_key("from_tx"));
    drop(snap);
    db.gc();
    db.close().unwrap();
    let db = open(&fs);
    assert_eq!(support::state(&db), now);
    db.close().unwrap();
}

/// A writer's commit: upsert or delete one of its documents and keep `count` equal to the number
/// of the others, in one transaction, so any snapshot can check it.
fn writer(db: &Database, w: usize, commits: u64) -> BTreeMap<DocId, Value> {
    let name = format!("w{w}");
    let mut model: BTreeMap<DocId, Value> = BTreeMap::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ u64::try_from(w).unwrap();
    for i in 0..commits {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let id = i64::try_from((rng >> 33) % 24).unwrap();
        let delete = (rng >> 20).is_multiple_of(4);
        if delete {
            model.remove(&DocId::from(id));
        } else {
            model.insert(DocId::from(id), json!({"_id": id, "i": i, "w": w}));
        }
        let count = model.len();
        db.transaction(|tx| {
            if delete {
                tx.delete(&name, id)?;
            } else {
                tx.upsert(&name, json!({"_id": id, "i": i, "w": w}))?;
            }
            tx.upsert(&name, json!({"_id": "count", "n": count}))?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("writer {w}, commit {i}: {e}"));
    }
    let count = model.len();
    model.insert(DocId::from("count"), json!({"_id": "count", "n": count}));
    model
}

#[test]
fn readers_and_writers_keep_working_while_compaction_runs() {
    const WRITERS: usize = 2;
    const COMMITS: u64 = 150;
    let fs = Arc::new(SimFs::new());
    let db = open(&fs);
    history(&db);
    let fixed = support::state(&db);
    let writers_done = AtomicBool::new(false);
    let (models, compactions) = thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let db = &db;
                s.spawn(move || writer(db, w, COMMITS))
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (db, done) = (&db, &writers_done);
                s.spawn(move || {
                    let mut reads = 0_u64;
                    while !done.load(Ordering::Acquire) || reads == 0 {
                        let snap = db.snapshot();
                        for w in 0..WRITERS {
                            let docs = snap.scan(&format!("w{w}")).unwrap();
                            if let Some(count) =
                                docs.iter().find(|d| d.id() == DocId::from("count"))
                            {
                                assert_eq!(
                                    count["n"].as_u64().unwrap(),
                                    u64::try_from(docs.len() - 1).unwrap(),
                                    "reader {r}: writer {w}'s count at {}",
                                    snap.timestamp()
                                );
                            }
                        }
                        assert_eq!(snap.get("c", 29).unwrap().unwrap()["v"], "last run");
                        let _ = db.stats();
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        // Checkpoints from another thread, serialized with the compactions.
        let checkpointer = {
            let (db, done) = (&db, &writers_done);
            s.spawn(move || {
                let mut checkpoints = 0_u64;
                // At least one, even when this thread first runs after the writers finish.
                while !done.load(Ordering::Acquire) || checkpoints == 0 {
                    db.checkpoint().unwrap();
                    checkpoints += 1;
                    thread::yield_now();
                }
                checkpoints
            })
        };
        let mut compactions = 0;
        loop {
            let finished = writers.iter().all(thread::ScopedJoinHandle::is_finished);
            db.compact().unwrap();
            compactions += 1;
            if finished && compactions >= 5 {
                break;
            }
        }
        let models: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        writers_done.store(true, Ordering::Release);
        assert!(checkpointer.join().unwrap() > 0);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        (models, compactions)
    });
    assert!(compactions >= 5);

    let mut expected = fixed;
    for (w, model) in models.into_iter().enumerate() {
        expected.insert(format!("w{w}"), model);
    }
    assert_eq!(support::state(&db), expected);
    db.close().unwrap();
    assert!(check(&fs).is_ok());
    let db = open(&fs);
    assert_eq!(support::state(&db), expected, "after reopening");
    db.close().unwrap();
}

/// Splits progress reports into compactions (each ends with `bytes_read == bytes_total`) and
/// checks each: totals above zero, reads never past the total and never going back.
fn check_progress(events: &[CompactionProgress]) -> usize {
    let mut finished = 0;
    let mut last_read = 0;
    for (i, p) in events.iter().enumerate() {
        assert!(p.bytes_total > 0, "report {i}: {p:?}");
        assert!(p.bytes_read <= p.bytes_total, "report {i}: {p:?}");
        assert!(
            p.bytes_read >= last_read,
            "report {i} goes back: {events:?}"
        );
        last_read = p.bytes_read;
        if p.bytes_read == p.bytes_total {
            finished += 1;
            last_read = 0;
        }
    }
    assert_eq!(
        last_read, 0,
        "the last compaction never reported its end: {events:?}"
    );
    finished
}

#[test]
fn automatic_compaction_fires_past_the_threshold_and_reports_progress() {
    let fs = Arc::new(SimFs::new());
    let events = Arc::new(Mutex::new(Vec::<CompactionProgress>::new()));
    let sink = Arc::clone(&events);
    let db = Database::builder()
        .durability(Durability::Immediate)
        .gc(GcPolicy::Manual)
        .auto_compaction(AutoCompaction::Threshold {
            min_bytes: 4096,
            min_ratio: 0.3,
        })
        .checkpoint_wal_bytes(u64::MAX)
        .checkpoint_interval(Duration::from_secs(1 << 30))
        .on_compaction_progress(move |p| sink.lock().push(p))
        .open_on(Arc::clone(&fs) as Arc<dyn Vfs>, dir())
        .unwrap();
    let pad = "x".repeat(200);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut round = 0;
    while db.stats().compactions == 0 {
        assert!(
            Instant::now() < deadline,
            "no automatic compaction after {round} rounds: {:?}",
            db.stats()
        );
        db.transaction(|tx| {
            for i in 0..40 {
                tx.upsert("c", json!({"_id": i, "round": round, "pad": pad}))?;
            }
            Ok(())
        })
        .unwrap();
        db.checkpoint().unwrap();
        round += 1;
        thread::sleep(Duration::from_millis(20));
    }
    // Writes stopped: the worker compacts until what is left is under the threshold, which
    // here is only the runs' headers, footers and collection entries.
    let bound = 1024 + 64;
    let settled = loop {
        let now = db.stats();
        if now.reclaimable_bytes < bound && now.compaction_progress.is_none() {
            break now;
        }
        assert!(Instant::now() < deadline, "still reclaimable: {now:?}");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(
        settled.reclaimable_bytes * 4 < settled.data_bytes,
        "{settled:?}"
    );
    assert_eq!(
        settled.reclaimable_bytes,
        settled.data_bytes - settled.live_bytes,
        "{settled:?}"
    );
    assert!(settled.bytes_reclaimed > 0, "{settled:?}");

    let state = support::state(&db);
    assert_eq!(state["c"].len(), 40);
    assert!(state["c"].values().all(|d| d["round"] == round - 1));
    db.close().unwrap();
    let events = events.lock().clone();
    let finished = check_progress(&events);
    assert!(
        u64::try_from(finished).unwrap() >= settled.compactions,
        "{finished} finished reports for {} compactions: {events:?}",
        settled.compactions
    );
    assert!(check(&fs).is_ok());
    let db = open(&fs);
    assert_eq!(support::state(&db), state);
    db.close().unwrap();
}

/// Sum of the sizes of the data runs on disk.
fn run_bytes(fs: &SimFs) -> u64 {
    runs(fs)
        .iter()
        .map(|r| u64::try_from(read(fs, r).len()).unwrap())
        .sum()
}

/// Four rounds, each overwriting 40 documents of 64 KiB, adding a small one and a dropped
/// collection, then a checkpoint: four runs of about 2.6 MiB each, most of it superseded.
fn four_rounds_of_big_documents(db: &Database) {
    let big = "b".repeat(64 << 10);
    for round in 0..4 {
        for chunk in 0..4 {
            db.transaction(|tx| {
                for i in chunk * 10..chunk * 10 + 10 {
                    tx.upsert("big", json!({"_id": i, "round": round, "body": big}))?;
                }
                Ok(())
            })
            .unwrap();
        }
        db.collection("small")
            .unwrap()
            .upsert(json!({"_id": round, "round": round}))
            .unwrap();
        db.collection(&format!("dropped{round}"))
            .unwrap()
            .insert(json!({"_id": 1, "body": big}))
            .unwrap();
        db.drop_collection(&format!("dropped{round}")).unwrap();
        db.checkpoint().unwrap();
    }
}

/// Runs of about 10 MiB in all, so a compaction reports progress several times (every 4 MiB
/// read) before its end, and the statistics before and after one compaction.
#[test]
fn compaction_statistics_and_progress_add_up() {
    let fs = Arc::new(SimFs::new());
    let events = Arc::new(Mutex::new(Vec::<CompactionProgress>::new()));
    let sink = Arc::clone(&events);
    let open_tracked = |fs: &Arc<SimFs>| {
        let sink = Arc::clone(&sink);
        Database::builder()
            .durability(Durability::Immediate)
            .gc(GcPolicy::Manual)
            .auto_compaction(AutoCompaction::Off)
            .checkpoint_wal_bytes(u64::MAX)
            .checkpoint_interval(Duration::from_secs(1 << 30))
            .on_compaction_progress(move |p| sink.lock().push(p))
            .open_on(Arc::clone(fs) as Arc<dyn Vfs>, dir())
            .unwrap()
    };
    let db = open_tracked(&fs);
    four_rounds_of_big_documents(&db);
    let state = support::state(&db);

    // The accounting a reopen computes from the files equals the running one.
    let running = db.stats();
    db.close().unwrap();
    let db = open_tracked(&fs);
    let before = db.stats();
    assert_eq!(
        (before.data_bytes, before.live_bytes),
        (running.data_bytes, running.live_bytes),
        "reopen disagrees: {running:?} vs {before:?}"
    );
    assert_eq!(before.data_bytes, run_bytes(&fs), "{before:?}");
    assert!(
        before.reclaimable_bytes > before.data_bytes / 2,
        "{before:?}"
    );

    let cs = db.compact().unwrap();
    let after = db.stats();
    assert_eq!(cs.runs_merged, 4, "{cs:?}");
    assert_eq!(cs.bytes_before, before.data_bytes, "{cs:?}");
    assert_eq!(cs.bytes_after, after.data_bytes, "{cs:?} {after:?}");
    assert_eq!(after.data_bytes, run_bytes(&fs), "{after:?}");
    assert_eq!(cs.documents, 44, "40 big and 4 small documents: {cs:?}");
    assert_eq!(after.compactions, before.compactions + 1);
    assert_eq!(
        after.bytes_reclaimed - before.bytes_reclaimed,
        cs.bytes_before - cs.bytes_after,
        "{before:?} {after:?} {cs:?}"
    );
    assert_eq!(
        after.live_bytes, before.live_bytes,
        "compaction changed the live bytes"
    );
    let overhead = after.data_bytes - after.live_bytes;
    assert!(
        overhead < 1024 + 64 * 2,
        "{overhead} bytes beyond the live ones after compaction: {after:?}"
    );
    assert_eq!(after.reclaimable_bytes, overhead);
    assert!(after.compaction_progress.is_none(), "{after:?}");
    assert_eq!(support::state(&db), state);

    let events = events.lock().clone();
    assert!(
        events.len() >= 3,
        "progress every 4 MiB of ~10 MiB: {events:?}"
    );
    assert_eq!(check_progress(&events), 1, "{events:?}");
    assert!(
        events.iter().all(|p| p.bytes_total == cs.bytes_before),
        "{events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last.bytes_written, cs.bytes_after, "{events:?}");

    // Compacting a compacted database reclaims nothing and changes nothing.
    let again = db.compact().unwrap();
    assert_eq!(again.bytes_after, again.bytes_before, "{again:?}");
    assert_eq!(db.stats().bytes_reclaimed, after.bytes_reclaimed);
    db.close().unwrap();

    let db = open_tracked(&fs);
    let reopened = db.stats();
    assert_eq!(
        (reopened.data_bytes, reopened.live_bytes),
        (after.data_bytes, after.live_bytes),
        "{reopened:?}"
    );
    assert_eq!(support::state(&db), state);
    db.close().unwrap();
}

/// Compacting again right after a compaction would rewrite the same run, so it touches no
/// file; once a checkpoint adds a run, the next compaction merges again.
#[test]
fn a_compaction_right_after_a_compaction_does_no_io() {
    let fs = Arc::new(SimFs::new());
    let db = open(&fs);
    four_rounds_of_big_documents(&db);
    let first = db.compact().unwrap();
    assert_eq!(first.runs_merged, 4, "{first:?}");
    let after = db.stats();

    let (ops, files_then) = (fs.ops(), runs(&fs));
    let again = db.compact().unwrap();
    assert_eq!(again.runs_merged, 0, "{again:?}");
    assert_eq!(again.documents, 0, "{again:?}");
    assert_eq!(
        (again.bytes_before, again.bytes_after),
        (after.data_bytes, after.data_bytes),
        "{again:?}"
    );
    assert_eq!(fs.ops(), ops, "a compaction with nothing to merge did I/O");
    assert_eq!(runs(&fs), files_then);
    let now = db.stats();
    assert_eq!(
        (now.compactions, now.bytes_reclaimed),
        (after.compactions, after.bytes_reclaimed)
    );

    db.collection("small")
        .unwrap()
        .upsert(json!({"_id": 0, "round": "again"}))
        .unwrap();
    db.checkpoint().unwrap();
    let merged = db.compact().unwrap();
    assert_eq!(merged.runs_merged, 2, "{merged:?}");
    assert_eq!(merged.documents, 44, "{merged:?}");
    assert_eq!(db.stats().data_bytes, run_bytes(&fs));
    let state = support::state(&db);
    db.close().unwrap();
    let db = open(&fs);
    assert_eq!(support::state(&db), state);
    db.close().unwrap();
}

/// A compaction that finds a damaged run reports it, and its unfinished output must not get in
/// the way of later checkpoints (the database is not poisoned by a read error).
#[test]
fn a_compaction_that_finds_a_damaged_run_does_not_break_later_checkpoints() {
    let fs = Arc::new(SimFs::new());
    let db = open(&fs);
    history(&db);
    let victim = runs(&fs)[1].clone();
    let mut bytes = read(&fs, &victim);
    let at = bytes.len() - 3;
    bytes[at] ^= 0xFF;
    overwrite(&fs, &victim, &bytes);
    match db.compact() {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, victim),
        other => panic!(
            "expected Corrupt naming {}, got {other:?}",
            victim.display()
        ),
    }
    db.collection("c")
        .unwrap()
        .insert(json!({"_id": "after"}))
        .unwrap();
    let checkpoint = db.checkpoint();
    assert!(
        checkpoint.is_ok(),
        "a checkpoint after the failed compaction: {checkpoint:?}; files {:?}",
        files(&fs).keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_backup_holds_exactly_the_state_at_its_timestamp_while_commits_go_on() {
    let fs = Arc::new(SimFs::new());
    let db = open(&fs);
    history(&db);
    db.compact().unwrap();
    db.collection("c")
        .unwrap()
        .replace(5, json!({"v": "after compaction"}))
        .unwrap();
    let tmp = TempDir::new("compaction-backup");

    // Quiet: the backup is the current state.
    let quiet = tmp.0.join("quiet");
    let state = support::state(&db);
    let ts = db.stats().last_commit_ts;
    let written = db.backup(&quiet).unwrap();
    assert_eq!(written.timestamp, ts);
    assert_eq!(written.collections, state.len());
    assert_eq!(
        written.documents,
        u64::try_from(state.values().map(BTreeMap::len).sum::<usize>()).unwrap()
    );
    let report = Database::verify(&quiet).unwrap();
    assert!(report.is_ok() && report.notes.is_empty(), "{report}");
    let copy = Database::open(&quiet).unwrap();
    assert_eq!(support::state(&copy), state);
    copy.collection("c")
        .unwrap()
        .insert(json!({"_id": "in the copy"}))
        .unwrap();
    copy.close().unwrap();
    let copy = Database::open(&quiet).unwrap();
    assert!(copy
        .collection("c")
        .unwrap()
        .get("in the copy")
        .unwrap()
        .is_some());
    copy.close().unwrap();
    assert!(
        db.backup(&quiet).is_err(),
        "a backup into a non-empty directory"
    );

    // Busy: one writer commits throughout; it records the state at each of its commits.
    let busy = tmp.0.join("busy");
    let start = {
        let snap = db.snapshot();
        (snap.timestamp(), snapshot_state(&snap))
    };
    let stop = AtomicBool::new(false);
    let (backup, mut states) = thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut states = vec![start.clone()];
            let c = db.collection("c").unwrap();
            let mut i = 0;
            while !stop.load(Ordering::Acquire) || i < 50 {
                if i % 3 == 0 {
                    c.delete(i % 30).unwrap();
                } else {
                    c.upsert(json!({"_id": i % 30, "i": i})).unwrap();
                }
                let snap = db.snapshot();
                states.push((snap.timestamp(), snapshot_state(&snap)));
                i += 1;
            }
            states
        });
        while db.stats().last_commit_ts.0 < start.0 .0 + 10 {
            thread::yield_now();
        }
        let backup = db.backup(&busy).unwrap();
        stop.store(true, Ordering::Release);
        (backup, writer.join().unwrap())
    });
    states.sort_by_key(|(ts, _)| *ts);
    let last = states.last().unwrap().0;
    assert!(
        backup.timestamp > start.0 && backup.timestamp <= last,
        "{backup:?}"
    );
    let (_, expected) = states
        .iter()
        .find(|(ts, _)| *ts == backup.timestamp)
        .unwrap_or_else(|| panic!("no commit at the backup's timestamp {}", backup.timestamp));
    let copy = Database::open(&busy).unwrap();
    assert_eq!(&support::state(&copy), expected, "at {}", backup.timestamp);
    copy.close().unwrap();
    assert!(Database::verify(&busy).unwrap().is_ok());
    db.close().unwrap();
}

/// The background maintenance keeps going after an automatic compaction that failed without
/// poisoning the database (here: the runs could not be opened for a moment). Otherwise the
/// database silently stops checkpointing and compacting, and its WAL grows without bound.
#[test]
fn a_failed_automatic_compaction_does_not_stop_automatic_maintenance() {
    let fs = Arc::new(SimFs::new());
    let db = Database::builder()
        .durability(Durability::Immediate)
        .gc(GcPolicy::Manual)
        .auto_compaction(AutoCompaction::Threshold {
            min_bytes: 1,
            min_ratio: 0.0,
        })
        .checkpoint_wal_bytes(u64::MAX)
        .checkpoint_interval(Duration::from_secs(1 << 30))
        .open_on(Arc::clone(&fs) as Arc<dyn Vfs>, dir())
        .unwrap();
    let c = db.collection("c").unwrap();
    c.insert(json!({"_id": 1})).unwrap();
    // A run whose header is always reclaimable: the worker compacts at every tick.
    db.checkpoint().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().compactions == 0 {
        assert!(Instant::now() < deadline, "no automatic compaction");
        thread::sleep(Duration::from_millis(5));
    }
    // For a while every open fails: the next automatic compaction cannot open the runs.
    // Nothing is written, so nothing is poisoned.
    fs.inject(Fault {
        persistence: Persistence::Always,
        ..Fault::new(OpKind::Open, 0)
    });
    thread::sleep(Duration::from_millis(300));
    fs.clear_faults();
    let after_fault = db.stats().compactions;
    c.insert(json!({"_id": 2})).unwrap();
    db.checkpoint().unwrap();
    // Automatic compaction resumes; polled with a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.stats().compactions <= after_fault {
        assert!(
            Instant::now() < deadline,
            "no automatic compaction in 10 s after the transient failure: {:?}",
            db.stats()
        );
        thread::sleep(Duration::from_millis(10));
    }
    db.close().unwrap();
}
