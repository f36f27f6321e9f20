//! Real processes killed with SIGKILL while they commit (issue 3, "Real processes";
//! RELIABILITY.md 1.1: the blackbox crash test of `RocksDB`, the crash-recovery children of sled).
//!
//! The test binary re-runs itself as the child: `child_main` (ignored, and a no-op unless the
//! child environment variables are set) opens the database with tiny checkpoint and compaction
//! thresholds, and moves money between the accounts of a bank from one or more committer
//! threads. Each transfer is one transaction that updates two accounts and inserts a uniquely
//! numbered receipt; the child prints `@ack` on stdout only after the commit returned `Ok`. It
//! also takes checkpoints and compacts by hand now and then, drops and refills a scratch
//! collection, and at the start of some rounds settles old receipts (deletes them and folds them
//! into the accounts' `base`), so deletions, tombstones and dropped collections go through
//! checkpoints and compactions too. Most rounds commit in `Durability::Immediate`; some in
//! `Durability::None` (a process crash must lose nothing either) and some in
//! `Durability::Periodic` (acknowledged commits may be lost, but never partly, never out of
//! order).
//!
//! The parent kills the child at a seeded moment (after some acks, inside a checkpoint, a
//! compaction or a scratch replacement, or at a time after spawn that may fall in open and
//! recovery), reaps it, reopens the same directory and checks:
//! - every acknowledged receipt is there, and per committer thread the receipts are exactly the
//!   acknowledged ones plus at most the one whose ack the kill cut off;
//! - every account's balance equals its `base` plus the effect of its remaining receipts, and
//!   the balances sum to the initial total (no partial transaction);
//! - the receipts of earlier rounds are exactly those the earlier checks saw, no settled
//!   (deleted) receipt came back, and the scratch collection holds one complete generation that
//!   the acknowledged steps allow (a dropped incarnation never comes back);
//! - `Database::verify` finds no problem in the crash image and after the reopen, and (every few
//!   rounds) a second open sees the same state.
//!
//! Some rounds defer the check: the next child then opens the unrepaired crash image (torn WAL
//! tail, debris of an interrupted checkpoint), and may itself be killed during that recovery;
//! the check after it covers both rounds. Every round runs on the same directory, so history
//! accumulates across kills.
//!
//! Two lanes (directories, seeds) run side by side. A failure names the lane, the round, the
//! lane and round seeds and the plan, and keeps the directory. The plans follow from
//! `SNAPBASE_KILL_SEED` (hex; default `BASE_SEED`), the kill moments also from timing, so a
//! failure is reproduced by rerunning with its seed (`scripts/kill_soak.sh` for many rounds)
//! and by inspecting the kept directory (`Database::verify`, open).
// The real engine only: under loom the library builds just what the models need.
#![cfg(not(loom))]
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use snapbase::{AutoCompaction, Database, Durability};

/// Kills per `cargo test` run.
const CI_ROUNDS: u64 = 200;
/// Kill loops run side by side (each on its own directory).
const CI_LANES: u64 = 2;
/// Kills of the soak test unless `SNAPBASE_KILL_ROUNDS` says otherwise.
const SOAK_ROUNDS: u64 = 5000;
/// The base seed, unless `SNAPBASE_KILL_SEED` (hex) says otherwise.
const BASE_SEED: u64 = 0x6b69_6c6c_2d39_0001;

const ACCOUNTS: i64 = 16;
const INITIAL_BALANCE: i64 = 1000;
const BANK: &str = "bank";
const RECEIPTS: &str = "receipts";
const META: &str = "meta";
const SETTLED_ID: &str = "settled";
/// Dropped and refilled now and then: documents of a dropped incarnation must stay gone.
const SCRATCH: &str = "scratch";

/// Every `SETTLE_EVERY` rounds the child deletes the receipts older than `KEEP_ROUNDS` rounds.
const SETTLE_EVERY: u64 = 4;
const KEEP_ROUNDS: u64 = 3;

/// Receipt ids: `round << ROUND_SHIFT | thread << THREAD_SHIFT | seq`.
const ROUND_SHIFT: u32 = 24;
const THREAD_SHIFT: u32 = 20;
const MAX_SEQ: u64 = 1 << THREAD_SHIFT;

/// The parent gives up on a child that neither acknowledges nor dies for this long.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);
/// The sync interval of the rounds in `Durability::Periodic`.
const PERIODIC: Duration = Duration::from_millis(5);

const ENV_DIR: &str = "SNAPBASE_KILL_CHILD_DIR";
const ENV_SPEC: &str = "SNAPBASE_KILL_CHILD_SPEC";

/// `SplitMix64`: small, seedable, good enough to pick workloads and kill moments.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

fn round_seed(base: u64, round: u64) -> u64 {
    Rng::new(base ^ round.wrapping_mul(0xa076_1d64_78bd_642f)).next_u64()
}

fn receipt_id(round: u64, thread: u64, seq: u64) -> i64 {
    assert!(seq < MAX_SEQ && thread < 1 << (ROUND_SHIFT - THREAD_SHIFT));
    i64::try_from((round << ROUND_SHIFT) | (thread << THREAD_SHIFT) | seq).unwrap()
}

/// What the settlement of `round` deletes: the receipts of the rounds below the returned one,
/// if any. `unchecked` is the first round whose receipts the parent has not checked yet, and
/// `last` the value of the last settlement planned; settlements only move forward.
fn settlement(round: u64, unchecked: u64, last: u64) -> Option<u64> {
    let through = round.checked_sub(KEEP_ROUNDS)?.min(unchecked);
    (round.is_multiple_of(SETTLE_EVERY) && through > last).then_some(through)
}

/// The durability mode of a round's child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Immediate,
    /// Records go to the OS at commit: a process crash loses nothing.
    OsBuffered,
    /// Synced every `PERIODIC`: acknowledged commits may be lost, never partly.
    Periodic,
}

impl Mode {
    fn durability(self) -> Durability {
        match self {
            Mode::Immediate => Durability::Immediate,
            Mode::OsBuffered => Durability::None,
            Mode::Periodic => Durability::Periodic(PERIODIC),
        }
    }

    /// Whether a commit acknowledged before a process kill must survive it.
    fn acks_survive_kill(self) -> bool {
        self != Mode::Periodic
    }
}

/// What a child does in one round, drawn by the parent from the round's seed and passed in the
/// environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    round: u64,
    seed: u64,
    /// Committer threads.
    threads: u64,
    /// `checkpoint_wal_bytes` of the child (small: background checkpoints run often).
    ckpt_bytes: u64,
    /// Some commits carry memos of up to 64 KiB (WAL frames and run writes of many pages, so a
    /// kill can cut a write in the middle).
    big: bool,
    mode: Mode,
    /// Settle (delete) the receipts of the rounds below this one first (0: do not).
    settle: u64,
}

impl Spec {
    fn to_env(self) -> String {
        let mode = match self.mode {
            Mode::Immediate => 0,
            Mode::OsBuffered => 1,
            Mode::Periodic => 2,
        };
        format!(
            "{} {} {} {} {} {mode} {}",
            self.round,
            self.seed,
            self.threads,
            self.ckpt_bytes,
            u8::from(self.big),
            self.settle
        )
    }

    fn from_env(s: &str) -> Spec {
        let n: Vec<u64> = s.split(' ').map(|w| w.parse().unwrap()).collect();
        Spec {
            round: n[0],
            seed: n[1],
            threads: n[2],
            ckpt_bytes: n[3],
            big: n[4] == 1,
            settle: n[6],
            mode: match n[5] {
                0 => Mode::Immediate,
                1 => Mode::OsBuffered,
                _ => Mode::Periodic,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------------

/// The child process's entry point: does nothing unless the parent set the environment.
#[test]
#[ignore = "the child process of the kill tests; a no-op unless they spawn it"]
fn child_main() {
    let (Some(dir), Ok(spec)) = (std::env::var_os(ENV_DIR), std::env::var(ENV_SPEC)) else {
        return;
    };
    child::run(Path::new(&dir), Spec::from_env(&spec));
}

mod child {
    use super::*;

    /// Writes one protocol line and flushes it; exits if the parent is gone.
    pub(super) fn say(line: &str) {
        let mut out = std::io::stdout().lock();
        // A leading newline keeps the line separate from anything the test harness printed.
        if writeln!(out, "\n@{line}")
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(3);
        }
    }

    pub(super) fn run(dir: &Path, spec: Spec) -> ! {
        let round = spec.round;
        let db = Database::builder()
            .durability(spec.mode.durability())
            .checkpoint_wal_bytes(spec.ckpt_bytes)
            .checkpoint_interval(Duration::from_millis(20))
            .auto_compaction(AutoCompaction::Threshold {
                min_bytes: 2048,
                min_ratio: 0.2,
            })
            .open(dir)
            .unwrap_or_else(|e| panic!("child round {round}: open failed: {e}"));
        say("opened");
        if spec.settle > 0 {
            settle(&db, spec.settle);
            say(&format!("settled {}", spec.settle));
        }
        let workers: Vec<_> = (0..spec.threads)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || transfer_loop(&db, spec, t))
            })
            .collect();
        for w in workers {
            if w.join().is_err() {
                std::process::exit(4);
            }
        }
        // Only reached once MAX_SEQ transfers per thread are done: the parent never waits that
        // long, so it must be gone.
        std::process::exit(5);
    }

    /// Deletes every receipt of a round below `through`, folding its transfer into the two
    /// accounts' `base`, and records `through`, all in one transaction.
    fn settle(db: &Database, through: u64) {
        retry(|| {
            db.transaction(|tx| {
                let mut base: BTreeMap<i64, i64> = BTreeMap::new();
                for account in tx.scan(BANK)? {
                    base.insert(
                        account.id().as_i64().unwrap(),
                        account["base"].as_i64().unwrap(),
                    );
                }
                let mut changed = false;
                for receipt in tx.scan(RECEIPTS)? {
                    if receipt["round"].as_u64().unwrap() >= through {
                        continue;
                    }
                    let amount = receipt["amount"].as_i64().unwrap();
                    *base.get_mut(&receipt["from"].as_i64().unwrap()).unwrap() -= amount;
                    *base.get_mut(&receipt["to"].as_i64().unwrap()).unwrap() += amount;
                    tx.delete(RECEIPTS, receipt.id())?;
                    changed = true;
                }
                if changed {
                    for (id, base) in &base {
                        let mut account = tx.get(BANK, *id)?.unwrap().into_value();
                        account["base"] = json!(base);
                        tx.replace(BANK, *id, account)?;
                    }
                }
                tx.replace(META, SETTLED_ID, json!({ "through": through }))?;
                Ok(())
            })
        });
    }

    fn transfer_loop(db: &Database, spec: Spec, thread: u64) {
        let round = spec.round;
        let mut rng = Rng::new(spec.seed ^ (thread + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        for seq in 0..MAX_SEQ {
            let from = rng.below(ACCOUNTS.unsigned_abs());
            let to = (from + 1 + rng.below(ACCOUNTS.unsigned_abs() - 1)) % ACCOUNTS.unsigned_abs();
            let (from, to) = (i64::try_from(from).unwrap(), i64::try_from(to).unwrap());
            let amount = i64::try_from(1 + rng.below(100)).unwrap();
            // Some bulk, so the WAL grows past the checkpoint trigger and the runs grow.
            let memo = if spec.big && rng.one_in(8) {
                (8 << 10) + rng.below(56 << 10)
            } else {
                rng.below(200)
            };
            let memo = "x".repeat(usize::try_from(memo).unwrap());
            let id = receipt_id(round, thread, seq);
            retry(|| {
                db.transaction(|tx| {
                    let mut a = tx.get(BANK, from)?.unwrap().into_value();
                    let mut b = tx.get(BANK, to)?.unwrap().into_value();
                    a["balance"] = json!(a["balance"].as_i64().unwrap() - amount);
                    b["balance"] = json!(b["balance"].as_i64().unwrap() + amount);
                    tx.replace(BANK, from, a)?;
                    tx.replace(BANK, to, b)?;
                    tx.insert(
                        RECEIPTS,
                        json!({
                            "_id": id, "round": round, "thread": thread, "seq": seq,
                            "from": from, "to": to, "amount": amount, "memo": memo,
                        }),
                    )?;
                    Ok(())
                })
            });
            say(&format!("ack {thread} {seq}"));
            if rng.one_in(12) {
                say(&format!("ckpt {thread}"));
                db.checkpoint()
                    .unwrap_or_else(|e| panic!("child round {round}: checkpoint: {e}"));
                say(&format!("ckpt-done {thread}"));
            }
            if rng.one_in(40) {
                say(&format!("compact {thread}"));
                db.compact()
                    .unwrap_or_else(|e| panic!("child round {round}: compact: {e}"));
                say(&format!("compact-done {thread}"));
            }
            if thread == 0 && rng.one_in(16) {
                replace_scratch(db, id.unsigned_abs(), 1 + rng.below(48));
            }
        }
    }

    /// Drops the scratch collection (one commit), then fills it with `count` documents of
    /// generation `gen` (a second commit). Documents of an older generation must never come
    /// back, whatever the kill interrupts.
    fn replace_scratch(db: &Database, gen: u64, count: u64) {
        say(&format!("scratch-begin {gen}"));
        db.drop_collection(SCRATCH)
            .unwrap_or_else(|e| panic!("child: dropping {SCRATCH}: {e}"));
        say(&format!("scratch-dropped {gen}"));
        db.collection(SCRATCH)
            .and_then(|c| {
                c.insert_many((0..count).map(|i| json!({"_id": i, "gen": gen, "count": count})))
            })
            .unwrap_or_else(|e| panic!("child: filling {SCRATCH}: {e}"));
        say(&format!("scratch {gen}"));
    }

    /// Runs `f` until it does not fail with a retryable error (a write conflict between
    /// committer threads); any other error ends the child with a panic.
    fn retry(mut f: impl FnMut() -> snapbase::Result<()>) {
        loop {
            match f() {
                Ok(()) => return,
                Err(e) if e.is_retryable() => {}
                Err(e) => panic!("child: commit failed: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------------

/// A database directory, removed on success and kept (and printed) when the test panics.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "snapbase-kill-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        Self(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "kill test: kept the database directory {}",
                self.0.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// When the parent kills the child.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This many thousandths of the lane's usual time-to-open after spawning, whatever the
    /// child is doing (starting, opening and recovering, settling, committing).
    AfterSpawn { permille: u64 },
    /// After the child opened and acknowledged `acks` commits, plus `delay`.
    AfterAcks { acks: u64, delay: Duration },
    /// `delay` after the child announced a checkpoint (or after `fallback` acks).
    InCheckpoint { delay: Duration, fallback: u64 },
    /// `delay` after the child announced a compaction (or after `fallback` acks).
    InCompaction { delay: Duration, fallback: u64 },
    /// `delay` after the child announced a replacement of the scratch collection (or after
    /// `fallback` acks).
    InScratch { delay: Duration, fallback: u64 },
}

/// What one round does, all drawn from the round's seed.
#[derive(Debug, Clone, Copy)]
struct Plan {
    spec: Spec,
    kill: KillAt,
    /// Leave the crash image unrepaired for the next child; check after that one.
    defer_check: bool,
}

impl Plan {
    /// The plan of `round`; `after_deferred` says the previous round left its crash image
    /// unrepaired (this round then often kills during open and recovery); `settle` is what the
    /// child settles first (see `settlement`).
    fn new(lane_seed: u64, round: u64, after_deferred: bool, settle: Option<u64>) -> Self {
        let seed = round_seed(lane_seed, round);
        let mut rng = Rng::new(seed);
        let threads = match rng.below(16) {
            0..=7 => 1,
            8..=9 => 2,
            10..=12 => 4,
            13..=14 => 8,
            _ => 16,
        };
        let ckpt_bytes = 1024 << rng.below(5);
        let big = rng.one_in(4);
        let mode = match rng.below(10) {
            0..=6 => Mode::Immediate,
            7..=8 => Mode::OsBuffered,
            _ => Mode::Periodic,
        };
        let defer_check = rng.one_in(5);
        let micros = |rng: &mut Rng, max: u64| Duration::from_micros(rng.below(max));
        let pick = if after_deferred && rng.one_in(2) {
            0
        } else {
            rng.below(20)
        };
        let kill = match pick {
            0..=1 => KillAt::AfterSpawn {
                permille: 300 + rng.below(1000),
            },
            2..=4 => KillAt::InCheckpoint {
                delay: micros(&mut rng, 3_000),
                fallback: 200,
            },
            5..=6 => KillAt::InCompaction {
                delay: micros(&mut rng, 5_000),
                fallback: 300,
            },
            7 => KillAt::InScratch {
                delay: micros(&mut rng, 1_000),
                fallback: 300,
            },
            _ => KillAt::AfterAcks {
                acks: rng.below(40),
                delay: if rng.one_in(2) {
                    Duration::ZERO
                } else {
                    micros(&mut rng, 2_000)
                },
            },
        };
        Plan {
            spec: Spec {
                round,
                seed,
                threads,
                ckpt_bytes,
                big,
                mode,
                settle: settle.unwrap_or(0),
            },
            kill,
            defer_check,
        }
    }
}

/// A line the child printed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Opened,
    Settled(u64),
    Ack { thread: u64, seq: u64 },
    Checkpoint,
    CheckpointDone,
    Compact,
    CompactDone,
    ScratchBegin(u64),
    ScratchDropped(u64),
    ScratchFilled(u64),
}

fn parse_event(line: &str) -> Option<Event> {
    let rest = line.strip_prefix('@')?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    Some(match *words.first()? {
        "opened" => Event::Opened,
        "settled" => Event::Settled(num(1)?),
        "ack" => Event::Ack {
            thread: num(1)?,
            seq: num(2)?,
        },
        "ckpt" => Event::Checkpoint,
        "ckpt-done" => Event::CheckpointDone,
        "compact" => Event::Compact,
        "compact-done" => Event::CompactDone,
        "scratch-begin" => Event::ScratchBegin(num(1)?),
        "scratch-dropped" => Event::ScratchDropped(num(1)?),
        "scratch" => Event::ScratchFilled(num(1)?),
        _ => return None,
    })
}

/// Kills the child when dropped (a failing parent must not leave it running).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one round observed of its child.
#[derive(Debug, Default)]
struct Observed {
    /// When the child reported its database open, after spawning.
    opened: Option<Duration>,
    settled: Option<u64>,
    /// Acknowledged commits per thread (seqs arrive in order per thread).
    acks: BTreeMap<u64, u64>,
    /// When the parent read each ack, per thread, after spawning.
    ack_times: BTreeMap<u64, Vec<Duration>>,
    /// When the parent killed the child, after spawning.
    killed_at: Duration,
    /// Checkpoints and compactions announced but not finished when the child died.
    in_checkpoint: u64,
    in_compaction: u64,
    checkpoints: u64,
    compactions: u64,
    /// Replacements of the scratch collection: generation and last step acknowledged.
    scratch: Vec<(u64, ScratchStep)>,
    stderr: String,
}

/// How far a replacement of the scratch collection got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScratchStep {
    Begun,
    Dropped,
    Filled,
}

impl Observed {
    fn total_acks(&self) -> u64 {
        self.acks.values().sum()
    }

    fn record(&mut self, event: &Event, at: Duration) -> Result<(), String> {
        match *event {
            Event::Opened => self.opened = Some(at),
            Event::Settled(t) => self.settled = Some(t),
            Event::Ack { thread, seq } => {
                let n = self.acks.entry(thread).or_default();
                if *n != seq {
                    return Err(format!(
                        "thread {thread} acknowledged seq {seq} after {n} acks"
                    ));
                }
                *n += 1;
                self.ack_times.entry(thread).or_default().push(at);
            }
            Event::Checkpoint => {
                self.in_checkpoint += 1;
                self.checkpoints += 1;
            }
            Event::CheckpointDone => self.in_checkpoint -= 1,
            Event::Compact => {
                self.in_compaction += 1;
                self.compactions += 1;
            }
            Event::CompactDone => self.in_compaction -= 1,
            Event::ScratchBegin(gen) => self.scratch.push((gen, ScratchStep::Begun)),
            Event::ScratchDropped(gen) | Event::ScratchFilled(gen) => {
                let (before, after) = if matches!(event, Event::ScratchDropped(_)) {
                    (ScratchStep::Begun, ScratchStep::Dropped)
                } else {
                    (ScratchStep::Dropped, ScratchStep::Filled)
                };
                match self.scratch.last_mut() {
                    Some((g, step)) if *g == gen && *step == before => *step = after,
                    last => return Err(format!("scratch step {event:?} after {last:?}")),
                }
            }
        }
        Ok(())
    }
}

/// A round whose child was killed and whose state is not checked yet.
#[derive(Debug)]
struct Pending {
    plan: Plan,
    seen: Observed,
}

/// What the parent knows must be in the database between rounds.
#[derive(Debug, Default)]
struct Model {
    /// Receipts of rounds below this were settled (deleted).
    through: u64,
    /// Receipt count per (round, thread) of the rounds checked so far, not yet settled.
    groups: Groups,
    /// The generation of the scratch collection's documents (`None`: no scratch collection).
    scratch: Option<u64>,
}

/// Receipt counts per (round, thread).
type Groups = BTreeMap<(u64, u64), u64>;

/// Totals over a run, printed at the end.
#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    checks: u64,
    acks: u64,
    multi_thread_rounds: u64,
    big_rounds: u64,
    os_buffered_rounds: u64,
    periodic_rounds: u64,
    /// Children killed before they reported their database open (in start-up or recovery).
    killed_before_open: u64,
    /// Of those, children that were opening a crash image no open had repaired yet.
    killed_before_open_unrepaired: u64,
    killed_in_checkpoint: u64,
    killed_in_compaction: u64,
    killed_in_scratch: u64,
    /// Crash images for which `verify` noted something open repairs (torn tail, debris).
    crash_images_with_notes: u64,
    /// Commits that survived although the kill came before their ack.
    unacked_but_durable: u64,
    /// Acknowledged commits lost by `Durability::Periodic` rounds (allowed), and the longest
    /// time between the parent reading the ack of a lost commit and the kill (a lower bound of
    /// the commit's age at the kill; the mode promises to lose at most the last `PERIODIC`).
    periodic_acks_lost: u64,
    periodic_max_lost_age: Duration,
    settlements: u64,
    scratch_replacements: u64,
    /// Checkpoints and compactions the child ran by hand and finished (the background thread
    /// runs more: the data run ids in `files_at_end` count both).
    manual_checkpoints: u64,
    manual_compactions: u64,
    receipts_at_end: usize,
    files_at_end: Vec<String>,
}

/// Held while a lane spawns a child, and while a lane has a database open or verifies one.
///
/// A spawned process inherits every open file description of this process until it execs,
/// the directory lock's among them (`flock` locks the open file description; `O_CLOEXEC` only
/// closes it at exec). A lane that closes its database while another lane is between fork and
/// exec therefore finds the lock still held when it reopens or verifies right after. See
/// `reopen_is_not_refused_while_another_thread_spawns_processes`.
static FD_GATE: Mutex<()> = Mutex::new(());

fn gate() -> MutexGuard<'static, ()> {
    FD_GATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn spawn_child(dir: &Path, plan: &Plan) -> ChildGuard {
    let exe = std::env::current_exe().unwrap();
    let _gate = gate();
    let child = Command::new(exe)
        .args([
            "--exact",
            "child_main",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, dir)
        .env(ENV_SPEC, plan.spec.to_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    ChildGuard(child.unwrap())
}

/// Runs one child and kills it as the plan says (`open_time`: the lane's usual time from
/// spawn to open); returns what it acknowledged.
fn run_child(
    dir: &Path,
    plan: &Plan,
    open_time: Duration,
    ctx: &dyn Fn(&str) -> String,
) -> Observed {
    let started = Instant::now();
    let mut guard = spawn_child(dir, plan);
    let stdout = guard.0.stdout.take().unwrap();
    let mut stderr = guard.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(event) = parse_event(line.trim()) {
                if tx.send((event, started.elapsed())).is_err() {
                    break;
                }
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut seen = Observed::default();
    let mut kill_deadline: Option<Instant> = match plan.kill {
        KillAt::AfterSpawn { permille } => {
            Some(started + open_time * u32::try_from(permille).unwrap() / 1000)
        }
        _ => None,
    };
    let mut exited_early = false;
    loop {
        let now = Instant::now();
        if kill_deadline.is_some_and(|d| now >= d) {
            break;
        }
        let wait = kill_deadline.map_or(Duration::from_millis(50), |d| d - now);
        match rx.recv_timeout(wait) {
            Ok((event, at)) => {
                if let Err(e) = seen.record(&event, at) {
                    panic!("{}", ctx(&e));
                }
                if kill_deadline.is_none() {
                    kill_deadline = trigger(plan.kill, &event, &seen).map(|d| Instant::now() + d);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited_early = true;
                break;
            }
        }
        assert!(
            started.elapsed() < ROUND_TIMEOUT,
            "{}",
            ctx("the child made no progress for too long")
        );
    }
    seen.killed_at = started.elapsed();
    let alive = guard.0.try_wait().unwrap().is_none();
    guard.0.kill().unwrap();
    let status = guard.0.wait().unwrap();
    reader.join().unwrap();
    for (event, at) in rx.try_iter() {
        if let Err(e) = seen.record(&event, at) {
            panic!("{}", ctx(&e));
        }
    }
    seen.stderr = err_reader.join().unwrap();
    assert!(
        alive && !exited_early && status.signal() == Some(9),
        "{}",
        ctx(&format!(
            "the child ended by itself ({status}) instead of being killed; its stderr:\n{}",
            seen.stderr
        ))
    );
    seen
}

/// The delay until the kill, once `event` fulfils the plan's trigger.
fn trigger(kill: KillAt, event: &Event, seen: &Observed) -> Option<Duration> {
    let acked = seen.opened.map(|_| seen.total_acks());
    match kill {
        KillAt::AfterSpawn { .. } => None,
        KillAt::AfterAcks { acks, delay } => acked.is_some_and(|n| n >= acks).then_some(delay),
        KillAt::InCheckpoint { delay, fallback } => {
            (*event == Event::Checkpoint || acked.is_some_and(|n| n >= fallback)).then_some(delay)
        }
        KillAt::InCompaction { delay, fallback } => {
            (*event == Event::Compact || acked.is_some_and(|n| n >= fallback)).then_some(delay)
        }
        KillAt::InScratch { delay, fallback } => (matches!(event, Event::ScratchBegin(_))
            || acked.is_some_and(|n| n >= fallback))
        .then_some(delay),
    }
}

/// The parent's view of the database, read at one snapshot.
#[derive(Debug, PartialEq)]
struct State {
    accounts: Vec<Value>,
    receipts: Vec<Value>,
    meta: Option<Value>,
    scratch: Vec<Value>,
    collections: Vec<String>,
}

fn read_state(db: &Database) -> snapbase::Result<State> {
    let snap = db.snapshot();
    let values = |docs: Vec<snapbase::Document>| {
        docs.into_iter()
            .map(snapbase::Document::into_value)
            .collect()
    };
    Ok(State {
        accounts: values(snap.scan(BANK)?),
        receipts: values(snap.scan(RECEIPTS)?),
        meta: snap
            .get(META, SETTLED_ID)?
            .map(snapbase::Document::into_value),
        scratch: values(snap.scan(SCRATCH)?),
        collections: snap.collection_names()?,
    })
}

fn int(v: &Value, field: &str) -> Result<i64, String> {
    v[field]
        .as_i64()
        .ok_or_else(|| format!("{field} of {v} is not an integer"))
}

fn uint(v: &Value, field: &str) -> Result<u64, String> {
    v[field]
        .as_u64()
        .ok_or_else(|| format!("{field} of {v} is not an unsigned integer"))
}

/// What a check found beyond the rules: for the tally.
#[derive(Debug, Default)]
struct Found {
    unacked_but_durable: u64,
    periodic_acks_lost: u64,
    periodic_max_lost_age: Duration,
}

/// Checks the recovered state against the model and the acks of the rounds not yet checked;
/// returns the receipt counts of the rounds not settled, and what it found.
fn check_state(
    state: &State,
    model: &Model,
    pending: &[Pending],
) -> Result<(Groups, Found), String> {
    let through = check_settlement(state, model, pending)?;
    let last_round = pending.last().map_or(0, |p| p.plan.spec.round);
    let (mut counts, effect) = check_receipts(state, through, last_round)?;
    let is_pending = |round: u64| pending.iter().any(|p| p.plan.spec.round == round);
    for (&(round, thread), &n) in &counts {
        if !is_pending(round) && model.groups.get(&(round, thread)) != Some(&n) {
            return Err(format!(
                "round {round} thread {thread} has {n} receipts, but had {:?} when checked",
                model.groups.get(&(round, thread))
            ));
        }
    }
    for (&(round, thread), &n) in &model.groups {
        if round >= through && !counts.contains_key(&(round, thread)) {
            return Err(format!(
                "round {round} thread {thread} had {n} receipts when checked, now none"
            ));
        }
    }
    let mut found = Found::default();
    for p in pending {
        let (round, threads) = (p.plan.spec.round, p.plan.spec.threads);
        if let Some(&(_, thread)) = counts.keys().find(|&&(r, t)| r == round && t >= threads) {
            return Err(format!(
                "receipts of round {round} thread {thread}, which did not run"
            ));
        }
        for thread in 0..threads {
            let acked = p.seen.acks.get(&thread).copied().unwrap_or(0);
            let n = counts.get(&(round, thread)).copied().unwrap_or(0);
            if n < acked && p.plan.spec.mode.acks_survive_kill() {
                return Err(format!(
                    "round {round} thread {thread} had {acked} acknowledged commits in mode \
                     {:?}, but only {n} receipts survived (acknowledged commits lost)",
                    p.plan.spec.mode
                ));
            }
            if n > acked + 1 {
                return Err(format!(
                    "round {round} thread {thread} had {acked} acknowledged commits, but {n} \
                     receipts: more than the one in flight at the kill"
                ));
            }
            found.unacked_but_durable += n.saturating_sub(acked);
            found.periodic_acks_lost += acked.saturating_sub(n);
            if let Some(&oldest_lost) = p
                .seen
                .ack_times
                .get(&thread)
                .and_then(|t| t.get(usize::try_from(n).unwrap()))
            {
                let age = p.seen.killed_at.saturating_sub(oldest_lost);
                found.periodic_max_lost_age = found.periodic_max_lost_age.max(age);
            }
        }
    }
    check_accounts(state, &effect)?;
    check_scratch(state, model, pending)?;
    counts.retain(|&(round, _), _| round >= through);
    Ok((counts, found))
}

/// The settlement is all or nothing, and done if acknowledged (where acks survive kills);
/// returns its `through`.
fn check_settlement(state: &State, model: &Model, pending: &[Pending]) -> Result<u64, String> {
    let Some(meta) = &state.meta else {
        return Err("the meta document is missing".into());
    };
    let through = uint(meta, "through")?;
    // The values the settlements of the pending rounds can have left, in order.
    let mut allowed = BTreeSet::from([model.through]);
    for p in pending {
        let intended = p.plan.spec.settle;
        if intended == 0 {
            continue;
        }
        if p.seen.opened.is_none() {
            continue; // it settles only after reporting the database open
        }
        if p.seen.settled.is_some() && p.plan.spec.mode.acks_survive_kill() {
            allowed.clear();
        }
        allowed.insert(intended);
    }
    if allowed.contains(&through) {
        Ok(through)
    } else {
        Err(format!(
            "settled through {through}, but only {allowed:?} are possible (before: {}; acked: \
             {:?})",
            model.through,
            pending
                .iter()
                .map(|p| (p.plan.spec.round, p.seen.settled))
                .collect::<Vec<_>>()
        ))
    }
}

/// Receipts are well formed, none settled, none from the future, and contiguous per (round,
/// thread). Returns their counts and their net effect per account.
fn check_receipts(
    state: &State,
    through: u64,
    last_round: u64,
) -> Result<(Groups, BTreeMap<i64, i64>), String> {
    let mut effect: BTreeMap<i64, i64> = BTreeMap::new();
    let mut groups: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    for r in &state.receipts {
        let (round, thread, seq) = (uint(r, "round")?, uint(r, "thread")?, uint(r, "seq")?);
        if int(r, "_id")? != receipt_id(round, thread, seq) {
            return Err(format!("receipt {r} has the wrong id"));
        }
        if round < through {
            return Err(format!(
                "receipt {r} of round {round} is back, though rounds below {through} were \
                 settled (deleted)"
            ));
        }
        if round > last_round {
            return Err(format!("receipt {r} is from a future round"));
        }
        let amount = int(r, "amount")?;
        *effect.entry(int(r, "from")?).or_default() -= amount;
        *effect.entry(int(r, "to")?).or_default() += amount;
        groups.entry((round, thread)).or_default().push(seq);
    }
    let mut counts = Groups::new();
    for (&(round, thread), seqs) in &groups {
        if !seqs.iter().copied().eq(0..seqs.len() as u64) {
            return Err(format!(
                "receipts of round {round} thread {thread} are not a prefix: {seqs:?}"
            ));
        }
        counts.insert((round, thread), seqs.len() as u64);
    }
    Ok((counts, effect))
}

/// The scratch collection holds exactly one generation, complete, and one that the pending
/// rounds' acknowledged steps allow.
fn check_scratch(state: &State, model: &Model, pending: &[Pending]) -> Result<(), String> {
    let exists = state.collections.iter().any(|c| c == SCRATCH);
    let gen = match state.scratch.first() {
        None => None,
        Some(first) => {
            let (gen, count) = (uint(first, "gen")?, uint(first, "count")?);
            let mut ids = Vec::new();
            for d in &state.scratch {
                if uint(d, "gen")? != gen || uint(d, "count")? != count {
                    return Err(format!(
                        "the scratch collection mixes generations: {d} and {first} (a dropped \
                         incarnation came back?)"
                    ));
                }
                ids.push(uint(d, "_id")?);
            }
            if !ids.iter().copied().eq(0..count) {
                return Err(format!(
                    "scratch generation {gen} should have ids 0..{count}, has {ids:?}"
                ));
            }
            Some(gen)
        }
    };
    if exists != gen.is_some() {
        return Err(format!(
            "the scratch collection exists: {exists}, but holds {} documents (collections \
             {:?})",
            state.scratch.len(),
            state.collections
        ));
    }
    // The states the replacements can have left, in order: a step not acknowledged may or may
    // not have committed; the next step starts only after the ack of the one before.
    let mut allowed = BTreeSet::from([model.scratch]);
    for p in pending {
        let survive = p.plan.spec.mode.acks_survive_kill();
        for &(g, step) in &p.seen.scratch {
            match step {
                ScratchStep::Begun => {
                    allowed.insert(None);
                }
                ScratchStep::Dropped | ScratchStep::Filled if !survive => {
                    allowed.extend([None, Some(g)]);
                }
                ScratchStep::Dropped => allowed = BTreeSet::from([None, Some(g)]),
                ScratchStep::Filled => allowed = BTreeSet::from([Some(g)]),
            }
        }
    }
    if allowed.contains(&gen) {
        Ok(())
    } else {
        Err(format!(
            "the scratch collection holds generation {gen:?}, but only {allowed:?} are \
             possible (before: {:?}; acked: {:?})",
            model.scratch,
            pending
                .iter()
                .map(|p| (p.plan.spec.round, &p.seen.scratch))
                .collect::<Vec<_>>()
        ))
    }
}

/// Every account is there, its balance is its base plus its receipts, and the total holds.
fn check_accounts(state: &State, effect: &BTreeMap<i64, i64>) -> Result<(), String> {
    let ids: Vec<i64> = state
        .accounts
        .iter()
        .map(|a| int(a, "_id"))
        .collect::<Result<_, _>>()?;
    if ids != (0..ACCOUNTS).collect::<Vec<_>>() {
        return Err(format!("the accounts are {ids:?}"));
    }
    let mut total = 0;
    for a in &state.accounts {
        let (id, balance, base) = (int(a, "_id")?, int(a, "balance")?, int(a, "base")?);
        let expected = base + effect.get(&id).copied().unwrap_or(0);
        if balance != expected {
            return Err(format!(
                "account {id}: balance {balance}, but base {base} plus its receipts make \
                 {expected} (a partial transaction?)"
            ));
        }
        total += balance;
    }
    if total == ACCOUNTS * INITIAL_BALANCE {
        Ok(())
    } else {
        Err(format!(
            "the balances sum to {total}, not {}",
            ACCOUNTS * INITIAL_BALANCE
        ))
    }
}

fn create_bank(dir: &Path) {
    let _gate = gate();
    let db = Database::open(dir).unwrap();
    db.transaction(|tx| {
        for id in 0..ACCOUNTS {
            tx.insert(
                BANK,
                json!({"_id": id, "balance": INITIAL_BALANCE, "base": INITIAL_BALANCE}),
            )?;
        }
        tx.insert(META, json!({"_id": SETTLED_ID, "through": 0}))?;
        // Create the collection, so every child finds it.
        tx.insert(RECEIPTS, json!({"_id": "placeholder"}))?;
        Ok(())
    })
    .unwrap();
    db.collection(RECEIPTS)
        .unwrap()
        .delete("placeholder")
        .unwrap();
    db.close().unwrap();
}

/// Runs `lanes` independent kill loops side by side (each on its own directory, with its own
/// seed), `rounds` kills each: the rounds wait mostly on fsync, so lanes overlap well. Returns
/// each lane's totals. The first failure stops the other lanes and is re-raised.
fn kill_lanes(name: &str, lanes: u64, rounds: u64) -> Vec<Tally> {
    let base_seed = std::env::var("SNAPBASE_KILL_SEED")
        .ok()
        .map_or(BASE_SEED, |s| {
            u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
        });
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..lanes)
            .map(|lane| {
                let failed = &failed;
                let lane_seed = round_seed(base_seed, u64::MAX - lane);
                scope.spawn(move || {
                    let _flag = FailFlag(failed);
                    kill_rounds(&format!("{name}{lane}"), lane_seed, rounds, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Sets the flag if its thread panics, so the others stop.
struct FailFlag<'a>(&'a AtomicBool);

impl Drop for FailFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs `rounds` kill rounds on one directory (or until another lane fails); returns the
/// totals.
fn kill_rounds(name: &str, lane_seed: u64, rounds: u64, failed: &AtomicBool) -> Tally {
    let dir = Dir::new(name);
    create_bank(&dir.0);
    let mut model = Model::default();
    let mut tally = Tally::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut open_time = Duration::from_millis(10);
    let mut last_settle = 0;
    let started = Instant::now();
    for round in 0..rounds {
        if failed.load(Ordering::SeqCst) {
            break;
        }
        let unchecked = pending.first().map_or(round, |p| p.plan.spec.round);
        let settle = settlement(round, unchecked, last_settle);
        last_settle = settle.unwrap_or(last_settle);
        let plan = Plan::new(lane_seed, round, !pending.is_empty(), settle);
        let dir_path = dir.0.clone();
        let lane = name.to_owned();
        let ctx = move |msg: &str| {
            format!(
                "lane {lane} round {round} (lane seed {lane_seed:#x}, {plan:?}), directory {}: \
                 {msg}",
                dir_path.display()
            )
        };
        let seen = run_child(&dir.0, &plan, open_time, &ctx);
        if let Some(t) = seen.opened {
            open_time = (open_time * 3 + t) / 4;
        }
        tally.count_kill(&plan, &seen, !pending.is_empty());
        let crash_image = {
            let _gate = gate();
            Database::verify(&dir.0)
                .unwrap_or_else(|e| panic!("{}", ctx(&format!("verify after the kill: {e}"))))
        };
        assert!(
            crash_image.is_ok(),
            "{}",
            ctx(&format!("verify after the kill: {crash_image}"))
        );
        tally.crash_images_with_notes += u64::from(!crash_image.notes.is_empty());
        pending.push(Pending { plan, seen });
        if plan.defer_check && round + 1 < rounds {
            continue;
        }
        check_round(&dir.0, &mut pending, &mut model, &mut tally, &ctx);
        if (round + 1) % 500 == 0 {
            eprintln!(
                "kill test {name}: {} rounds in {:?}",
                round + 1,
                started.elapsed()
            );
        }
    }
    tally.files_at_end = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    tally.files_at_end.sort();
    eprintln!("kill test {name}: {tally:#?}");
    tally
}

impl Tally {
    fn count_kill(&mut self, plan: &Plan, seen: &Observed, unrepaired: bool) {
        self.kills += 1;
        self.acks += seen.total_acks();
        self.multi_thread_rounds += u64::from(plan.spec.threads > 1);
        self.big_rounds += u64::from(plan.spec.big);
        self.os_buffered_rounds += u64::from(plan.spec.mode == Mode::OsBuffered);
        self.periodic_rounds += u64::from(plan.spec.mode == Mode::Periodic);
        self.killed_before_open += u64::from(seen.opened.is_none());
        self.killed_before_open_unrepaired += u64::from(seen.opened.is_none() && unrepaired);
        self.killed_in_checkpoint += u64::from(seen.in_checkpoint > 0);
        self.killed_in_compaction += u64::from(seen.in_compaction > 0);
        self.killed_in_scratch += u64::from(
            seen.scratch
                .last()
                .is_some_and(|&(_, step)| step != ScratchStep::Filled),
        );
        self.settlements += u64::from(seen.settled.is_some());
        self.scratch_replacements += seen.scratch.len() as u64;
        self.manual_checkpoints += seen.checkpoints - seen.in_checkpoint;
        self.manual_compactions += seen.compactions - seen.in_compaction;
    }
}

/// Checks the directory the killed children of the `pending` rounds left: open recovers every
/// acknowledged commit and nothing partial, close keeps it intact, and a second open changes
/// nothing. Clears `pending` into `model`.
fn check_round(
    dir: &Path,
    pending: &mut Vec<Pending>,
    model: &mut Model,
    tally: &mut Tally,
    ctx: &dyn Fn(&str) -> String,
) {
    let _gate = gate();
    let db = Database::open(dir)
        .unwrap_or_else(|e| panic!("{}", ctx(&format!("reopen after the kill: {e}"))));
    let state =
        read_state(&db).unwrap_or_else(|e| panic!("{}", ctx(&format!("reading the state: {e}"))));
    let (counts, found) = check_state(&state, model, pending).unwrap_or_else(|e| {
        let rounds: Vec<_> = pending
            .iter()
            .map(|p| {
                format!(
                    "\nround {} {:?}: acks {:?}, settled {:?}, scratch {:?}, child stderr:\n{}",
                    p.plan.spec.round,
                    p.plan,
                    p.seen.acks,
                    p.seen.settled,
                    p.seen.scratch,
                    p.seen.stderr
                )
            })
            .collect();
        panic!("{}", ctx(&format!("{e}{}", rounds.concat())))
    });
    db.close()
        .unwrap_or_else(|e| panic!("{}", ctx(&format!("close: {e}"))));
    let report =
        Database::verify(dir).unwrap_or_else(|e| panic!("{}", ctx(&format!("verify: {e}"))));
    assert!(report.is_ok(), "{}", ctx(&format!("verify: {report}")));
    if tally.checks % 4 == 3 {
        let again = Database::open(dir)
            .unwrap_or_else(|e| panic!("{}", ctx(&format!("second reopen: {e}"))));
        let second =
            read_state(&again).unwrap_or_else(|e| panic!("{}", ctx(&format!("second read: {e}"))));
        assert!(
            second == state,
            "{}",
            ctx("a second open saw a different state")
        );
        again.close().unwrap();
    }

    model.through = uint(state.meta.as_ref().unwrap(), "through").unwrap();
    model.groups = counts;
    model.scratch = state.scratch.first().map(|d| uint(d, "gen").unwrap());
    pending.clear();
    tally.checks += 1;
    tally.unacked_but_durable += found.unacked_but_durable;
    tally.periodic_acks_lost += found.periodic_acks_lost;
    tally.periodic_max_lost_age = tally.periodic_max_lost_age.max(found.periodic_max_lost_age);
    tally.receipts_at_end = state.receipts.len();
}

#[test]
fn sigkill_during_durable_commits_loses_no_acknowledged_commit() {
    let tallies = kill_lanes("ci", CI_LANES, CI_ROUNDS.div_ceil(CI_LANES));
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    assert!(sum(|t| t.kills) >= CI_ROUNDS, "{tallies:?}");
    assert!(sum(|t| t.multi_thread_rounds) > 0, "{tallies:?}");
    assert!(sum(|t| t.acks) > 0, "{tallies:?}");
}

/// Thousands of kills (`SNAPBASE_KILL_ROUNDS`, default 5000, spread over
/// `SNAPBASE_KILL_LANES` lanes, default 2); `scripts/kill_soak.sh` runs it in release mode.
#[test]
#[ignore = "soak: thousands of kills; run scripts/kill_soak.sh"]
fn kill_soak() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .map_or(default, |s| s.parse().unwrap())
    };
    let rounds = env("SNAPBASE_KILL_ROUNDS", SOAK_ROUNDS);
    let lanes = env("SNAPBASE_KILL_LANES", CI_LANES).max(1);
    let tallies = kill_lanes("soak", lanes, rounds.div_ceil(lanes));
    let kills: u64 = tallies.iter().map(|t| t.kills).sum();
    assert!(kills >= rounds, "{tallies:?}");
}

/// The directory lock is `flock` on `LOCK`, held by the open file description. A process
/// spawned by another thread inherits that description until it execs, so a database closed in
/// that window stays locked for a moment; open retries a refused lock briefly, so a reopen right
/// after a close is not refused while another thread spawns processes.
#[test]
fn reopen_is_not_refused_while_another_thread_spawns_processes() {
    let dir = Dir::new("lock-fork");
    let stop = AtomicBool::new(false);
    let (mut refused, mut first) = (0, None);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let _ = Command::new("true").status();
            }
        });
        let _stop = FailFlag(&stop);
        for _ in 0..300 {
            match Database::open(&dir.0) {
                Ok(db) => db.close().unwrap(),
                Err(e) => {
                    refused += 1;
                    first.get_or_insert(e.to_string());
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    drop(dir); // nothing in it to inspect
    assert_eq!(
        refused, 0,
        "{refused} of 300 opens were refused; the first: {first:?}"
    );
}
