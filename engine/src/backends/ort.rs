//! The delegate path: the exported ONNX graph (engine/src/onnx.rs) run by ONNX Runtime, loaded
//! once; the active adapter's int8 tensors are fed as inputs on every run, so a tool switch
//! rebuilds nothing. The execution provider is chosen by the user (`Provider`): QNN, DirectML or
//! CoreML where the loaded runtime has it, the CPU provider otherwise and behind each delegate.
//!
//! ONNX Runtime is loaded at run time (`load-dynamic`): from `ORT_DYLIB_PATH`, or from the
//! `onnxruntime` Python wheel (`pip install onnxruntime`), whose `capi/` folder carries the
//! shared library.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor as OrtTensor;

use super::{AdapterBank, AdapterInfo, Backend, BackendKind, Installed, MemoryReport, Precision, Provider};
use crate::adapter::{Adapter, AdapterPrecision};
use crate::error::{EngineError, Result};
use crate::mix::Mix;
use crate::model::Model;
use crate::unet::UnetConfig;

fn ort_error(message: impl std::fmt::Display) -> EngineError {
    EngineError::Backend(format!("ONNX Runtime: {message}"))
}

/// The ONNX Runtime shared library: `ORT_DYLIB_PATH`, the one bundled beside the executable
/// (release zips; `../Frameworks` in a macOS app), or the one in the `onnxruntime` wheel.
pub fn find_library() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(path));
    }
    if let Some(bundled) = bundled_library() {
        return Ok(bundled);
    }
    let python = std::env::var("PRISM_PYTHON").unwrap_or_else(|_| if cfg!(windows) { "python".into() } else { "python3".into() });
    let out = std::process::Command::new(&python)
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let capi = out.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let prefix = if cfg!(windows) { "onnxruntime" } else { "libonnxruntime" };
    let suffix = if cfg!(windows) {
        ".dll"
    } else if cfg!(target_os = "macos") {
        ".dylib"
    } else {
        ".so"
    };
    let found = capi.as_ref().and_then(|dir| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .is_some_and(|n| n.starts_with(prefix) && n.contains(suffix) && !n.contains("providers"))
            })
            .collect();
        files.sort();
        files.pop()
    });
    found.ok_or_else(|| {
        EngineError::Backend(
            "ONNX Runtime was not found: set ORT_DYLIB_PATH to libonnxruntime, or `pip install onnxruntime`; or use --backend reference".into(),
        )
    })
}

/// The runtime a release bundle carries: `onnxruntime.dll` beside `prism.exe`,
/// `libonnxruntime.dylib` in the app's `Frameworks`, `libonnxruntime.so` beside the binary.
fn bundled_library() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let candidates = if cfg!(windows) {
        vec![dir.join("onnxruntime.dll")]
    } else if cfg!(target_os = "macos") {
        vec![dir.join("../Frameworks/libonnxruntime.dylib"), dir.join("libonnxruntime.dylib")]
    } else {
        vec![dir.join("libonnxruntime.so")]
    };
    candidates.into_iter().find(|path| path.is_file())
}

/// ONNX Runtime as `prism doctor` reports it: the library found and loaded, or why not, and
/// the execution providers it offers.
pub fn probe() -> Result<(PathBuf, Vec<Provider>)> {
    let library = find_library()?;
    if !library.is_file() {
        return Err(ort_error(format!("{} does not exist", library.display())));
    }
    environment(&library)?;
    // Symlinks name the version (libonnxruntime.so -> libonnxruntime.so.1.32.0).
    let resolved = std::fs::canonicalize(&library).unwrap_or(library);
    Ok((resolved, available_providers()?))
}

/// One conv's LoRA inputs: shapes, and the codes of zero-valued A and B.
struct LoraInputs {
    a_shape: [i64; 4],
    b_shape: [i64; 4],
    a: Vec<i8>,
    b: Vec<i8>,
}

/// One adapter's inputs, padded to the export's rank.
struct OrtAdapter {
    info: AdapterInfo,
    alpha: f32,
    /// Per conv: A `[R, cin, k, k]` and B `[cout, R, 1, 1]` int8 codes.
    tensors: BTreeMap<String, (Vec<i8>, Vec<i8>)>,
}

impl Installed for OrtAdapter {
    fn info(&self) -> AdapterInfo {
        self.info.clone()
    }
}

pub struct OrtBackend {
    model: Model,
    session: Session,
    provider: String,
    rank: usize,
    /// Per conv: the LoRA input shapes, and zero-valued tensors fed when no adapter covers it.
    zeros: BTreeMap<String, LoraInputs>,
    adapters: AdapterBank<OrtAdapter>,
    bound: Option<(String, f32)>,
    bytes: usize,
}

impl OrtBackend {
    /// Exports the int8 graph of `model`, loads ONNX Runtime and builds the one session on
    /// `provider` (the CPU provider behind a delegate, for what the delegate does not place).
    pub fn new(model: Model, provider: Provider) -> Result<Self> {
        let library = find_library()?;
        let rank = model.config().max_rank;
        let graph = crate::onnx::export(&model, Precision::Int8, rank)?;
        let environment = environment(&library)?;
        let provider = choose_provider(provider, &library)?;
        let mut providers = vec![dispatch(provider)];
        if provider != Provider::Cpu {
            providers.push(dispatch(Provider::Cpu));
        }
        let session = Session::builder(&environment)
            .map_err(ort_error)?
            .with_execution_providers(providers)
            .map_err(ort_error)?
            .commit_from_memory(&graph)
            .map_err(ort_error)?;
        let mut zeros = BTreeMap::new();
        for spec in model.config().convs() {
            let grid = model
                .profile
                .lora
                .get(&spec.name)
                .ok_or_else(|| ort_error(format!("the profile has no LoRA grid for '{}'", spec.name)))?;
            let a_shape = [rank as i64, spec.cin as i64, spec.k as i64, spec.k as i64];
            let b_shape = [spec.cout as i64, rank as i64, 1, 1];
            let a = vec![grid.a.zero_point as i8; rank * spec.cin * spec.k * spec.k];
            let b = vec![grid.b.zero_point as i8; spec.cout * rank];
            zeros.insert(spec.name.clone(), LoraInputs { a_shape, b_shape, a, b });
        }
        let library_name = library.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let provider = match provider {
            Provider::Cpu => format!("ONNX Runtime (CPU execution provider, {library_name})"),
            delegate => format!("ONNX Runtime ({}, CPU fallback, {library_name})", delegate.runtime_name()),
        };
        Ok(Self { model, session, provider, rank, zeros, adapters: AdapterBank::default(), bound: None, bytes: graph.len() })
    }
}

/// The process's one ONNX Runtime environment, made on first use and kept: ONNX Runtime allows
/// one per process, and a second `build` fails even after the first is dropped — so switching to
/// this backend a second time (or two backends in one process) must share it.
fn environment(library: &std::path::Path) -> Result<ort::environment::Environment> {
    static ENVIRONMENT: std::sync::Mutex<Option<ort::environment::Environment>> = std::sync::Mutex::new(None);
    // A poisoned lock only means another thread panicked while holding it; the Option is intact.
    let mut made = ENVIRONMENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(environment) = made.as_ref() {
        return Ok(environment.clone());
    }
    // A failure is not kept: the runtime may be installed before the next try.
    let environment = ort::init_from(library)
        .map_err(|e| ort_error(format!("cannot load {}: {e}", library.display())))?
        .build()
        .map_err(ort_error)?;
    *made = Some(environment.clone());
    Ok(environment)
}

/// The providers the loaded ONNX Runtime was built with, of those Prism knows, delegates first.
fn available_providers() -> Result<Vec<Provider>> {
    use ort::ep::ExecutionProvider;
    let mut found = Vec::new();
    for (provider, available) in [
        (Provider::Qnn, ort::ep::QNN::is_available()),
        (Provider::DirectMl, ort::ep::DirectML::is_available()),
        (Provider::CoreMl, ort::ep::CoreML::is_available()),
        (Provider::Cpu, ort::ep::CPU::is_available()),
    ] {
        if available.map_err(ort_error)? {
            found.push(provider);
        }
    }
    Ok(found)
}

/// The provider `requested` names ([`Provider::resolve`]), checked against what `library` offers.
fn choose_provider(requested: Provider, library: &std::path::Path) -> Result<Provider> {
    let offered = available_providers()?;
    let chosen = requested.resolve(&offered);
    if !offered.contains(&chosen) {
        let names: Vec<_> = offered.iter().map(|p| p.name()).collect();
        return Err(ort_error(format!(
            "{} was built without the {} provider ({}); it offers: {}. Install the ONNX Runtime build that has it (onnxruntime-qnn, onnxruntime-directml) and point ORT_DYLIB_PATH at it",
            library.display(),
            chosen.name(),
            chosen.runtime_name(),
            names.join(", ")
        )));
    }
    Ok(chosen)
}

/// The registration of `provider`; a delegate that fails to register is an error (never a silent
/// fall back to the CPU, so the device named is the one that ran).
fn dispatch(provider: Provider) -> ort::ep::ExecutionProviderDispatch {
    match provider {
        Provider::Auto | Provider::Cpu => ort::ep::CPU::default().build(),
        Provider::DirectMl => ort::ep::DirectML::default().build(),
        Provider::CoreMl => ort::ep::CoreML::default().build(),
        // The HTP backend library is the NPU; it ships beside QNN's ONNX Runtime.
        Provider::Qnn => {
            let htp = if cfg!(windows) { "QnnHtp.dll" } else { "libQnnHtp.so" };
            ort::ep::QNN::default().with_backend_path(htp).build()
        }
    }
    .error_on_failure()
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn device(&self) -> String {
        self.provider.clone()
    }

    fn install(&mut self, adapter: &Adapter) -> Result<AdapterInfo> {
        self.model.check_adapter(adapter)?;
        // The graph's LoRA inputs are int8 on the shared grids: a float adapter goes on them first.
        let quantized;
        let source = if adapter.meta.precision == AdapterPrecision::Float {
            quantized = adapter.quantize_after_training(&self.model.profile)?;
            &quantized
        } else {
            adapter
        };
        let rank = source.meta.rank;
        if rank > self.rank {
            return Err(EngineError::Adapter(format!(
                "adapter '{}' has rank {rank}; the exported graph takes at most {}",
                adapter.meta.name, self.rank
            )));
        }
        let mut tensors = BTreeMap::new();
        for (layer, lora) in &source.layers {
            let (a, b) = lora
                .codes
                .clone()
                .ok_or_else(|| EngineError::Adapter(format!("'{layer}' of '{}' has no int8 codes", adapter.meta.name)))?;
            let grid = self.model.profile.lora[layer];
            let mut a = a;
            a.resize(self.rank * lora.a_shape[1] * lora.a_shape[2] * lora.a_shape[3], grid.a.zero_point as i8);
            let mut padded_b = Vec::with_capacity(lora.b_shape[0] * self.rank);
            for row in b.chunks(rank) {
                padded_b.extend_from_slice(row);
                padded_b.extend(std::iter::repeat_n(grid.b.zero_point as i8, self.rank - rank));
            }
            tensors.insert(layer.clone(), (a, padded_b));
        }
        let info = AdapterInfo {
            meta: adapter.meta.clone(),
            quantized_on_load: adapter.meta.precision == AdapterPrecision::Float,
            stored_bytes: adapter.stored_bytes(),
        };
        Ok(self.adapters.insert(OrtAdapter { info, alpha: adapter.meta.alpha, tensors }))
    }

    fn remove(&mut self, name: &str) -> bool {
        self.bound = None;
        self.adapters.remove(name)
    }

    fn installed(&self) -> Vec<AdapterInfo> {
        self.adapters.infos()
    }

    fn bind(&mut self, mix: &Mix, strength: f32, precision: Precision) -> Result<()> {
        if precision == Precision::Float {
            return Err(EngineError::Job(
                "the ort backend runs the int8 graph; use --precision int8, or another backend for float".into(),
            ));
        }
        match self.adapters.resolve(mix)?.as_slice() {
            [] => self.bound = None,
            [(adapter, weight)] => self.bound = Some((adapter.info.meta.name.clone(), adapter.alpha * weight * strength)),
            _ => {
                return Err(EngineError::Job(
                    "the ort backend binds one adapter at a time (its graph has one alpha input); blend on the reference or wgpu backend".into(),
                ));
            }
        }
        Ok(())
    }

    fn forward(&mut self, input: &Tensor) -> Result<Tensor> {
        let (n, h, w, c) = input.dims4()?;
        if n != 1 || c != 4 {
            return Err(EngineError::Model(format!("model input must be [1,H,W,4], got {:?}", input.dims())));
        }
        let nhwc = input.flatten_all()?.to_vec1::<f32>()?;
        let mut nchw = vec![0f32; nhwc.len()];
        for (i, v) in nhwc.iter().enumerate() {
            let (pixel, channel) = (i / c, i % c);
            nchw[channel * h * w + pixel] = *v;
        }
        let (adapter, alpha) = match &self.bound {
            Some((name, alpha)) => (self.adapters.get(name).ok(), *alpha),
            None => (None, 0.0),
        };
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(2 + 2 * self.zeros.len());
        feeds.push(("image".into(), OrtTensor::from_array(([1i64, 4, h as i64, w as i64], nchw)).map_err(ort_error)?.into()));
        feeds.push(("alpha".into(), OrtTensor::from_array(([1i64], vec![alpha])).map_err(ort_error)?.into()));
        for (layer, zero) in &self.zeros {
            let (a, b) = adapter.and_then(|ad| ad.tensors.get(layer)).map_or((&zero.a, &zero.b), |(a, b)| (a, b));
            feeds.push((
                format!("{layer}.lora_A").into(),
                OrtTensor::from_array((zero.a_shape, a.clone())).map_err(ort_error)?.into(),
            ));
            feeds.push((
                format!("{layer}.lora_B").into(),
                OrtTensor::from_array((zero.b_shape, b.clone())).map_err(ort_error)?.into(),
            ));
        }
        let outputs = self.session.run(feeds).map_err(ort_error)?;
        let (_, residual) = outputs["residual"].try_extract_tensor::<f32>().map_err(ort_error)?;
        let mut out = vec![0f32; h * w * 3];
        for (i, v) in residual.iter().enumerate() {
            let (channel, pixel) = (i / (h * w), i % (h * w));
            out[pixel * 3 + channel] = *v;
        }
        Ok(Tensor::from_vec(out, (1, h, w, 3), &Device::Cpu)?)
    }

    fn memory(&self) -> MemoryReport {
        MemoryReport { base_bytes: self.bytes, adapter_bytes: self.adapters.stored_bytes(), adapters: self.adapters.len() }
    }

    fn config(&self) -> &UnetConfig {
        self.model.config()
    }
}
