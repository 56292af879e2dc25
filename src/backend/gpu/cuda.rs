//! The real GPU: the kernels' fatbins (built by nvcc in build.rs) loaded and
//! launched through cudarc's driver API, on one stream of the device's primary
//! context. The NVIDIA driver library is looked for before the first driver
//! call (cudarc panics without it), so a machine without one gets an error.

use std::collections::HashMap;
use std::ffi::{c_void, CString};

use anyhow::{bail, Context};
use cudarc::driver::{result, sys};

use super::{Device, GpuBackend, Kernel};

mod fatbins {
    include!(concat!(env!("OUT_DIR"), "/fatbins.rs"));
}
pub use fatbins::EMBEDDED_IMAGES;

pub struct CudaDevice {
    ordinal: usize,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    functions: HashMap<Kernel, sys::CUfunction>,
    description: String,
    compute_capability: (i32, i32),
}

// SAFETY: the context and stream handles are used from any thread after
// making the context current (`bind`); the driver API is thread-safe.
unsafe impl Send for CudaDevice {}
unsafe impl Sync for CudaDevice {}

fn check<T>(r: Result<T, result::DriverError>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("CUDA error during {what}: {e:?}"))
}

impl CudaDevice {
    /// Opens GPU `ordinal`, with clear errors for a missing driver, a missing
    /// device, or kernels the driver cannot load.
    pub fn open(ordinal: usize) -> anyhow::Result<Self> {
        if fatbins::FATBINS.is_empty() {
            bail!("CUDA kernels not built: this pada was compiled with feature `cuda` but build.rs found no nvcc (install it, e.g. `pip install nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96`, and rebuild)");
        }
        // SAFETY: only tries to dlopen the driver library.
        if !unsafe { sys::is_culib_present() } {
            bail!("no NVIDIA driver: the CUDA driver library (libcuda.so) was not found; install the NVIDIA driver (>= 580 for kernels built by nvcc 13) or add its folder to LD_LIBRARY_PATH");
        }
        result::init().map_err(|e| anyhow::anyhow!("the NVIDIA driver failed to initialise: {e:?}"))?;
        let count = result::device::get_count().map_err(|e| anyhow::anyhow!("cannot count CUDA devices: {e:?}"))?;
        if ordinal as i32 >= count {
            bail!("no CUDA device {ordinal}: the driver reports {count} device(s)");
        }
        let dev = result::device::get(ordinal as i32).map_err(|e| anyhow::anyhow!("cuda:{ordinal}: {e:?}"))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown GPU".into());
        // SAFETY: valid device handle and attribute enums.
        let (major, minor) = unsafe {
            (
                result::device::get_attribute(dev, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR).unwrap_or(0),
                result::device::get_attribute(dev, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR).unwrap_or(0),
            )
        };
        let mut driver = 0i32;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut driver) };
        // SAFETY: device handle from above.
        let ctx =
            unsafe { result::primary_ctx::retain(dev) }.map_err(|e| anyhow::anyhow!("cuda:{ordinal}: cannot create a context: {e:?}"))?;
        // SAFETY: a context we hold.
        unsafe { result::ctx::set_current(ctx) }.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(|e| anyhow::anyhow!("cannot create a stream: {e:?}"))?;
        let mut modules = HashMap::new();
        for (module, image) in fatbins::FATBINS {
            // SAFETY: a fatbin image produced by nvcc, alive for the program's lifetime.
            let m = unsafe { result::module::load_data(image.as_ptr() as *const c_void) }.map_err(|e| {
                anyhow::anyhow!(
                    "the driver cannot load the kernels of kernels/{module}.cu on {name} (sm_{major}{minor}, driver {}.{}): {e:?}. \
                     They hold {} (sm: machine code, compute: PTX), built by nvcc 13, which needs a driver >= 580",
                    driver / 1000,
                    (driver % 1000) / 10,
                    EMBEDDED_IMAGES.join(", ")
                )
            })?;
            modules.insert(*module, m);
        }
        let mut functions = HashMap::new();
        for &k in Kernel::ALL {
            let m = *modules.get(k.module()).with_context(|| format!("no fatbin for kernels/{}.cu", k.module()))?;
            // SAFETY: a loaded module and a NUL-free name.
            let f = unsafe { result::module::get_function(m, CString::new(k.name()).expect("no NUL")) }
                .map_err(|e| anyhow::anyhow!("kernel {} not found in kernels/{}.cu: {e:?}", k.name(), k.module()))?;
            functions.insert(k, f);
        }
        let description = format!("cuda:{ordinal} {name} (sm_{major}{minor}, driver {}.{})", driver / 1000, (driver % 1000) / 10);
        Ok(Self { ordinal, ctx, stream, functions, description, compute_capability: (major, minor) })
    }

    /// (major, minor): TF32 tensor cores from (8, 0).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    fn bind(&self) {
        // SAFETY: our context, current on the calling thread from now on.
        check(unsafe { result::ctx::set_current(self.ctx) }, "cuCtxSetCurrent");
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
}

impl Device for CudaDevice {
    fn name(&self) -> String {
        self.description.clone()
    }
    fn malloc(&self, bytes: usize) -> u64 {
        self.bind();
        // SAFETY: a plain device allocation.
        check(unsafe { result::malloc_sync(bytes.max(1)) }, &format!("cuMemAlloc of {bytes} bytes"))
    }
    fn free(&self, ptr: u64) {
        self.bind();
        self.synchronize();
        // SAFETY: a pointer from `malloc`, no longer used by queued work.
        check(unsafe { result::free_sync(ptr) }, "cuMemFree");
    }
    fn htod(&self, src: &[u8], dst: u64) {
        self.bind();
        // SAFETY: `dst` holds at least src.len() bytes; pageable memory is staged before the call returns.
        check(unsafe { result::memcpy_htod_async(dst, src, self.stream) }, "host-to-device copy");
    }
    fn dtoh(&self, src: u64, dst: &mut [u8]) {
        self.bind();
        // SAFETY: `src` holds at least dst.len() bytes; we wait for the copy below.
        check(unsafe { result::memcpy_dtoh_async(dst, src, self.stream) }, "device-to-host copy");
        self.synchronize();
    }
    fn launch(&self, kernel: Kernel, grid: [u32; 3], block: [u32; 3], smem: u32, params: &mut [*mut c_void]) {
        self.bind();
        let f = self.functions[&kernel];
        // SAFETY: the parameter array matches the kernel's signature and points at live values.
        check(
            unsafe { result::launch_kernel(f, (grid[0], grid[1], grid[2]), (block[0], block[1], block[2]), smem, self.stream, params) },
            kernel.name(),
        );
    }
    fn synchronize(&self) {
        self.bind();
        // SAFETY: our stream.
        check(unsafe { result::stream::synchronize(self.stream) }, "stream synchronisation");
    }
    fn timed<R>(&self, f: impl FnOnce() -> R) -> (R, f64) {
        self.bind();
        let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
        let (start, end) = (check(result::event::create(flags), "event"), check(result::event::create(flags), "event"));
        // SAFETY: events and stream we own.
        unsafe {
            check(result::event::record(start, self.stream), "event record");
            let r = f();
            check(result::event::record(end, self.stream), "event record");
            check(result::event::synchronize(end), "event sync");
            let ms = check(result::event::elapsed(start, end), "event elapsed");
            let _ = result::event::destroy(start);
            let _ = result::event::destroy(end);
            (r, ms as f64 / 1e3)
        }
    }
}

/// The CUDA backend.
pub type CudaBackend = GpuBackend<CudaDevice>;

impl CudaBackend {
    /// Opens GPU `ordinal` (see [`CudaDevice::open`]).
    pub fn open(ordinal: usize) -> anyhow::Result<Self> {
        Ok(GpuBackend::new(CudaDevice::open(ordinal)?))
    }

    /// Opens GPU `ordinal` for convolutions in `precision`, refusing a
    /// tensor-core precision where no loaded kernel image has tensor cores
    /// ([`super::check_precision`]).
    pub fn open_with(ordinal: usize, precision: crate::backend::Precision) -> anyhow::Result<Self> {
        let be = Self::open(ordinal)?.with_precision(precision);
        let gpu = be.device().description.clone();
        super::check_precision(precision, &gpu, be.device().compute_capability(), be.image_arch(), EMBEDDED_IMAGES)?;
        Ok(be)
    }
}
