//! The machine and the run, for the record next to the results: CPU model, cores, RAM, the
//! file system holding the data, the kernel, the date and the git commit.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::results::RunInfo;

/// Describes this machine and run. `data_dir` is where the engines' files go; `command` is the
/// command line to write down; unknown facts read `unknown`.
pub fn describe(data_dir: &Path, command: String, scale: f64) -> RunInfo {
    let unknown = || "unknown".to_owned();
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let data_dir = fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    RunInfo {
        date: today(),
        commit: git_commit().unwrap_or_else(unknown),
        command,
        cpu: cpu_model(&cpuinfo).unwrap_or_else(unknown),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        ram: crate::measure::parse_status_kib(&meminfo, "MemTotal:").map_or_else(unknown, |kib| {
            format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
        }),
        file_system: file_system(&mounts, &data_dir).unwrap_or_else(unknown),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| unknown(), |r| format!("Linux {}", r.trim())),
        scale,
    }
}

/// The `model name` of the first processor in `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_owned())
}

/// `ext4 on /dev/vda (mounted at /)`: the mount of `/proc/mounts` with the longest mount point
/// that contains `path`.
pub fn file_system(mounts: &str, path: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, fs_type) = (fields.next()?, fields.next()?, fields.next()?);
            // /proc/mounts escapes spaces in mount points as \040.
            let point = point.replace("\\040", " ");
            path.starts_with(&point).then(|| {
                (
                    point.clone(),
                    format!("{fs_type} on {device} (mounted at {point})"),
                )
            })
        })
        .max_by_key(|(point, _)| point.len())
        .map(|(_, description)| description)
}

/// `git rev-parse --short HEAD`, with `-dirty` if the work tree has changes.
fn git_commit() -> Option<String> {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "--short", "HEAD"])?;
    let dirty = run(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// Today's UTC date as `YYYY-MM-DD`.
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
    }

    #[test]
    fn the_longest_mount_point_wins() {
        let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                      tmpfs /tmp tmpfs rw 0 0\n\
                      /dev/vdb /work/my\\040data xfs rw 0 0\n";
        assert_eq!(
            file_system(mounts, Path::new("/work/main/target")).as_deref(),
            Some("ext4 on /dev/vda (mounted at /)")
        );
        assert_eq!(
            file_system(mounts, Path::new("/tmp/x")).as_deref(),
            Some("tmpfs on tmpfs (mounted at /tmp)")
        );
        assert_eq!(
            file_system(mounts, Path::new("/work/my data/db")).as_deref(),
            Some("xfs on /dev/vdb (mounted at /work/my data)")
        );
        // `/tmpfoo` is not under `/tmp`.
        assert_eq!(
            file_system(mounts, Path::new("/tmpfoo")).as_deref(),
            Some("ext4 on /dev/vda (mounted at /)")
        );
    }

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\n\
                       processor\t: 1\nmodel name\t: AMD EPYC\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC"));
    }
}
