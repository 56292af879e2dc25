//! The GPU backend: the kernels of `kernels/*.cu` launched on a [`Device`], a
//! real NVIDIA GPU through cudarc (feature `cuda`) or the CUDA emulator
//! (feature `cuda-emu`). Everything here (launch geometry, argument lists,
//! workspaces, the memory pool) is shared by both, so the emulator tests it.
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

use bytemuck::{Pod, Zeroable};

use super::{Backend, SgdSlot};
use crate::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use crate::ops::{NormGroup, SgdStep};

macro_rules! kernels {
    ($($variant:ident => $module:literal :: $name:ident),* $(,)?) => {
        /// Every kernel, with its source file (module) and symbol name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $($variant),* }
        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];
            pub fn name(self) -> &'static str { match self { $(Kernel::$variant => stringify!($name)),* } }
            pub fn module(self) -> &'static str { match self { $(Kernel::$variant => $module),* } }
        }
    };
}

kernels! {
    Conv2dForward => "conv2d"::conv2d_forward,
    Conv2dForwardNarrow => "conv2d"::conv2d_forward_narrow,
    Conv2dFlipWeights => "conv2d"::conv2d_flip_weights,
    Conv2dBackwardData => "conv2d"::conv2d_backward_data,
    Conv2dBackwardWeight => "conv2d"::conv2d_backward_weight,
    Conv2dBackwardWeightNarrow => "conv2d"::conv2d_backward_weight_narrow,
    Conv2dReduceWeightGrad => "conv2d"::conv2d_reduce_weight_grad,
    Conv2dPerSampleWeightSq => "conv2d"::conv2d_per_sample_weight_sq,
    Conv2dPerSampleFinish => "conv2d"::conv2d_per_sample_finish,
    BatchnormNormalize => "batchnorm"::batchnorm_normalize,
    BatchnormBackwardParts => "batchnorm"::batchnorm_backward_parts,
    BatchnormBackwardApply => "batchnorm"::batchnorm_backward_apply,
    BatchnormBackwardFrozen => "batchnorm"::batchnorm_backward_frozen,
    Avgpool3x3Forward => "pool"::avgpool3x3_forward,
    Avgpool3x3Backward => "pool"::avgpool3x3_backward,
    Avgpool2x2Forward => "pool"::avgpool2x2_forward,
    Avgpool2x2Backward => "pool"::avgpool2x2_backward,
    GlobalAvgpoolForward => "pool"::global_avgpool_forward,
    GlobalAvgpoolBackward => "pool"::global_avgpool_backward,
    Fill => "elementwise"::fill,
    Copy => "elementwise"::copy,
    AddAssign => "elementwise"::add_assign,
    Axpy => "elementwise"::axpy,
    Scale => "elementwise"::scale,
    ReluForward => "elementwise"::relu_forward,
    ReluBackward => "elementwise"::relu_backward,
    ElementwiseSqrt => "elementwise"::elementwise_sqrt,
    ChannelSumParts => "elementwise"::channel_sum_parts,
    ChannelPartsAdd => "elementwise"::channel_parts_add,
    LinearForward => "linear"::linear_forward,
    LinearBackwardWeight => "linear"::linear_backward_weight,
    LinearBackwardData => "linear"::linear_backward_data,
    LinearPerSampleSqNorms => "linear"::linear_per_sample_sq_norms,
    SoftmaxCrossEntropy => "softmax_ce"::softmax_cross_entropy,
    BatchMetrics => "softmax_ce"::batch_metrics,
    SqNorms => "optim"::sq_norms,
    ClipCoefficient => "optim"::clip_coefficient,
    NonfiniteGuard => "optim"::nonfinite_guard,
    SgdStepK => "optim"::sgd_step,
    ClippedGroupNorms => "optim"::clipped_group_norms,
}

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
    ptr: u64,
    len: usize,
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
    fn push<T: Pod>(mut self, v: &T) -> Self {
        let bytes = bytemuck::bytes_of(v);
        let start = self.words.len();
        self.words.resize(start + bytes.len().div_ceil(8), 0);
        bytemuck::cast_slice_mut::<u64, u8>(&mut self.words[start..])[..bytes.len()].copy_from_slice(bytes);
        self.starts.push(start);
        self
    }
    fn buf<D: Device>(self, b: &GpuBuf<D>) -> Self {
        self.push(&b.ptr)
    }
    fn opt<D: Device>(self, b: Option<&GpuBuf<D>>) -> Self {
        self.push(&b.map_or(0u64, |b| b.ptr))
    }
    fn i32(self, v: i32) -> Self {
        self.push(&v)
    }
    fn i64(self, v: i64) -> Self {
        self.push(&v)
    }
    fn f32(self, v: f32) -> Self {
        self.push(&v)
    }
    fn f64(self, v: f64) -> Self {
        self.push(&v)
    }
    fn u64(self, v: u64) -> Self {
        self.push(&v)
    }
    fn params(&mut self) -> Vec<*mut c_void> {
        let base = self.words.as_mut_ptr();
        // SAFETY: every start indexes into `words`, which is not resized any more.
        self.starts.iter().map(|&s| unsafe { base.add(s) } as *mut c_void).collect()
    }
}

/// A tensor of a multi-tensor launch (kernels/common.cuh: TensorRef).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TensorRef {
    ptr: u64,
    len: i64,
}

/// A parameter tensor of the multi-tensor SGD (kernels/common.cuh: SgdRef).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SgdRef {
    value: u64,
    grad: u64,
    momentum: u64,
    len: i64,
}

const THREADS: u32 = 256;

fn blocks_for(n: usize) -> u32 {
    n.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32
}

/// Grid-stride kernels need no more blocks than this.
fn strided_blocks(n: usize) -> u32 {
    blocks_for(n).min(4096)
}

pub struct GpuBackend<D: Device> {
    dev: Arc<D>,
    pool: Arc<Pool<D>>,
    poison: bool,
}

impl<D: Device> GpuBackend<D> {
    pub fn new(dev: D) -> Self {
        let dev = Arc::new(dev);
        Self { pool: Arc::new(Pool { dev: dev.clone(), free: Mutex::new(HashMap::new()), held: AtomicUsize::new(0) }), dev, poison: false }
    }
    /// Fresh buffers filled with NaN (for tests).
    pub fn poisoned(dev: D) -> Self {
        Self { poison: true, ..Self::new(dev) }
    }
    pub fn device(&self) -> &D {
        &self.dev
    }

    fn raw_alloc(&self, len: usize) -> GpuBuf<D> {
        let class = size_class(len * 4);
        let reused = self.pool.free.lock().expect("pool lock").get_mut(&class).and_then(|v| v.pop());
        let ptr = reused.unwrap_or_else(|| {
            self.pool.held.fetch_add(class, Ordering::Relaxed);
            self.dev.malloc(class)
        });
        GpuBuf { ptr, len, class, pool: self.pool.clone() }
    }

    fn launch(&self, k: Kernel, grid: [u32; 3], block: [u32; 3], smem: u32, mut args: Args) {
        let mut params = args.params();
        self.dev.launch(k, grid, block, smem, &mut params);
    }
    fn launch1d(&self, k: Kernel, n: usize, args: Args) {
        if n > 0 {
            self.launch(k, [blocks_for(n), 1, 1], [THREADS, 1, 1], 0, args);
        }
    }
    fn launch_strided(&self, k: Kernel, n: usize, args: Args) {
        if n > 0 {
            self.launch(k, [strided_blocks(n), 1, 1], [THREADS, 1, 1], 0, args);
        }
    }
    fn one_thread(&self, k: Kernel, args: Args) {
        self.launch(k, [1, 1, 1], [32, 1, 1], 0, args);
    }
    fn upload_pod<T: Pod>(&self, items: &[T]) -> GpuBuf<D> {
        let bytes: &[u8] = bytemuck::cast_slice(items);
        let b = self.raw_alloc(bytes.len().div_ceil(4).max(1));
        if !bytes.is_empty() {
            self.dev.htod(bytes, b.ptr);
        }
        b
    }
}

/// The output tile of the tiled conv kernels (kernels/conv2d.cu): `rows`
/// output channels x `cols` pixels (forward) or weight columns (backward);
/// 16-row tiles for 16 channels or fewer, which 64-row tiles would mostly pad.
#[derive(Clone, Copy)]
struct ConvTile {
    rows: usize,
    cols: usize,
}

impl ConvTile {
    const WIDE: Self = Self { rows: 64, cols: 64 };
    const NARROW: Self = Self { rows: 16, cols: 256 };
    fn for_channels(c_out: usize) -> Self {
        if c_out <= 16 {
            Self::NARROW
        } else {
            Self::WIDE
        }
    }
    fn narrow(self) -> bool {
        self.rows == 16
    }
    fn forward_kernel(self) -> Kernel {
        if self.narrow() {
            Kernel::Conv2dForwardNarrow
        } else {
            Kernel::Conv2dForward
        }
    }
    fn weight_kernel(self) -> Kernel {
        if self.narrow() {
            Kernel::Conv2dBackwardWeightNarrow
        } else {
            Kernel::Conv2dBackwardWeight
        }
    }
}

/// A per-channel reduction over `channels` rows of `len` values split into
/// `parts` chunks of `chunk` values, one block each (the channel chunks of
/// kernels/common.cuh): enough blocks to fill the GPU even for 16 channels.
struct ChannelSplit {
    channels: usize,
    chunk: usize,
    parts: usize,
    len: usize,
}

impl ChannelSplit {
    fn new(channels: usize, len: usize) -> Self {
        // about 1,024 blocks in all, each with at least 1,024 values
        let parts = len.div_ceil(1024).min(1024usize.div_ceil(channels)).max(1);
        let chunk = len.div_ceil(parts).max(1);
        Self { channels, chunk, parts: len.div_ceil(chunk).max(1), len }
    }
    fn launch<D: Device>(&self, be: &GpuBackend<D>, k: Kernel, args: Args) {
        if self.channels > 0 {
            be.launch(k, [self.parts as u32, self.channels as u32, 1], [THREADS, 1, 1], 0, args);
        }
    }
    /// The parts of each channel's sum of x, or of (x - mean)^2 given the parts of the sums.
    fn sums<D: Device>(&self, be: &GpuBackend<D>, x: &GpuBuf<D>, mean_parts: Option<&GpuBuf<D>>) -> GpuBuf<D> {
        let part = be.raw_alloc(self.channels * self.parts);
        let args = Args::default().i64(self.len as i64).i32(self.chunk as i32).buf(x).opt(mean_parts).buf(&part);
        self.launch(be, Kernel::ChannelSumParts, args);
        part
    }
}

impl<D: Device> Backend for GpuBackend<D> {
    type T = f32;
    type Buf = GpuBuf<D>;
    type IBuf = GpuBuf<D>;

    fn name(&self) -> String {
        self.dev.name()
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
    fn timed<R>(&self, f: impl FnOnce() -> R) -> (R, f64) {
        self.dev.timed(f)
    }
    fn device_memory(&self) -> Option<usize> {
        Some(self.pool.held.load(Ordering::Relaxed))
    }

    fn fill(&self, dst: &mut GpuBuf<D>, v: f32) {
        self.launch_strided(Kernel::Fill, dst.len, Args::default().buf(dst).i64(dst.len as i64).f32(v));
    }
    fn copy(&self, dst: &mut GpuBuf<D>, src: &GpuBuf<D>) {
        assert_eq!(dst.len, src.len, "copy");
        self.launch_strided(Kernel::Copy, dst.len, Args::default().buf(dst).buf(src).i64(dst.len as i64));
    }
    fn copy_at(&self, dst: &mut GpuBuf<D>, offset: usize, src: &GpuBuf<D>) {
        assert!(offset + src.len <= dst.len, "copy_at: {} values at {offset} into {}", src.len, dst.len);
        // the copy kernel on the destination's sub-range
        let at = dst.ptr + 4 * offset as u64;
        self.launch_strided(Kernel::Copy, src.len, Args::default().u64(at).buf(src).i64(src.len as i64));
    }
    fn add_assign(&self, dst: &mut GpuBuf<D>, src: &GpuBuf<D>) {
        assert_eq!(dst.len, src.len, "add_assign");
        self.launch_strided(Kernel::AddAssign, dst.len, Args::default().buf(dst).buf(src).i64(dst.len as i64));
    }
    fn axpy(&self, dst: &mut GpuBuf<D>, a: f64, src: &GpuBuf<D>) {
        assert_eq!(dst.len, src.len, "axpy");
        self.launch_strided(Kernel::Axpy, dst.len, Args::default().buf(dst).f32(a as f32).buf(src).i64(dst.len as i64));
    }
    fn scale(&self, dst: &mut GpuBuf<D>, a: f64) {
        self.launch_strided(Kernel::Scale, dst.len, Args::default().buf(dst).f32(a as f32).i64(dst.len as i64));
    }
    fn elementwise_sqrt(&self, dst: &mut GpuBuf<D>) {
        self.launch_strided(Kernel::ElementwiseSqrt, dst.len, Args::default().buf(dst).i64(dst.len as i64));
    }
    fn relu_forward(&self, x: &GpuBuf<D>, y: &mut GpuBuf<D>) {
        assert_eq!(x.len, y.len, "relu_forward");
        self.launch_strided(Kernel::ReluForward, x.len, Args::default().buf(x).buf(y).i64(x.len as i64));
    }
    fn relu_backward(&self, x: &GpuBuf<D>, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>) {
        assert!(x.len == dy.len && dy.len == dx.len, "relu_backward");
        self.launch_strided(Kernel::ReluBackward, x.len, Args::default().buf(x).buf(dy).buf(dx).i64(x.len as i64));
    }

    fn conv2d_forward(&self, g: &ConvGeom, x: &GpuBuf<D>, relu_x: bool, w: &GpuBuf<D>, bias: Option<&GpuBuf<D>>, y: &mut GpuBuf<D>) {
        assert!(x.len == g.input().len() && w.len == g.weight_len() && y.len == g.output().len(), "conv2d_forward: sizes");
        self.conv_tiled(g, x, relu_x, w, bias, y, None, false);
    }
    fn conv2d_backward_data(
        &self,
        g: &ConvGeom,
        dy: &GpuBuf<D>,
        w: &GpuBuf<D>,
        relu_mask: Option<&GpuBuf<D>>,
        dx: &mut GpuBuf<D>,
        accumulate: bool,
    ) {
        assert!(dy.len == g.output().len() && w.len == g.weight_len() && dx.len == g.input().len(), "conv2d_backward_data: sizes");
        if g.is_same_stride1() {
            // the same conv of dy with flipped, transposed weights, masked and accumulated in its epilogue
            let wf = self.raw_alloc(g.weight_len());
            self.launch1d(Kernel::Conv2dFlipWeights, g.weight_len(), Args::default().push(g).buf(w).buf(&wf));
            let gt = ConvGeom::with_pad(
                g.n as usize,
                g.c_out as usize,
                g.h as usize,
                g.w as usize,
                g.c_in as usize,
                g.k as usize,
                1,
                g.pad as usize,
            );
            self.conv_tiled(&gt, dy, false, &wf, None, dx, relu_mask, accumulate);
        } else {
            assert!(g.k <= 3, "conv2d_backward_data: kernel size {} over the kernel's MAX_K (3)", g.k);
            self.launch1d(
                Kernel::Conv2dBackwardData,
                dx.len,
                Args::default().push(g).buf(dy).buf(w).opt(relu_mask).buf(dx).i32(accumulate as i32),
            );
        }
    }
    fn conv2d_backward_weight(
        &self,
        g: &ConvGeom,
        x: &GpuBuf<D>,
        relu_x: bool,
        dy: &GpuBuf<D>,
        dw: &mut GpuBuf<D>,
        db: Option<&mut GpuBuf<D>>,
    ) {
        assert!(x.len == g.input().len() && dy.len == g.output().len() && dw.len == g.weight_len(), "conv2d_backward_weight: sizes");
        let (k, c_out, npix) = (g.col_rows(), g.c_out as usize, g.output().per_channel());
        // a weight gradient is c_out x k: 16-row tiles only when k fills their 256 columns
        let tile = if k > 64 { ConvTile::for_channels(c_out) } else { ConvTile::WIDE };
        let tiles = k.div_ceil(tile.cols) * c_out.div_ceil(tile.rows);
        // split the pixel reduction so that the grid has a few hundred blocks
        let chunks = npix.div_ceil(1024).clamp(1, (512 / tiles).max(1));
        let chunk_pixels = npix.div_ceil(chunks).div_ceil(16) * 16;
        let chunks = npix.div_ceil(chunk_pixels);
        let partial = self.raw_alloc(chunks * c_out * k);
        self.launch(
            tile.weight_kernel(),
            [k.div_ceil(tile.cols) as u32, c_out.div_ceil(tile.rows) as u32, chunks as u32],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).buf(x).i32(relu_x as i32).buf(dy).buf(&partial).i32(chunk_pixels as i32),
        );
        let len = c_out * k;
        self.launch1d(Kernel::Conv2dReduceWeightGrad, len, Args::default().i32(chunks as i32).i64(len as i64).buf(&partial).buf(dw));
        if let Some(db) = db {
            assert_eq!(db.len, c_out, "conv2d_backward_weight: db");
            let split = ChannelSplit::new(c_out, npix);
            let part = split.sums(self, dy, None);
            self.launch1d(Kernel::ChannelPartsAdd, c_out, Args::default().i32(c_out as i32).i32(split.parts as i32).buf(&part).buf(db));
        }
    }

    fn conv2d_per_sample_sq_norms(&self, g: &ConvGeom, x: &GpuBuf<D>, relu_x: bool, dy: &GpuBuf<D>, bias: bool, out: &mut GpuBuf<D>) {
        assert!(x.len == g.input().len() && dy.len == g.output().len() && out.len == g.n as usize, "conv2d_per_sample_sq_norms: sizes");
        let (tx, ty) = (g.col_rows().div_ceil(64), (g.c_out as usize).div_ceil(64));
        let partial = self.raw_alloc(g.n as usize * tx * ty);
        self.launch(
            Kernel::Conv2dPerSampleWeightSq,
            [tx as u32, ty as u32, g.n as u32],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).buf(x).i32(relu_x as i32).buf(dy).buf(&partial),
        );
        self.launch(
            Kernel::Conv2dPerSampleFinish,
            [g.n as u32, 1, 1],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).i32((tx * ty) as i32).buf(&partial).buf(dy).i32(bias as i32).buf(out),
        );
    }

    fn batchnorm_forward(&self, s: &ActShape, x: &GpuBuf<D>, y: &mut GpuBuf<D>, accumulate: bool, stats: &mut GpuBuf<D>) {
        assert!(x.len == s.len() && y.len == s.len() && stats.len == 2 * s.c as usize, "batchnorm_forward: sizes");
        let split = ChannelSplit::new(s.c as usize, s.per_channel());
        let sums = split.sums(self, x, None);
        let sqs = split.sums(self, x, Some(&sums));
        split.launch(
            self,
            Kernel::BatchnormNormalize,
            Args::default().push(s).i32(split.chunk as i32).buf(x).buf(&sums).buf(&sqs).buf(y).i32(accumulate as i32).buf(stats),
        );
    }
    fn batchnorm_backward(&self, s: &ActShape, x: &GpuBuf<D>, stats: &GpuBuf<D>, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>) {
        assert!(x.len == s.len() && dy.len == s.len() && dx.len == s.len() && stats.len == 2 * s.c as usize, "batchnorm_backward: sizes");
        let split = ChannelSplit::new(s.c as usize, s.per_channel());
        let part = self.raw_alloc(2 * split.channels * split.parts);
        let chunk = split.chunk as i32;
        split.launch(self, Kernel::BatchnormBackwardParts, Args::default().push(s).i32(chunk).buf(x).buf(stats).buf(dy).buf(&part));
        split.launch(self, Kernel::BatchnormBackwardApply, Args::default().push(s).i32(chunk).buf(x).buf(stats).buf(dy).buf(&part).buf(dx));
    }

    fn batchnorm_backward_frozen(&self, s: &ActShape, stats: &GpuBuf<D>, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>) {
        assert!(dy.len == s.len() && dx.len == s.len() && stats.len == 2 * s.c as usize, "batchnorm_backward_frozen: sizes");
        self.launch1d(Kernel::BatchnormBackwardFrozen, s.len(), Args::default().push(s).buf(stats).buf(dy).buf(dx));
    }

    fn avgpool3x3_forward(&self, g: &PoolGeom, x: &GpuBuf<D>, y: &mut GpuBuf<D>, accumulate: bool) {
        assert!(x.len == g.input().len() && y.len == g.output().len(), "avgpool3x3_forward: sizes");
        self.launch1d(Kernel::Avgpool3x3Forward, y.len, Args::default().push(g).buf(x).buf(y).i32(accumulate as i32));
    }
    fn avgpool3x3_backward(&self, g: &PoolGeom, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>, accumulate: bool) {
        assert!(dy.len == g.output().len() && dx.len == g.input().len(), "avgpool3x3_backward: sizes");
        self.launch1d(Kernel::Avgpool3x3Backward, dx.len, Args::default().push(g).buf(dy).buf(dx).i32(accumulate as i32));
    }
    fn avgpool2x2_forward(&self, g: &PoolGeom, x: &GpuBuf<D>, y: &mut GpuBuf<D>) {
        assert!(x.len == g.input().len() && y.len == g.output().len(), "avgpool2x2_forward: sizes");
        self.launch1d(Kernel::Avgpool2x2Forward, y.len, Args::default().push(g).buf(x).buf(y));
    }
    fn avgpool2x2_backward(&self, g: &PoolGeom, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>, accumulate: bool) {
        assert!(dy.len == g.output().len() && dx.len == g.input().len(), "avgpool2x2_backward: sizes");
        self.launch1d(Kernel::Avgpool2x2Backward, dx.len, Args::default().push(g).buf(dy).buf(dx).i32(accumulate as i32));
    }
    fn global_avgpool_forward(&self, s: &ActShape, x: &GpuBuf<D>, relu_x: bool, y: &mut GpuBuf<D>) {
        assert!(x.len == s.len() && y.len == (s.n * s.c) as usize, "global_avgpool_forward: sizes");
        self.launch1d(Kernel::GlobalAvgpoolForward, y.len, Args::default().push(s).buf(x).i32(relu_x as i32).buf(y));
    }
    fn global_avgpool_backward(&self, s: &ActShape, dy: &GpuBuf<D>, relu_mask: Option<&GpuBuf<D>>, dx: &mut GpuBuf<D>) {
        assert!(dx.len == s.len() && dy.len == (s.n * s.c) as usize, "global_avgpool_backward: sizes");
        self.launch1d(Kernel::GlobalAvgpoolBackward, dx.len, Args::default().push(s).buf(dy).opt(relu_mask).buf(dx));
    }

    fn linear_forward(&self, g: &LinearGeom, x: &GpuBuf<D>, w: &GpuBuf<D>, b: &GpuBuf<D>, y: &mut GpuBuf<D>) {
        let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
        assert!(x.len == n * i && w.len == o * i && b.len == o && y.len == n * o, "linear_forward: sizes");
        self.launch1d(Kernel::LinearForward, n * o, Args::default().push(g).buf(x).buf(w).buf(b).buf(y));
    }
    fn linear_backward(
        &self,
        g: &LinearGeom,
        x: &GpuBuf<D>,
        w: &GpuBuf<D>,
        dy: &GpuBuf<D>,
        dx: Option<&mut GpuBuf<D>>,
        dw: &mut GpuBuf<D>,
        db: &mut GpuBuf<D>,
    ) {
        let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
        assert!(x.len == n * i && w.len == o * i && dy.len == n * o && dw.len == o * i && db.len == o, "linear_backward: sizes");
        self.launch1d(Kernel::LinearBackwardWeight, o * i + o, Args::default().push(g).buf(x).buf(dy).buf(dw).buf(db));
        if let Some(dx) = dx {
            assert_eq!(dx.len, n * i, "linear_backward: dx");
            self.launch1d(Kernel::LinearBackwardData, n * i, Args::default().push(g).buf(w).buf(dy).buf(dx));
        }
    }
    fn linear_per_sample_sq_norms(&self, g: &LinearGeom, x: &GpuBuf<D>, dy: &GpuBuf<D>, out: &mut GpuBuf<D>) {
        let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
        assert!(x.len == n * i && dy.len == n * o && out.len == n, "linear_per_sample_sq_norms: sizes");
        self.launch1d(Kernel::LinearPerSampleSqNorms, n, Args::default().push(g).buf(x).buf(dy).buf(out));
    }
    fn softmax_cross_entropy(
        &self,
        n: usize,
        classes: usize,
        logits: &GpuBuf<D>,
        labels: &GpuBuf<D>,
        weights: Option<&GpuBuf<D>>,
        loss: &mut GpuBuf<D>,
        dlogits: &mut GpuBuf<D>,
        proxy_norm: &mut GpuBuf<D>,
    ) {
        assert!(
            logits.len == n * classes && dlogits.len == n * classes && labels.len == n && loss.len == n && proxy_norm.len == n,
            "softmax_cross_entropy: sizes"
        );
        self.launch1d(
            Kernel::SoftmaxCrossEntropy,
            n,
            Args::default().i32(n as i32).i32(classes as i32).buf(logits).buf(labels).opt(weights).buf(loss).buf(dlogits).buf(proxy_norm),
        );
    }
    fn batch_metrics(&self, n: usize, classes: usize, logits: &GpuBuf<D>, labels: &GpuBuf<D>, loss: &GpuBuf<D>, sums: &mut GpuBuf<D>) {
        self.launch(
            Kernel::BatchMetrics,
            [1, 1, 1],
            [THREADS, 1, 1],
            0,
            Args::default().i32(n as i32).i32(classes as i32).buf(logits).buf(labels).buf(loss).buf(sums),
        );
    }

    fn sq_norms(&self, tensors: &[&GpuBuf<D>], out: &mut GpuBuf<D>) {
        assert_eq!(tensors.len(), out.len, "sq_norms: one output per tensor");
        if tensors.is_empty() {
            return;
        }
        let table = self.upload_pod(&tensors.iter().map(|t| TensorRef { ptr: t.ptr, len: t.len as i64 }).collect::<Vec<_>>());
        self.launch(Kernel::SqNorms, [tensors.len() as u32, 1, 1], [THREADS, 1, 1], 0, Args::default().buf(&table).buf(out));
    }
    fn clip_coefficient(&self, sq_norms: &GpuBuf<D>, max_norm: f64, out: &mut GpuBuf<D>) {
        self.one_thread(Kernel::ClipCoefficient, Args::default().i32(sq_norms.len as i32).buf(sq_norms).f64(max_norm).buf(out));
    }
    fn nonfinite_guard(&self, sq_norms: &GpuBuf<D>, step: i64, guard: &mut GpuBuf<D>, clip_coef: &mut GpuBuf<D>) {
        self.one_thread(Kernel::NonfiniteGuard, Args::default().i32(sq_norms.len as i32).buf(sq_norms).i64(step).buf(guard).buf(clip_coef));
    }
    fn sgd_step(&self, slots: &mut [SgdSlot<'_, Self>], h: &SgdStep, grad_scale: &GpuBuf<D>) {
        if slots.is_empty() {
            return;
        }
        let refs: Vec<SgdRef> = slots
            .iter()
            .map(|s| SgdRef { value: s.value.ptr, grad: s.grad.ptr, momentum: s.momentum.ptr, len: s.value.len as i64 })
            .collect();
        let longest = refs.iter().map(|r| r.len as usize).max().unwrap_or(1);
        let table = self.upload_pod(&refs);
        self.launch(
            Kernel::SgdStepK,
            [blocks_for(longest).min(64), slots.len() as u32, 1],
            [THREADS, 1, 1],
            0,
            Args::default().buf(&table).f32(h.lr as f32).f32(h.momentum as f32).f32(h.weight_decay as f32).buf(grad_scale),
        );
    }

    fn clipped_group_norms(&self, sq_norms: &GpuBuf<D>, clip_coef: &GpuBuf<D>, members: &[i32], groups: &[NormGroup], out: &mut GpuBuf<D>) {
        if groups.is_empty() {
            return;
        }
        let m = self.upload_pod(members);
        let gr = self.upload_pod(groups);
        self.one_thread(
            Kernel::ClippedGroupNorms,
            Args::default().buf(sq_norms).buf(clip_coef).buf(&m).buf(&gr).i32(groups.len() as i32).buf(out),
        );
    }
}

impl<D: Device> GpuBackend<D> {
    /// conv2d_forward's kernel with its full epilogue (mask, accumulate).
    #[allow(clippy::too_many_arguments)]
    fn conv_tiled(
        &self,
        g: &ConvGeom,
        x: &GpuBuf<D>,
        relu_x: bool,
        w: &GpuBuf<D>,
        bias: Option<&GpuBuf<D>>,
        y: &mut GpuBuf<D>,
        mask: Option<&GpuBuf<D>>,
        accumulate: bool,
    ) {
        let npix = g.output().per_channel();
        let tile = ConvTile::for_channels(g.c_out as usize);
        self.launch(
            tile.forward_kernel(),
            [npix.div_ceil(tile.cols) as u32, (g.c_out as usize).div_ceil(tile.rows) as u32, 1],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).buf(x).i32(relu_x as i32).buf(w).opt(bias).buf(y).opt(mask).i32(accumulate as i32),
        );
    }
}
