//! Compiles the BPF programs in `src/bpf/*.bpf.c` with clang (`CLANG`, else `clang-19`, else
//! `clang`) into `OUT_DIR`. Without a working clang the crate still builds: the cfg
//! `judged_no_bpf` is set and `JUDGED_NO_BPF_REASON` says why, and `judged watch` reports
//! "eBPF unavailable: built without clang (...)" at run time. `JUDGED_BUILD_WITHOUT_BPF=1`
//! forces that build (to test the fallback).

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAMS: [&str; 6] = ["workqueue", "lock", "fork", "dstate", "pagecache", "probe"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(judged_no_bpf)");
    println!("cargo::rerun-if-changed=src/bpf");
    println!("cargo::rerun-if-env-changed=CLANG");
    println!("cargo::rerun-if-env-changed=JUDGED_BUILD_WITHOUT_BPF");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(reason) = build_all(&out_dir) {
        println!("cargo::warning=judged is built without eBPF: {reason}");
        println!("cargo::rustc-cfg=judged_no_bpf");
        println!("cargo::rustc-env=JUDGED_NO_BPF_REASON={reason}");
    }
}

fn build_all(out_dir: &Path) -> Result<(), String> {
    if std::env::var_os("JUDGED_BUILD_WITHOUT_BPF").is_some_and(|v| v == "1") {
        return Err("JUDGED_BUILD_WITHOUT_BPF=1".to_owned());
    }
    let clang = find_clang()?;
    // The kernel's uapi headers (<linux/bpf.h>) include <asm/types.h>, which Debian keeps in
    // the multiarch directory; `-target bpf` does not search it by itself.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_owned());
    let multiarch = PathBuf::from(format!("/usr/include/{arch}-linux-gnu"));
    for name in PROGRAMS {
        let source = Path::new("src/bpf").join(format!("{name}.bpf.c"));
        let object = out_dir.join(format!("{name}.bpf.o"));
        let mut command = Command::new(&clang);
        // v3 (Linux 5.12+): atomic fetch-and-add whose result is used (dstate.bpf.c's slots).
        command.args([
            "-target", "bpf", "-mcpu=v3", "-g", "-O2", "-Wall", "-Werror",
        ]);
        if multiarch.is_dir() {
            command.arg("-I").arg(&multiarch);
        }
        command.arg("-c").arg(&source).arg("-o").arg(&object);
        let output = command
            .output()
            .map_err(|e| format!("cannot run `{}': {e}", clang.display()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr.lines().next().unwrap_or("no message");
            return Err(format!(
                "`{}' failed on {} ({}): {first}",
                clang.display(),
                source.display(),
                output.status
            ));
        }
    }
    Ok(())
}

fn find_clang() -> Result<PathBuf, String> {
    if let Some(clang) = std::env::var_os("CLANG") {
        return Ok(PathBuf::from(clang));
    }
    for candidate in ["clang-19", "clang"] {
        let works = Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return Ok(PathBuf::from(candidate));
        }
    }
    Err("no clang found (install clang-19, or set CLANG)".to_owned())
}
