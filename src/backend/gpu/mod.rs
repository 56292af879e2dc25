//! The GPU backend: device memory and the launch machinery shared by a real
//! NVIDIA GPU through cudarc (feature `cuda`) and the CUDA emulator (feature
//! `cuda-emu`), so that the emulator tests it. Each op family's launches (grid,
//! block, arguments, workspaces) live beside its kernel, in
//! `src/ops/<op>/launch.rs`.
//!
//! All work goes to one stream in order, so a buffer returned to the pool can
//! be handed out again at once: whatever reuses it runs after the kernels that
//! used it. Nothing here waits for the device except `download` and `timed`.

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "cuda-emu")]
pub mod emu;

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytemuck::Pod;

use super::{ElementwiseOps, LaunchStat, Memory, Precision};

// `Kernel`: every kernel of kernels/*.cu (their PADA_KERNEL lines), by build.rs.
include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// Where kernels run: device memory, copies, launches.
pub trait Device: Send + Sync + 'static {
    fn name(&self) -> String;
    /// `bytes` of device memory (never 0 bytes).
    fn malloc(&self, bytes: usize) -> u64;
    fn free(&self, ptr: u64);
    fn htod(&self, src: &[u8], dst: u64);
    fn dtoh(&self, src: u64, dst: &mut [u8]);
    /// Launches `kernel`; `params` is the kernel-parameter array of cuLaunchKernel.
    fn launch(&self, kernel: Kernel, grid: [u32; 3], block: [u32; 3], smem: u32, params: &mut [*mut c_void]);
    fn synchronize(&self);
    /// Seconds of device time `f`'s work took.
    fn timed<R>(&self, f: impl FnOnce() -> R) -> (R, f64) {
        self.synchronize();
        let t = std::time::Instant::now();
        let r = f();
        self.synchronize();
        (r, t.elapsed().as_secs_f64())
    }
}

/// Free device allocations by size class (bytes), returned by dropped buffers.
struct Pool<D: Device> {
    dev: Arc<D>,
    free: Mutex<HashMap<usize, Vec<u64>>>,
    held: AtomicUsize,
}

impl<D: Device> Drop for Pool<D> {
    fn drop(&mut self) {
        for (_, ptrs) in self.free.lock().expect("pool lock").drain() {
            ptrs.into_iter().for_each(|p| self.dev.free(p));
        }
    }
}

/// A device buffer of 4-byte elements (f32 or i32); back to the pool on drop.
pub struct GpuBuf<D: Device> {
    pub(crate) ptr: u64,
    pub(crate) len: usize,
    class: usize,
    pool: Arc<Pool<D>>,
}

impl<D: Device> GpuBuf<D> {
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
}

impl<D: Device> Drop for GpuBuf<D> {
    fn drop(&mut self) {
        self.pool.free.lock().expect("pool lock").entry(self.class).or_default().push(self.ptr);
    }
}

/// Size classes an eighth of a power of two apart (in bytes, at least 256).
fn size_class(bytes: usize) -> usize {
    let bytes = bytes.max(256);
    let step = 1usize << (usize::BITS - 1 - bytes.leading_zeros()).saturating_sub(3);
    bytes.div_ceil(step) * step
}

/// One kernel launch's parameters, each stored at a stable address.
#[derive(Default)]
pub struct Args {
    words: Vec<u64>,
    starts: Vec<usize>,
}

impl Args {
    pub(crate) fn push<T: Pod>(mut self, v: &T) -> Self {
        let bytes = bytemuck::bytes_of(v);
        let start = self.words.len();
        self.words.resize(start + bytes.len().div_ceil(8), 0);
        bytemuck::cast_slice_mut::<u64, u8>(&mut self.words[start..])[..bytes.len()].copy_from_slice(bytes);
        self.starts.push(start);
        self
    }
    pub(crate) fn buf<D: Device>(self, b: &GpuBuf<D>) -> Self {
        self.push(&b.ptr)
    }
    pub(crate) fn opt<D: Device>(self, b: Option<&GpuBuf<D>>) -> Self {
        self.push(&b.map_or(0u64, |b| b.ptr))
    }
    pub(crate) fn i32(self, v: i32) -> Self {
        self.push(&v)
    }
    pub(crate) fn i64(self, v: i64) -> Self {
        self.push(&v)
    }
    pub(crate) fn f32(self, v: f32) -> Self {
        self.push(&v)
    }
    pub(crate) fn f64(self, v: f64) -> Self {
        self.push(&v)
    }
    pub(crate) fn u64(self, v: u64) -> Self {
        self.push(&v)
    }
    fn params(&mut self) -> Vec<*mut c_void> {
        let base = self.words.as_mut_ptr();
        // SAFETY: every start indexes into `words`, which is not resized any more.
        self.starts.iter().map(|&s| unsafe { base.add(s) } as *mut c_void).collect()
    }
}

/// Whether a GPU can run the convolutions in `precision`: tensor-core
/// precisions need an sm_80 or newer GPU (`compute_capability`) and a kernel
/// image with the mma instructions, which an image JIT-compiled from PTX
/// older than compute_80 lacks (`image_arch`, see
/// [`GpuBackend::image_arch`]; `embedded` lists the fatbins' images for the
/// message).
pub fn check_precision(
    precision: Precision,
    gpu: &str,
    compute_capability: (i32, i32),
    image_arch: i32,
    embedded: &[&str],
) -> anyhow::Result<()> {
    if !precision.tensor_cores() {
        return Ok(());
    }
    let (major, minor) = compute_capability;
    if compute_capability < (8, 0) {
        anyhow::bail!(
            "--precision {precision} needs TF32/BF16 tensor cores (sm_80 or newer); {gpu} is sm_{major}{minor}: use --precision fp32"
        );
    }
    if image_arch < 800 {
        anyhow::bail!(
            "--precision {precision}: {gpu} (sm_{major}{minor}) runs the kernels as JIT-compiled from PTX for compute_{}, which has no TF32/BF16 tensor-core instructions (this pada embeds {}); rebuild with PADA_CUDA_ARCHS={major}{minor} (or with compute_80 in the list), or use --precision fp32",
            image_arch / 10,
            embedded.join(", ")
        );
    }
    Ok(())
}

pub(crate) const THREADS: u32 = 256;

pub(crate) fn blocks_for(n: usize) -> u32 {
    n.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32
}

/// Grid-stride kernels need no more blocks than this.
fn strided_blocks(n: usize) -> u32 {
    blocks_for(n).min(4096)
}

/// Launches and seconds per kernel, while profiling.
type LaunchCounts = HashMap<Kernel, (usize, f64)>;

pub struct GpuBackend<D: Device> {
    dev: Arc<D>,
    pool: Arc<Pool<D>>,
    poison: bool,
    precision: Precision,
    /// Launch counts and seconds per kernel while profiling.
    profile: Arc<Mutex<Option<LaunchCounts>>>,
}

impl<D: Device> GpuBackend<D> {
    pub fn new(dev: D) -> Self {
        let dev = Arc::new(dev);
        Self {
            pool: Arc::new(Pool { dev: dev.clone(), free: Mutex::new(HashMap::new()), held: AtomicUsize::new(0) }),
            dev,
            poison: false,
            precision: Precision::Fp32,
            profile: Arc::new(Mutex::new(None)),
        }
    }
    /// The convolutions' arithmetic (FP32 unless set).
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// Fresh buffers filled with NaN (for tests).
    pub fn poisoned(dev: D) -> Self {
        Self { poison: true, ..Self::new(dev) }
    }
    pub fn device(&self) -> &D {
        &self.dev
    }

    pub(crate) fn raw_alloc(&self, len: usize) -> GpuBuf<D> {
        let class = size_class(len * 4);
        let reused = self.pool.free.lock().expect("pool lock").get_mut(&class).and_then(|v| v.pop());
        let ptr = reused.unwrap_or_else(|| {
            self.pool.held.fetch_add(class, Ordering::Relaxed);
            self.dev.malloc(class)
        });
        GpuBuf { ptr, len, class, pool: self.pool.clone() }
    }

    pub(crate) fn launch(&self, k: Kernel, grid: [u32; 3], block: [u32; 3], smem: u32, mut args: Args) {
        let mut params = args.params();
        let mut profile = self.profile.lock().expect("profile lock");
        match profile.as_mut() {
            None => self.dev.launch(k, grid, block, smem, &mut params),
            Some(stats) => {
                let ((), secs) = self.dev.timed(|| self.dev.launch(k, grid, block, smem, &mut params));
                let e = stats.entry(k).or_insert((0, 0.0));
                *e = (e.0 + 1, e.1 + secs);
            }
        }
    }
    pub(crate) fn launch1d(&self, k: Kernel, n: usize, args: Args) {
        if n > 0 {
            self.launch(k, [blocks_for(n), 1, 1], [THREADS, 1, 1], 0, args);
        }
    }
    pub(crate) fn launch_strided(&self, k: Kernel, n: usize, args: Args) {
        if n > 0 {
            self.launch(k, [strided_blocks(n), 1, 1], [THREADS, 1, 1], 0, args);
        }
    }
    pub(crate) fn one_thread(&self, k: Kernel, args: Args) {
        self.launch(k, [1, 1, 1], [32, 1, 1], 0, args);
    }
    /// The architecture of the conv2d kernels' image the driver loaded:
    /// `__CUDA_ARCH__` of its machine code or of the PTX it JIT-compiled (800
    /// for sm_80 or compute_80, ...), 0 in the emulator.
    pub fn image_arch(&self) -> i32 {
        let out = self.raw_alloc(1);
        self.one_thread(Kernel::Conv2dImageArch, Args::default().buf(&out));
        let mut v = [0i32; 1];
        self.dev.dtoh(out.ptr, bytemuck::cast_slice_mut(&mut v));
        v[0]
    }

    pub(crate) fn upload_pod<T: Pod>(&self, items: &[T]) -> GpuBuf<D> {
        let bytes: &[u8] = bytemuck::cast_slice(items);
        let b = self.raw_alloc(bytes.len().div_ceil(4).max(1));
        if !bytes.is_empty() {
            self.dev.htod(bytes, b.ptr);
        }
        b
    }
}

/// A per-channel reduction over `channels` rows of `len` values split into
/// `parts` chunks of `chunk` values, one block each (the channel chunks of
/// kernels/common.cuh): enough blocks to fill the GPU even for 16 channels.
pub(crate) struct ChannelSplit {
    pub(crate) channels: usize,
    pub(crate) chunk: usize,
    pub(crate) parts: usize,
    len: usize,
}

impl ChannelSplit {
    pub(crate) fn new(channels: usize, len: usize) -> Self {
        // about 1,024 blocks in all, each with at least 1,024 values
        let parts = len.div_ceil(1024).min(1024usize.div_ceil(channels)).max(1);
        let chunk = len.div_ceil(parts).max(1);
        Self { channels, chunk, parts: len.div_ceil(chunk).max(1), len }
    }
    pub(crate) fn launch<D: Device>(&self, be: &GpuBackend<D>, k: Kernel, args: Args) {
        if self.channels > 0 {
            be.launch(k, [self.parts as u32, self.channels as u32, 1], [THREADS, 1, 1], 0, args);
        }
    }
    /// The parts of each channel's sum of x, or of (x - mean)^2 given the parts of the sums.
    pub(crate) fn sums<D: Device>(&self, be: &GpuBackend<D>, x: &GpuBuf<D>, mean_parts: Option<&GpuBuf<D>>) -> GpuBuf<D> {
        let part = be.raw_alloc(self.channels * self.parts);
        let args = Args::default().i64(self.len as i64).i32(self.chunk as i32).buf(x).opt(mean_parts).buf(&part);
        self.launch(be, Kernel::ChannelSumParts, args);
        part
    }
}

impl<D: Device> Memory for GpuBackend<D> {
    type T = f32;
    type Buf = GpuBuf<D>;
    type IBuf = GpuBuf<D>;

    fn name(&self) -> String {
        format!("{}, {} convolutions", self.dev.name(), self.precision)
    }
    fn alloc(&self, len: usize) -> GpuBuf<D> {
        let mut b = self.raw_alloc(len);
        if self.poison {
            self.fill(&mut b, f32::NAN);
        }
        b
    }
    fn len(&self, buf: &GpuBuf<D>) -> usize {
        buf.len
    }
    fn upload_into(&self, host: &[f32], dst: &mut GpuBuf<D>) {
        assert_eq!(host.len(), dst.len, "upload: size mismatch");
        if !host.is_empty() {
            self.dev.htod(bytemuck::cast_slice(host), dst.ptr);
        }
    }
    fn download(&self, buf: &GpuBuf<D>) -> Vec<f32> {
        let mut v = vec![0f32; buf.len];
        if buf.len > 0 {
            self.dev.dtoh(buf.ptr, bytemuck::cast_slice_mut(&mut v));
        }
        v
    }
    fn upload_i32(&self, host: &[i32]) -> GpuBuf<D> {
        let b = self.raw_alloc(host.len());
        if !host.is_empty() {
            self.dev.htod(bytemuck::cast_slice(host), b.ptr);
        }
        b
    }
    fn download_i32(&self, buf: &GpuBuf<D>) -> Vec<i32> {
        let mut v = vec![0i32; buf.len];
        if buf.len > 0 {
            self.dev.dtoh(buf.ptr, bytemuck::cast_slice_mut(&mut v));
        }
        v
    }
    fn alloc_i32(&self, len: usize) -> GpuBuf<D> {
        self.raw_alloc(len)
    }
    fn synchronize(&self) {
        self.dev.synchronize()
    }
    fn release_cached(&self) {
        // (one stream in order: nothing still running uses a pooled buffer once the device is idle)
        self.dev.synchronize();
        for (class, ptrs) in self.pool.free.lock().expect("pool lock").drain() {
            self.pool.held.fetch_sub(class * ptrs.len(), Ordering::Relaxed);
            ptrs.into_iter().for_each(|p| self.dev.free(p));
        }
    }
    fn timed<R>(&self, f: impl FnOnce() -> R) -> (R, f64) {
        self.dev.timed(f)
    }
    fn device_memory(&self) -> Option<usize> {
        Some(self.pool.held.load(Ordering::Relaxed))
    }
    fn profile_launches<R>(&self, f: impl FnOnce() -> R) -> (R, Vec<LaunchStat>) {
        *self.profile.lock().expect("profile lock") = Some(HashMap::new());
        let r = f();
        let stats = self.profile.lock().expect("profile lock").take().unwrap_or_default();
        (r, LaunchStat::sorted(stats.into_iter().map(|(k, v)| (k.name(), v))))
    }
}

#[cfg(test)]
mod tests {
    use super::check_precision;
    use crate::backend::Precision;

    const IMAGES: &[&str] = &["sm_80", "sm_86", "sm_89", "sm_90", "compute_80", "compute_75"];

    #[test]
    fn tensor_core_precisions_need_an_image_with_tensor_cores() {
        for p in [Precision::Tf32, Precision::Bf16] {
            // an H100 on its own machine code; a newer GPU on the compute_80 PTX
            assert!(check_precision(p, "H100", (9, 0), 900, IMAGES).is_ok());
            assert!(check_precision(p, "B200", (10, 0), 800, IMAGES).is_ok());
            // a newer GPU whose driver JIT-compiled the compute_75 PTX (no mma.m16n8k8.tf32/bf16 there)
            let e = check_precision(p, "B200", (10, 0), 750, IMAGES).unwrap_err().to_string();
            assert!(e.contains("compute_75") && e.contains("PADA_CUDA_ARCHS=100") && e.contains("--precision fp32"), "{e}");
            // a Turing GPU has no TF32/BF16 tensor cores at all
            let e = check_precision(p, "T4", (7, 5), 750, IMAGES).unwrap_err().to_string();
            assert!(e.contains("sm_80 or newer") && e.contains("sm_75"), "{e}");
        }
        // FP32 runs on any image
        assert!(check_precision(Precision::Fp32, "T4", (7, 5), 750, IMAGES).is_ok());
    }
}
