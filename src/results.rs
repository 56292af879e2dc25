//! Result tables written row by row as work completes (`pada rank`,
//! `pada groundtruth`, `pada proxies`), so that an interrupted command resumes
//! where it stopped, and only with the settings its rows were made with.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Reads the rows already in `path` (none if it does not exist), after
/// dropping a last line cut short by an interruption. The header must be
/// `header`, so that a file of another kind is never appended to.
pub fn read_done(path: &Path, header: &[&str]) -> anyhow::Result<Vec<Vec<String>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        // an interrupted write: keep whole lines only
        let f = std::fs::OpenOptions::new().write(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
        f.set_len(complete as u64).with_context(|| format!("cannot truncate {}", path.display()))?;
    }
    if complete == 0 {
        return Ok(Vec::new());
    }
    let mut rd = csv::ReaderBuilder::new().from_reader(&bytes[..complete]);
    let got: Vec<String> =
        rd.headers().with_context(|| format!("{}: unreadable header", path.display()))?.iter().map(String::from).collect();
    if got != header {
        bail!("{} exists with columns {:?}, not {:?}; refusing to append to it (choose another --out)", path.display(), got, header);
    }
    rd.records()
        .enumerate()
        .map(|(i, r)| Ok(r.with_context(|| format!("{}: row {} is malformed", path.display(), i + 2))?.iter().map(String::from).collect()))
        .collect()
}

/// What a table's rows depend on besides their architecture: flag -> value
/// (e.g. "--images" -> "1000"), recorded beside the table.
pub type Settings = BTreeMap<String, String>;

/// Settings from (flag, value) pairs.
pub fn settings<const N: usize>(pairs: [(&str, String); N]) -> Settings {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// `OUT.settings.json`, where the settings of OUT's rows are recorded.
pub fn settings_path(path: &Path) -> PathBuf {
    path.with_extension("settings.json")
}

/// The rows already in `path` ([`read_done`]), to be kept and resumed from:
/// only if they were made with `settings`, else an error saying which differ
/// (rows of other settings are never mixed in). Records `settings` beside it.
pub fn resume(path: &Path, header: &[&str], settings: &Settings) -> anyhow::Result<Vec<Vec<String>>> {
    let rows = read_done(path, header)?;
    let sp = settings_path(path);
    if !rows.is_empty() {
        let text = std::fs::read_to_string(&sp).map_err(|_| {
            anyhow::anyhow!(
                "{} already holds {} rows, but there is no {} saying how they were made: give another --out, or delete it to start afresh",
                path.display(),
                rows.len(),
                sp.display()
            )
        })?;
        let was: Settings = serde_json::from_str(&text).with_context(|| format!("{}: not a settings record", sp.display()))?;
        let keys: std::collections::BTreeSet<&String> = was.keys().chain(settings.keys()).collect();
        let none = String::from("(none)");
        let differ: Vec<String> = keys
            .into_iter()
            .filter(|k| was.get(*k) != settings.get(*k))
            .map(|k| format!("{k} {} (now {})", was.get(k).unwrap_or(&none), settings.get(k).unwrap_or(&none)))
            .collect();
        if !differ.is_empty() {
            bail!(
                "{} holds {} rows made with {}: give another --out, or delete it to start afresh",
                path.display(),
                rows.len(),
                differ.join(", ")
            );
        }
    }
    crate::fsutil::write_atomic(&sp, serde_json::to_string_pretty(settings)?.as_bytes())?;
    Ok(rows)
}

/// Appends rows (writing the header first into a new file) and flushes them to disk.
pub fn append(path: &Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let new = !path.exists() || std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true);
    let buf = encode(new.then_some(header), rows)?;
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(&buf).with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all().with_context(|| format!("cannot flush {}", path.display()))?;
    Ok(())
}

/// Replaces `path` (atomically) with a table of `header` and `rows`.
pub fn write(path: &Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    crate::fsutil::write_atomic(path, &encode(Some(header), rows)?)
}

/// CSV bytes of `rows`, after `header` if given.
fn encode(header: Option<&[&str]>, rows: &[Vec<String>]) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(&mut buf);
        if let Some(h) = header {
            w.write_record(h)?;
        }
        for r in rows {
            w.write_record(r)?;
        }
        w.flush()?;
    }
    Ok(buf)
}
