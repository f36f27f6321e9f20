//! The README's quick start: load documents, run concurrent transfers while a snapshot keeps a
//! consistent view, then garbage-collect old versions. `cargo run --release --example quickstart`
#![allow(clippy::unwrap_used)]

use std::thread;
use std::time::Instant;

use serde_json::json;
use snapbase::{Database, Result};

fn main() -> Result<()> {
    let db = Database::in_memory();
    let accounts = db.collection("accounts")?;
    let start = Instant::now();
    accounts.insert_many(
        (0..10_000).map(|i| json!({"_id": i, "owner": format!("user{i}"), "balance": 100})),
    )?;
    println!(
        "loaded {} accounts in {:?}",
        accounts.len()?,
        start.elapsed()
    );

    let before = db.snapshot();
    let start = Instant::now();
    let workers: Vec<_> = (0..4i64)
        .map(|w| {
            let db = db.clone();
            thread::spawn(move || -> Result<u64> {
                let mut committed = 0;
                for i in 0..5_000i64 {
                    let (from, to) = (
                        (w * 7919 + i * 31) % 10_000,
                        (w * 104_729 + i * 17) % 10_000,
                    );
                    if from == to {
                        continue;
                    }
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
        "{committed} transfer transactions from 4 threads in {:?}",
        start.elapsed()
    );
    println!(
        "total now: {}, total in the snapshot taken before: {}",
        total(accounts.scan()?),
        total(before.scan("accounts")?)
    );
    println!("before GC: {:?}", db.stats());
    drop(before);
    let report = db.gc();
    println!("GC: {report:?}");
    println!("after GC:  {:?}", db.stats());
    db.close()
}
