//! The engine thread: owns the backend (and so the model and every installed adapter), takes
//! `Command`s and answers with `Event`s. A job that fails or panics becomes `Event::Failed` and
//! the thread keeps serving; cancellation is checked between tiles.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, unbounded};

use crate::backends::{AdapterInfo, Backend, BackendKind, MemoryReport, Provider, ReferenceBackend, create_backend};
use crate::error::{EngineError, Result};
use crate::imageio::RgbImage;
use crate::job::{EditJob, JobId, JobStats, run_edit};
use crate::model::Model;

/// What the UI (or CLI) asks of the engine.
#[derive(Debug)]
pub enum Command {
    Edit(EditJob),
    Cancel(JobId),
    InstallAdapter(PathBuf),
    /// Installs a float teacher under its tool's name + [`TEACHER_SUFFIX`], beside the int8 tool.
    InstallTeacher(PathBuf),
    RemoveAdapter(String),
    /// The backend, and the execution provider when it is ONNX Runtime.
    SetBackend(BackendKind, Provider),
    Shutdown,
}

/// What the engine reports.
#[derive(Debug, Clone)]
pub enum Event {
    BackendReady { backend: BackendKind, device: String },
    BackendUnavailable { requested: BackendKind, reason: String },
    AdapterInstalled(AdapterInfo),
    AdapterRejected { path: PathBuf, error: String },
    AdapterRemoved { name: String },
    Progress { job: JobId, done: usize, total: usize },
    Done { job: JobId, image: Arc<RgbImage>, stats: JobStats },
    Failed { job: JobId, error: String },
    Cancelled { job: JobId },
    Memory(MemoryReport),
}

/// A teacher of tool `denoise` is installed as `denoise@float`.
pub const TEACHER_SUFFIX: &str = "@float";

/// Called after every event so a UI can repaint (eframe's `request_repaint`).
pub type Waker = Box<dyn Fn() + Send>;

/// The UI's end of the engine: send commands, drain events.
pub struct EngineHandle {
    commands: Sender<Command>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl EngineHandle {
    /// Starts the engine thread on `model` and installs `adapters` (each reported as installed or
    /// rejected).
    pub fn spawn(model: Model, adapters: Vec<PathBuf>, waker: Option<Waker>) -> Result<Self> {
        let backend = Box::new(ReferenceBackend::new(model.clone()));
        Self::spawn_with_backend(model, backend, adapters, waker)
    }

    /// As [`EngineHandle::spawn`], on the backend `kind` names (see [`create_backend`]).
    pub fn spawn_kind(
        model: Model,
        kind: BackendKind,
        provider: Provider,
        adapters: Vec<PathBuf>,
        waker: Option<Waker>,
    ) -> Result<Self> {
        let backend = create_backend(kind, provider, &model)?;
        Self::spawn_with_backend(model, backend, adapters, waker)
    }

    /// As [`EngineHandle::spawn`], on a given backend.
    pub fn spawn_with_backend(
        model: Model,
        backend: Box<dyn Backend>,
        adapters: Vec<PathBuf>,
        waker: Option<Waker>,
    ) -> Result<Self> {
        let (command_tx, command_rx) = unbounded();
        let (event_tx, event_rx) = unbounded();
        let thread = std::thread::Builder::new()
            .name("prism-engine".into())
            .spawn(move || {
                let mut engine = Engine::new(model, backend, command_rx, event_tx, waker);
                for path in adapters {
                    engine.install(path);
                }
                engine.run();
            })
            .map_err(|e| EngineError::Job(format!("cannot start the engine thread: {e}")))?;
        Ok(Self { commands: command_tx, events: event_rx, thread: Some(thread) })
    }

    pub fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| EngineError::Job("the engine has stopped".into()))
    }

    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event; None on timeout or when the engine is gone.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        // The engine may already be gone; then there is nothing to stop.
        let _ = self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Engine {
    backend: Box<dyn Backend>,
    model: Model,
    commands: Receiver<Command>,
    events: Sender<Event>,
    waker: Option<Waker>,
    /// Commands that arrived while a job ran and were not for it.
    pending: VecDeque<Command>,
    /// Installed adapter files (whether each is a teacher, its name), to install again on a new
    /// backend.
    installed: Vec<(PathBuf, bool, String)>,
}

impl Engine {
    fn new(
        model: Model,
        backend: Box<dyn Backend>,
        commands: Receiver<Command>,
        events: Sender<Event>,
        waker: Option<Waker>,
    ) -> Self {
        let engine = Self { backend, model, commands, events, waker, pending: VecDeque::new(), installed: Vec::new() };
        engine.emit(Event::BackendReady { backend: engine.backend.kind(), device: engine.backend.device() });
        engine
    }

    fn emit(&self, event: Event) {
        // A closed channel means the UI is gone; the next recv ends the loop.
        let _ = self.events.send(event);
        if let Some(waker) = &self.waker {
            waker();
        }
    }

    fn run(&mut self) {
        loop {
            let command = match self.pending.pop_front() {
                Some(command) => command,
                None => match self.commands.recv() {
                    Ok(command) => command,
                    Err(_) => return,
                },
            };
            match command {
                Command::Shutdown => return,
                Command::Edit(job) => self.edit(job),
                // The job is not running: it already ended (nothing to do) or is still queued.
                Command::Cancel(job) => {
                    if remove_queued_edit(&mut self.pending, job) {
                        self.emit(Event::Cancelled { job });
                    }
                }
                Command::InstallAdapter(path) => self.install(path),
                Command::InstallTeacher(path) => self.install_teacher(path),
                Command::RemoveAdapter(name) => {
                    if self.backend.remove(&name) {
                        self.installed.retain(|(_, _, installed)| *installed != name);
                        self.emit(Event::AdapterRemoved { name });
                        self.emit(Event::Memory(self.backend.memory()));
                    }
                }
                Command::SetBackend(kind, provider) => self.set_backend(kind, provider),
            }
        }
    }

    fn install(&mut self, path: PathBuf) {
        let backend = &mut self.backend;
        let model = &self.model;
        let result = catch_unwind(AssertUnwindSafe(|| model.read_adapter(&path).and_then(|a| backend.install(&a))));
        match flatten_panic(result) {
            Ok(info) => {
                self.installed.push((path, false, info.meta.name.clone()));
                tracing::info!(adapter = %info.meta.name, "adapter installed");
                self.emit(Event::AdapterInstalled(info));
                self.emit(Event::Memory(self.backend.memory()));
            }
            Err(error) => self.emit(Event::AdapterRejected { path, error }),
        }
    }

    fn install_teacher(&mut self, path: PathBuf) {
        let backend = &mut self.backend;
        let model = &self.model;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut teacher = model.read_adapter(&path)?;
            teacher.meta.name.push_str(TEACHER_SUFFIX);
            backend.install(&teacher)
        }));
        match flatten_panic(result) {
            Ok(info) => {
                self.installed.push((path, true, info.meta.name.clone()));
                self.emit(Event::AdapterInstalled(info));
            }
            Err(error) => self.emit(Event::AdapterRejected { path, error }),
        }
    }

    /// Moves to the backend `kind` names; every installed adapter is installed on it again. When
    /// it cannot start, the current backend stays and the UI is told why.
    fn set_backend(&mut self, kind: BackendKind, provider: Provider) {
        let model = &self.model;
        match flatten_panic(catch_unwind(AssertUnwindSafe(|| create_backend(kind, provider, model)))) {
            // Already on the CPU backend: nothing to move.
            Ok(backend) if backend.kind() == BackendKind::Reference && self.backend.kind() == BackendKind::Reference => {
                self.emit(Event::BackendReady { backend: self.backend.kind(), device: self.backend.device() });
            }
            Ok(backend) => {
                self.backend = backend;
                for (path, teacher, _) in std::mem::take(&mut self.installed) {
                    if teacher {
                        self.install_teacher(path);
                    } else {
                        self.install(path);
                    }
                }
                self.emit(Event::BackendReady { backend: self.backend.kind(), device: self.backend.device() });
                self.emit(Event::Memory(self.backend.memory()));
            }
            Err(error) => self.emit(Event::BackendUnavailable {
                requested: kind,
                reason: format!("{error}; staying on the {} backend ({})", self.backend.kind().name(), self.backend.device()),
            }),
        }
    }

    fn edit(&mut self, job: EditJob) {
        let _span = tracing::info_span!("edit", job = job.id).entered();
        let id = job.id;
        let commands = self.commands.clone();
        let events = self.events.clone();
        let waker = &self.waker;
        let pending = &mut self.pending;
        let backend = self.backend.as_mut();
        let mut progress = |done: usize, total: usize| {
            // Keep commands that are not for this job for later; stop on our Cancel.
            loop {
                match commands.try_recv() {
                    Ok(Command::Cancel(target)) if target == id => return false,
                    Ok(Command::Cancel(target)) => {
                        if remove_queued_edit(pending, target) {
                            let _ = events.send(Event::Cancelled { job: target });
                        }
                    }
                    Ok(other) => pending.push_back(other),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let _ = events.send(Event::Progress { job: id, done, total });
            if let Some(waker) = waker {
                waker();
            }
            true
        };
        let result = catch_unwind(AssertUnwindSafe(|| run_edit(backend, &job, &mut progress)));
        match result {
            Ok(Ok((image, stats))) => self.emit(Event::Done { job: id, image: Arc::new(image), stats }),
            Ok(Err(EngineError::Cancelled)) => self.emit(Event::Cancelled { job: id }),
            Ok(Err(error)) => self.emit(Event::Failed { job: id, error: error.to_string() }),
            Err(panic) => self.emit(Event::Failed { job: id, error: format!("internal error: {}", panic_message(&panic)) }),
        }
    }
}

/// Drops a queued edit; true when there was one.
fn remove_queued_edit(pending: &mut VecDeque<Command>, id: JobId) -> bool {
    let before = pending.len();
    pending.retain(|c| !matches!(c, Command::Edit(job) if job.id == id));
    pending.len() != before
}

fn flatten_panic<T>(result: std::thread::Result<Result<T>>) -> std::result::Result<T, String> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(format!("internal error: {}", panic_message(&panic))),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the job crashed".into())
}
