//! The Python binding (feature `python`): the native module `pada._pada`,
//! which `python/pada/__init__.py` wraps into the package users import.
//!
//! Every long call runs its work on a thread of its own while the calling
//! thread, detached from the interpreter, waits for its progress events: it
//! hands them to the Python callback and checks for signals between them, so
//! Ctrl-C raises `KeyboardInterrupt` in Python within a tenth of a second
//! and stops the work at its next step (a training keeps its last complete
//! epoch: resumable). Errors arrive as `ValueError` (bad input) or `OSError`
//! (a file), with the one-line messages of the CLI. Scores come back as numpy
//! arrays made from the score vectors themselves (no copy per architecture).

use std::path::PathBuf;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use clap::Parser;
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arch::{Arch, Space};
use crate::backend::cpu::CpuBackend;
use crate::cli::train::TrainArgs;
use crate::data::Data;
use crate::eval::EvalSet;
use crate::rankstats::Consistency;
use crate::supernet::Supernet;
use crate::table::TableSource;
use crate::train::run::{self, Progress, RunRecord};
use crate::train::{EpochMetrics, StepProgress};

/// What a long call tells the Python side while it works.
enum Event {
    /// A line a log would show (an epoch's summary).
    Line(String),
    /// `done` of `total` units of `what`.
    Step { done: u64, total: u64, what: String },
}

/// A Rust error as the Python exception a user expects: `OSError` when a file
/// could not be read or written, `ValueError` otherwise; the CLI's message.
fn to_py(e: anyhow::Error) -> PyErr {
    let message = format!("{e:#}");
    if e.downcast_ref::<crate::train::Interrupted>().is_some() {
        return PyKeyboardInterrupt::new_err(message);
    }
    if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some()) {
        return PyOSError::new_err(message);
    }
    PyValueError::new_err(message)
}

/// Runs `work` on a thread of its own, handing its events to `progress` and
/// watching for signals (Ctrl-C) meanwhile; a signal stops the work at its
/// next check ([`crate::train::request_interrupt`]) and is raised once it has.
fn supervised<T: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(Sender<Event>) -> anyhow::Result<T> + Send,
) -> PyResult<T> {
    crate::train::clear_interrupt();
    let (tx, rx) = channel();
    // (waited on while detached from the interpreter, which wants Sync)
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|scope| {
        // (on a thread of the pool, as the command line's work: see `cli::in_pool`)
        let handle = scope.spawn(move || crate::cli::set_threads(None).and_then(|()| crate::cli::in_pool(|| work(tx))));
        let mut signal: Option<PyErr> = None;
        loop {
            let event = py.detach(|| rx.lock().expect("one waiter").recv_timeout(Duration::from_millis(100)));
            match event {
                Ok(e) => {
                    if let (Some(cb), None) = (progress, &signal) {
                        let d = PyDict::new(py);
                        match e {
                            Event::Line(line) => {
                                d.set_item("kind", "line")?;
                                d.set_item("message", line)?;
                            }
                            Event::Step { done, total, what } => {
                                d.set_item("kind", "step")?;
                                d.set_item("done", done)?;
                                d.set_item("total", total)?;
                                d.set_item("message", what)?;
                            }
                        }
                        if let Err(err) = cb.call1((d,)) {
                            // a failing callback stops the work like Ctrl-C, and is raised
                            crate::train::request_interrupt();
                            signal = Some(err);
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if signal.is_none() {
                if let Err(err) = py.check_signals() {
                    crate::train::request_interrupt();
                    signal = Some(err);
                }
            }
        }
        let result = py.detach(|| handle.join()).map_err(|_| PyValueError::new_err("pada: the work thread panicked"))?;
        match (signal, result) {
            (Some(err), _) => Err(err),
            (None, r) => r.map_err(to_py),
        }
    })
}

/// Training progress as events: the CLI's progress display, its lines sent on.
struct Forward {
    tx: Sender<Event>,
    epochs: usize,
}

impl Progress for Forward {
    fn run_start(&mut self, r: &RunRecord, first_epoch: usize) {
        self.epochs = r.train.epochs;
        let _ = self.tx.send(Event::Line(format!(
            "pada {}: {} in {} on {}, {} epochs from epoch {first_epoch}, batch {}, seed {}",
            r.pada_version,
            r.train.method.name(),
            r.train.space,
            r.data.name,
            r.train.epochs,
            r.train.batch_size,
            r.train.seed
        )));
    }
    fn step(&mut self, p: &StepProgress) {
        // every 16th step is plenty for a progress bar
        if p.step % 16 == 0 || p.step == p.steps {
            let _ = self.tx.send(Event::Step {
                done: (p.epoch * p.steps + p.step) as u64,
                total: (self.epochs * p.steps) as u64,
                what: format!("epoch {}/{} loss {:.3} acc {:.1}%", p.epoch + 1, self.epochs, p.loss, p.accuracy),
            });
        }
    }
    fn epoch(&mut self, m: &EpochMetrics) {
        let _ = self.tx.send(Event::Line(format!(
            "epoch {:>3}/{}: loss {:.4} acc {:.2}% lr {:.4} {:.0} img/s",
            m.epoch + 1,
            self.epochs,
            m.loss,
            m.accuracy,
            m.lr,
            m.images_per_sec
        )));
    }
    fn message(&mut self, line: &str) {
        let _ = self.tx.send(Event::Line(line.to_string()));
    }
}

/// `pada train ARGV...` (the CLI's flags, parsed and checked as the CLI does;
/// CPU only here): trains, then makes the verdict the flags ask for. Returns
/// the run directory.
#[pyfunction]
#[pyo3(signature = (argv, progress = None))]
fn train(py: Python<'_>, argv: Vec<String>, progress: Option<Bound<'_, PyAny>>) -> PyResult<String> {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }
    let args = std::iter::once("train".to_string()).chain(argv);
    let cli = Cli::try_parse_from(args).map_err(|e| {
        let text = e.to_string();
        PyValueError::new_err(text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string())
    })?;
    let plan = cli.train.plan().map_err(to_py)?;
    if plan.device != crate::cli::device::Device::Cpu {
        return Err(PyValueError::new_err(format!(
            "device {}: the Python binding trains on the CPU (use the pada CLI for GPUs)",
            plan.device
        )));
    }
    let dir = plan.dir.clone();
    supervised(py, progress.as_ref(), move |tx| {
        let be = CpuBackend::<f32>::new();
        let mut forward = Forward { tx: tx.clone(), epochs: 0 };
        run::train(&be, plan.config, &plan.dir, &mut forward)?;
        if let Some(spec) = &plan.verdict {
            let _ = tx.send(Event::Line(format!("ranking the architectures of {} with the trained weights...", spec.ground_truth)));
            crate::verdict::judge(&be, &plan.dir, spec, None, true)?;
        }
        Ok(())
    })?;
    Ok(dir.display().to_string())
}

/// (test images, batch size) of an evaluation set.
type EvalKey = (usize, usize);

/// A trained run, opened once: its record, weights and data, held for as many
/// queries as the caller makes.
#[pyclass(name = "NativeRun")]
struct NativeRun {
    dir: PathBuf,
    record: RunRecord,
    be: CpuBackend<f32>,
    net: Supernet<CpuBackend<f32>>,
    data: Data,
    /// The evaluation set of the last (images, batch size) asked for.
    eval: Option<(EvalKey, EvalSet<CpuBackend<f32>>)>,
}

#[pymethods]
impl NativeRun {
    #[new]
    fn new(dir: PathBuf) -> PyResult<Self> {
        let be = CpuBackend::<f32>::new();
        let (record, net) = crate::rank::load_run(&be, &dir).map_err(to_py)?;
        let data = record.train.data.load().map_err(to_py)?;
        Ok(Self { dir, record, be, net, data, eval: None })
    }

    /// config.json, as JSON text.
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.record).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The run's search space.
    fn space(&self) -> String {
        self.record.train.space.to_string()
    }

    /// Test accuracy (%) of each architecture with the supernet's weights on
    /// the first `images` test images (all when None), in order: scored as
    /// `pada rank` scores (batch statistics in batches of `batch_size`, the
    /// CPU's threads over the architectures).
    #[pyo3(signature = (archs, images = None, batch_size = 512, progress = None))]
    fn accuracy<'py>(
        &mut self,
        py: Python<'py>,
        archs: Vec<String>,
        images: Option<usize>,
        batch_size: usize,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let space = self.record.train.space;
        let parsed: Vec<Arch> = archs
            .iter()
            .enumerate()
            .map(|(i, s)| Arch::parse_in(space, s).map_err(|e| PyValueError::new_err(format!("archs[{i}]: {e}"))))
            .collect::<PyResult<_>>()?;
        let n = images.unwrap_or(self.data.test.len());
        if n == 0 {
            return Err(PyValueError::new_err("images must be at least 1"));
        }
        let key = (n.min(self.data.test.len()), batch_size);
        if self.eval.as_ref().map(|(k, _)| *k) != Some(key) {
            let test = self.data.test.subset(&(0..key.0).collect::<Vec<_>>());
            self.eval = Some((key, EvalSet::new(&self.be, &test, &self.data.norm, batch_size)));
        }
        let (be, net, set) = (&self.be, &self.net, &self.eval.as_ref().expect("just made").1);
        let total = parsed.len() as u64;
        let scores = supervised(py, progress.as_ref(), move |tx| {
            let mut out = Vec::with_capacity(parsed.len());
            crate::rank::score(be, net, set, &parsed, |chunk| {
                out.extend(chunk.iter().map(|s| s.accuracy));
                let _ = tx.send(Event::Step { done: out.len() as u64, total, what: "architectures scored".into() });
                anyhow::ensure!(!crate::train::interrupt_requested(), crate::train::Interrupted { epoch: 0, step: out.len(), steps: 0 });
                Ok(())
            })?;
            Ok(out)
        })?;
        Ok(scores.into_pyarray(py))
    }

    /// The run's verdict against `ground_truth` (default: its data's own) on
    /// `archs` architectures (a number or "all") and `images` test images;
    /// written to verdict.json and returned as JSON text.
    #[pyo3(signature = (ground_truth = None, archs = None, images = None, progress = None))]
    fn verdict(
        &self,
        py: Python<'_>,
        ground_truth: Option<String>,
        archs: Option<String>,
        images: Option<usize>,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let (space, data) = (self.record.train.space, &self.record.train.data);
        let ground_truth: TableSource = match ground_truth {
            Some(t) => t.parse().map_err(to_py)?,
            None => space.benchmark(data).ok_or_else(|| {
                PyValueError::new_err(format!("the run's data ({data}) has no built-in ground truth in {space}: give ground_truth"))
            })?,
        };
        let archs = archs.as_deref().unwrap_or("1000").parse().map_err(to_py)?;
        let spec = crate::train::config::VerdictSpec {
            ground_truth,
            images: images.unwrap_or_else(|| crate::verdict::default_images(data)),
            archs,
        };
        let spec = crate::verdict::checked(spec, space).map_err(to_py)?;
        let (be, dir) = (&self.be, &self.dir);
        let v = supervised(py, progress.as_ref(), move |tx| {
            let _ = tx.send(Event::Line(format!("ranking the architectures of {} with the trained weights...", spec.ground_truth)));
            crate::verdict::judge(be, dir, &spec, None, true)
        })?;
        serde_json::to_string(&v).map_err(|e| PyValueError::new_err(e.to_string()))
    }
}

/// Ranking consistency of predictions with a truth, both given by
/// architecture strings: Kendall tau-b, Spearman, Pearson, Kendall tau among
/// the true top 5% and 10%, precision@top-k and the predicted best (JSON text).
#[pyfunction]
fn compare(pred_archs: Vec<String>, pred: Vec<f64>, truth_archs: Vec<String>, truth: Vec<f64>) -> PyResult<String> {
    if pred_archs.len() != pred.len() || truth_archs.len() != truth.len() {
        return Err(PyValueError::new_err("compare: one value per architecture"));
    }
    let parse = |v: &[String], what: &str| -> PyResult<Vec<Arch>> {
        v.iter().enumerate().map(|(i, s)| s.parse::<Arch>().map_err(|e| PyValueError::new_err(format!("{what}[{i}]: {e}")))).collect()
    };
    let table = |archs: Vec<Arch>, values: Vec<f64>| crate::table::ArchTable {
        archs,
        values,
        arch_column: "arch".into(),
        value_column: "value".into(),
    };
    let (p, t) = (table(parse(&pred_archs, "pred")?, pred), table(parse(&truth_archs, "truth")?, truth));
    if let Some(i) = p.values.iter().chain(&t.values).position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!("compare: value {i} is not a finite number")));
    }
    let (archs, pv, tv) = crate::table::join(&p, &t, false);
    let names: Vec<String> = archs.iter().map(|a| a.to_string()).collect();
    let c = Consistency::of(&names, &pv, &tv).map_err(to_py)?;
    serde_json::to_string(&c).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A table (built in by name, or a CSV file): its architecture strings and
/// every numeric column as an array.
#[pyfunction]
fn table<'py>(py: Python<'py>, name: &str) -> PyResult<(Vec<String>, Bound<'py, PyDict>)> {
    let src: TableSource = name.parse().map_err(to_py)?;
    let columns = crate::table::columns(&src).map_err(to_py)?;
    let mut archs: Option<Vec<String>> = None;
    let out = PyDict::new(py);
    for c in &columns {
        // the numeric columns (the architecture column and any text are left out)
        if let Ok(t) = crate::table::read_arch_table(&src, None, c) {
            if *c == t.arch_column {
                continue; // NAS-Bench-Macro's strings are digits
            }
            if archs.is_none() {
                archs = Some(t.archs.iter().map(|a| a.to_string()).collect());
            }
            out.set_item(c, t.values.into_pyarray(py))?;
        }
    }
    let archs = archs.ok_or_else(|| PyValueError::new_err(format!("{name}: no numeric column beside the architectures")))?;
    Ok((archs, out))
}

/// One column of a table as `pada compare` reads it: `column`, else the
/// table's default (a built-in table's own; in a file `accuracy` for
/// predictions, `test_accuracy` for a ground truth).
#[pyfunction]
#[pyo3(signature = (name, column = None, prediction = false))]
fn column<'py>(py: Python<'py>, name: &str, column: Option<&str>, prediction: bool) -> PyResult<(Vec<String>, Bound<'py, PyArray1<f64>>)> {
    let src: TableSource = name.parse().map_err(to_py)?;
    let default = if prediction { src.default_prediction_column() } else { src.default_column() };
    let t = crate::table::read_arch_table(&src, None, column.unwrap_or(default)).map_err(to_py)?;
    Ok((t.archs.iter().map(|a| a.to_string()).collect(), t.values.into_pyarray(py)))
}

/// The architectures one choice away from `arch` (each slot set to each of
/// its other choices), in the space of its string: a search's mutations.
#[pyfunction]
fn neighbours(arch: &str) -> PyResult<Vec<String>> {
    let a: Arch = arch.parse().map_err(|e: crate::arch::ArchError| PyValueError::new_err(e.to_string()))?;
    let space = a.space();
    let mut out = Vec::with_capacity(space.slots() * (space.choices() - 1));
    for slot in 0..space.slots() {
        for choice in (0..space.choices() as u8).filter(|&c| c != a.choices()[slot]) {
            let mut c = a.choices().to_vec();
            c[slot] = choice;
            out.push(Arch::new(space, &c).expect("a valid choice in each slot").to_string());
        }
    }
    Ok(out)
}

/// Every architecture of a space (`unique`: one per isomorphism class).
#[pyfunction]
#[pyo3(signature = (space = "nb201", unique = true))]
fn archs(space: &str, unique: bool) -> PyResult<Vec<String>> {
    let space: Space = space.parse().map_err(to_py)?;
    let mut seen = std::collections::HashSet::new();
    Ok(space.all().filter(|a| !unique || seen.insert(a.canonical())).map(|a| a.to_string()).collect())
}

/// Parameter count, FLOPs and zero-cost proxies of architectures at
/// initialisation, as `pada proxies` computes them; a dict of arrays.
#[pyfunction]
#[pyo3(signature = (archs, data = "embedded", channels = None, cells = None, batch_size = 64, seed = 0, progress = None))]
#[allow(clippy::too_many_arguments)]
fn proxies<'py>(
    py: Python<'py>,
    archs: Vec<String>,
    data: &str,
    channels: Option<usize>,
    cells: Option<usize>,
    batch_size: usize,
    seed: u64,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let parsed: Vec<Arch> = archs
        .iter()
        .enumerate()
        .map(|(i, s)| s.parse::<Arch>().map_err(|e| PyValueError::new_err(format!("archs[{i}]: {e}"))))
        .collect::<PyResult<_>>()?;
    let space = parsed.first().map_or(Space::default(), |a| a.space());
    if let Some(other) = parsed.iter().find(|a| a.space() != space) {
        return Err(PyValueError::new_err(format!("archs: {other} is not of {space}, as the first is: one space at a time")));
    }
    if batch_size == 0 {
        return Err(PyValueError::new_err("batch_size must be at least 1"));
    }
    let spec: crate::data::DataSpec = data.parse().map_err(to_py)?;
    let total = parsed.len() as u64;
    let values = supervised(py, progress.as_ref(), move |tx| {
        let data = spec.load()?;
        let preset = if spec == crate::data::DataSpec::Embedded {
            crate::train::config::Preset::Laptop
        } else {
            crate::train::config::Preset::Official
        };
        let size = preset.size(space, &spec);
        let config = crate::supernet::SupernetConfig {
            space,
            channels: channels.unwrap_or(size.channels),
            cells: cells.unwrap_or(size.cells),
            classes: data.classes(),
            input: data.shape(),
        };
        let be = CpuBackend::<f32>::new();
        crate::proxies::for_archs(&be, config, &data, batch_size, seed, &parsed, |k, _| {
            let _ = tx.send(Event::Step { done: k as u64 + 1, total, what: "architectures measured".into() });
        })
    })?;
    let out = PyDict::new(py);
    for (k, column) in crate::proxies::COLUMNS.iter().enumerate() {
        out.set_item(*column, values.iter().map(|p| p.values()[k]).collect::<Vec<f64>>().into_pyarray(py))?;
    }
    Ok(out)
}

/// CPU threads for all of pada's work in this process (once, before any work).
#[pyfunction]
fn set_threads(n: usize) -> PyResult<()> {
    crate::cli::set_threads(Some(n)).map_err(to_py)
}

/// The native part of the `pada` Python package.
#[pymodule]
fn _pada(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(table, m)?)?;
    m.add_function(wrap_pyfunction!(column, m)?)?;
    m.add_function(wrap_pyfunction!(archs, m)?)?;
    m.add_function(wrap_pyfunction!(neighbours, m)?)?;
    m.add_function(wrap_pyfunction!(proxies, m)?)?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_class::<NativeRun>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
