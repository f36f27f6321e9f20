//! The README's quick start: open (or create) the database in `./snapbase-data`, load accounts
//! on the first run, run concurrent durable transfers while a snapshot keeps a consistent view,
//! then reclaim old versions, checkpoint and close. Run it twice: the second run finds every
//! committed transfer again. `cargo run --release --example quickstart [DIR]`
#![allow(clippy::unwrap_used)]

use std::thread;
use std::time::Instant;

use serde_json::json;
use snapbase::{Database, Result};

const ACCOUNTS: i64 = 10_000;

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "snapbase-data".to_owned());
    let start = Instant::now();
    let db = Database::open(&dir)?;
    let accounts = db.collection("accounts")?;
    let found = accounts.len()?;
    println!("opened {dir} in {:?}: {found} accounts", start.elapsed());
    if found == 0 {
        let start = Instant::now();
        accounts.insert_many(
            (0..ACCOUNTS).map(|i| json!({"_id": i, "owner": format!("user{i}"), "balance": 100})),
        )?;
        println!("loaded {ACCOUNTS} accounts in {:?}", start.elapsed());
    }

    let before = db.snapshot();
    let start = Instant::now();
    let workers: Vec<_> = (0..4i64)
        .map(|w| {
            let db = db.clone();
            thread::spawn(move || -> Result<u64> {
                let mut committed = 0;
                for i in 0..2_500i64 {
                    let (from, to) = (
                        (w * 7919 + i * 31) % ACCOUNTS,
                        (w * 104_729 + i * 17) % ACCOUNTS,
                    );
                    if from == to {
                        continue;
                    }
                    // Each transfer is a durable commit; concurrent ones share an fsync.
                    db.transaction(|tx| {
                        let a = tx.get("accounts", from)?.unwrap()["balance"]
                            .as_i64()
                            .unwrap();
                        let b = tx.get("accounts", to)?.unwrap()["balance"]
                            .as_i64()
                            .unwrap();
                        tx.replace("accounts", from, json!({"balance": a - 1}))?;
                        tx.replace("accounts", to, json!({"balance": b + 1}))?;
                        Ok(())
                    })?;
                    committed += 1;
                }
                Ok(committed)
            })
        })
        .collect();
    let mut committed = 0;
    for w in workers {
        committed += w.join().unwrap()?;
    }
    let total = |docs: Vec<snapbase::Document>| {
        docs.iter()
            .map(|d| d["balance"].as_i64().unwrap())
            .sum::<i64>()
    };
    println!(
        "{committed} durable transfer transactions from 4 threads in {:?}",
        start.elapsed()
    );
    println!(
        "total now: {}, total in the snapshot taken before: {}",
        total(accounts.scan()?),
        total(before.scan("accounts")?)
    );
    drop(before);
    let report = db.gc();
    println!("GC: {report:?}");
    db.checkpoint()?;
    let stats = db.stats();
    println!(
        "after checkpoint: {} documents, {} versions in memory, WAL {} B, data files {} B \
         ({} B live)",
        stats.documents, stats.versions, stats.wal_bytes, stats.data_bytes, stats.live_bytes
    );
    db.close()
}
