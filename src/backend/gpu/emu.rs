//! The emulated device: host memory, and launches of the kernels compiled as
//! C++ (kernels/cuda_emu.h) through the same parameter arrays as the GPU's.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use super::{Device, Kernel};

#[repr(C)]
struct Dim3 {
    x: u32,
    y: u32,
    z: u32,
}

type Entry = unsafe extern "C" fn(Dim3, Dim3, usize, *mut *mut c_void);

// `entry`: the emu_<kernel> entry point of every kernel (kernels.rs's list), by build.rs.
include!(concat!(env!("OUT_DIR"), "/emu_entries.rs"));

const ALIGN: usize = 256;

/// Host memory standing in for device memory; allocations are tracked so that
/// they can be freed with their layout.
#[derive(Default)]
pub struct EmuDevice {
    sizes: Mutex<HashMap<u64, usize>>,
}

impl EmuDevice {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Drop for EmuDevice {
    fn drop(&mut self) {
        for (p, bytes) in self.sizes.lock().expect("lock").drain() {
            // SAFETY: allocated by `malloc` below with this layout.
            unsafe { dealloc(p as *mut u8, Layout::from_size_align(bytes, ALIGN).expect("layout")) };
        }
    }
}

impl Device for EmuDevice {
    fn name(&self) -> String {
        "cuda-emu (kernels emulated on CPU threads)".into()
    }
    fn malloc(&self, bytes: usize) -> u64 {
        let layout = Layout::from_size_align(bytes.max(1), ALIGN).expect("layout");
        // SAFETY: non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        assert!(!p.is_null(), "emulated device: out of host memory");
        self.sizes.lock().expect("lock").insert(p as u64, bytes.max(1));
        p as u64
    }
    fn free(&self, ptr: u64) {
        if let Some(bytes) = self.sizes.lock().expect("lock").remove(&ptr) {
            // SAFETY: allocated by `malloc` with this layout.
            unsafe { dealloc(ptr as *mut u8, Layout::from_size_align(bytes, ALIGN).expect("layout")) };
        }
    }
    fn htod(&self, src: &[u8], dst: u64) {
        // SAFETY: `dst` is an allocation of ours of at least src.len() bytes (the backend checks sizes).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
    }
    fn dtoh(&self, src: u64, dst: &mut [u8]) {
        // SAFETY: as htod.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
    }
    fn launch(&self, kernel: Kernel, grid: [u32; 3], block: [u32; 3], smem: u32, params: &mut [*mut c_void]) {
        let f = entry(kernel);
        // SAFETY: the parameter array matches the kernel's signature (built by the
        // same code that drives the real GPU), and its pointers are live.
        unsafe {
            f(
                Dim3 { x: grid[0], y: grid[1], z: grid[2] },
                Dim3 { x: block[0], y: block[1], z: block[2] },
                smem as usize,
                params.as_mut_ptr(),
            );
        }
    }
    fn synchronize(&self) {}
}

/// The backend that runs the CUDA kernels in the emulator.
pub type EmuBackend = super::GpuBackend<EmuDevice>;
