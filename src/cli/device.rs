//! `--device`: which backend a command runs on.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;

use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Precision};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// An NVIDIA GPU by ordinal.
    Cuda(usize),
    /// The CUDA kernels compiled for the CPU (feature `cuda-emu`): slow, for testing.
    CudaEmu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::CudaEmu => write!(f, "cuda-emu"),
        }
    }
}

impl FromStr for Device {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "cpu" => Device::Cpu,
            "cuda" => Device::Cuda(0),
            "cuda-emu" => Device::CudaEmu,
            // a bare ordinal: the GPU of that number (so that lists read `cuda:0,1`)
            _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Device::Cuda(s.parse()?),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Device::Cuda(n),
                _ => bail!("--device {s:?} is not a device (expected cpu, cuda, cuda:N or cuda-emu)"),
            },
        })
    }
}

impl Device {
    /// The arithmetic without `--precision`: exact FP32 on the CPU; on the GPU
    /// (and its emulator) TF32 convolutions, as PyTorch does by default.
    pub fn default_precision(&self) -> Precision {
        match self {
            Device::Cpu => Precision::Fp32,
            Device::Cuda(_) | Device::CudaEmu => Precision::Tf32,
        }
    }
}

/// `--device`, `--precision` and `--threads` of the commands that run on one backend.
#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Device: cpu | cuda | cuda:N | cuda-emu.
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// GPU convolutions: fp32 (CUDA cores), tf32 or bf16 (tensor cores, FP32 sums) [default: tf32 on cuda, as PyTorch; the CPU is exact fp32].
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

impl DeviceArgs {
    /// The precision the backend runs with.
    pub fn precision(&self) -> Precision {
        self.precision.unwrap_or_else(|| self.device.default_precision())
    }
    /// Runs `job` on the selected backend.
    pub fn run(&self, job: impl BackendJob) -> anyhow::Result<()> {
        with_backend(&self.device, self.precision, job)
    }
}

/// Work to run on whichever backend `--device` selects.
pub trait BackendJob {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()>;
}

/// Runs `job` on `device` with `precision` (`None`: the device's default).
pub fn with_backend(device: &Device, precision: Option<Precision>, job: impl BackendJob) -> anyhow::Result<()> {
    let precision = precision.unwrap_or_else(|| device.default_precision());
    if *device == Device::Cpu && precision != Precision::Fp32 {
        bail!("--precision {precision}: the CPU engine computes in exact FP32; reduced precision (tf32, bf16) is for --device cuda");
    }
    match device {
        Device::Cpu => job.run(&CpuBackend::<f32>::new()),
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => {
            let be = crate::backend::gpu::cuda::CudaBackend::open_with(*n, precision)?;
            crate::logln!("device: {}", crate::backend::Memory::name(&be));
            job.run(&be)
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => bail!("--device {device}: this pada was built without the CUDA backend (cargo build --release --features cuda)"),
        #[cfg(feature = "cuda-emu")]
        Device::CudaEmu => {
            job.run(&crate::backend::gpu::emu::EmuBackend::new(crate::backend::gpu::emu::EmuDevice::new()).with_precision(precision))
        }
        #[cfg(not(feature = "cuda-emu"))]
        Device::CudaEmu => {
            bail!("--device cuda-emu: this pada was built without the CUDA emulator (cargo build --release --features cuda-emu)")
        }
    }
}
