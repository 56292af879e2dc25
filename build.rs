//! Builds the CUDA kernels in kernels/*.cu:
//! - feature `cuda`: nvcc compiles each file into a fatbin (SASS for sm_80,
//!   sm_86, sm_89, sm_90 and PTX for compute_75; `PADA_CUDA_ARCHS` narrows the
//!   list, e.g. `PADA_CUDA_ARCHS=90`), which the crate embeds. Without nvcc the
//!   crate still builds (with a warning) and the CUDA backend reports "kernels
//!   not built"; `PADA_REQUIRE_KERNELS=1` makes that a build error.
//! - feature `cuda-emu`: the same files compiled as C++20 against
//!   kernels/cuda_emu.h, run on CPU threads by the emulated backend.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_ARCHS: &[&str] = &["sm_80", "sm_86", "sm_89", "sm_90", "compute_75"];

fn kernel_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("kernels")
        .expect("kernels/ exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    v.sort();
    v
}

/// nvcc from $NVCC, $CUDA_HOME, $CUDA_PATH, PATH, a pip-installed
/// nvidia/cu13/bin/nvcc in site-packages, or /usr/local/cuda.
fn find_nvcc() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = env::var_os("NVCC") {
        candidates.push(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = env::var_os(var) {
            candidates.push(PathBuf::from(p).join("bin/nvcc"));
        }
    }
    if let Some(path) = env::var_os("PATH") {
        candidates.extend(env::split_paths(&path).map(|d| d.join("nvcc")));
    }
    for py in ["python3", "python"] {
        if let Ok(out) = Command::new(py)
            .args(["-c", "import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))"])
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                candidates.push(Path::new(line.trim()).join("nvidia/cu13/bin/nvcc"));
            }
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/bin/nvcc"));
    candidates.into_iter().find(|p| p.is_file())
}

fn gencode_flags() -> Vec<String> {
    let archs: Vec<String> = match env::var("PADA_CUDA_ARCHS") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|a| a.trim().to_string())
            .map(|a| if a.chars().all(|c| c.is_ascii_digit()) { format!("sm_{a}") } else { a })
            .collect(),
        _ => DEFAULT_ARCHS.iter().map(|s| s.to_string()).collect(),
    };
    archs
        .iter()
        .map(|a| match a.strip_prefix("compute_") {
            Some(n) => format!("-gencode=arch=compute_{n},code=compute_{n}"),
            None => {
                let n = a.trim_start_matches("sm_");
                format!("-gencode=arch=compute_{n},code=sm_{n}")
            }
        })
        .collect()
}

fn build_fatbins(out: &Path) {
    let files = kernel_files();
    let mut entries = Vec::new();
    let require = env::var("PADA_REQUIRE_KERNELS").as_deref() == Ok("1");
    match find_nvcc() {
        None => {
            if require {
                panic!("PADA_REQUIRE_KERNELS=1 but no nvcc was found ($NVCC, $CUDA_HOME, $CUDA_PATH, PATH, pip's nvidia/cu13/bin, /usr/local/cuda)");
            }
            println!("cargo:warning=feature `cuda`: no nvcc found, CUDA kernels not built (the CUDA backend will report it at run time)");
        }
        Some(nvcc) => {
            for f in &files {
                let stem = f.file_stem().expect("file name").to_string_lossy().to_string();
                let target = out.join(format!("{stem}.fatbin"));
                let status = Command::new(&nvcc)
                    .args(["-fatbin", "-O3", "-std=c++17", "-Ikernels", "-o"])
                    .arg(&target)
                    .args(gencode_flags())
                    .arg(f)
                    .status()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", nvcc.display()));
                if !status.success() {
                    panic!("nvcc failed on {}", f.display());
                }
                entries.push((stem, target));
            }
        }
    }
    let mut src = String::from(
        "/// The kernels' fatbins, one per kernels/*.cu file, built by nvcc in build.rs.\npub const FATBINS: &[(&str, &[u8])] = &[\n",
    );
    for (stem, path) in &entries {
        src.push_str(&format!("    ({stem:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    src.push_str("];\n");
    std::fs::write(out.join("fatbins.rs"), src).expect("write fatbins.rs");
}

fn build_emulation() {
    let mut b = cc::Build::new();
    b.cpp(true).std("c++20").flag("-x").flag("c++").include("kernels").define("PADA_CUDA_EMU", None).opt_level(2).warnings(false);
    for f in kernel_files() {
        b.file(f);
    }
    b.compile("pada_kernels_emu");
    println!("cargo:rustc-link-lib=stdc++");
}

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_PATH");
    println!("cargo:rerun-if-env-changed=PADA_CUDA_ARCHS");
    println!("cargo:rerun-if-env-changed=PADA_REQUIRE_KERNELS");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    if env::var_os("CARGO_FEATURE_CUDA").is_some() {
        build_fatbins(&out);
    }
    if env::var_os("CARGO_FEATURE_CUDA_EMU").is_some() {
        build_emulation();
    }
}
