//! Finds the system libdpdk with pkg-config, compiles the C shim with exactly
//! pkg-config's cflags (struct layouts must match the installed library) and
//! generates bindings with an explicit allowlist.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_RUSTDOC").is_some() {
        return;
    }

    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!("libdpdk not found by pkg-config ({e}); run scripts/setup to install dpdk-dev")
        });
    // `pkg-config --cflags` carries `-include rte_config.h -march=corei7`,
    // which the pkg-config crate's include_paths alone would lose.
    let cflags = pkg_cflags();

    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c").include("csrc").warnings(false);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("dmpd_shim");

    // rte_thash_gfni is compiled for real only with GFNI/AVX-512 enabled; this
    // object is the benches' anchor and is never called without a CPU check.
    let mut gfni = cc::Build::new();
    gfni.file("csrc/gfni_anchor.c")
        .include("csrc")
        .warnings(false);
    for f in &cflags {
        gfni.flag(f);
    }
    for f in [
        "-mgfni",
        "-mavx512f",
        "-mavx512bw",
        "-mavx512dq",
        "-mavx512vbmi",
        "-mavx512vl",
        "-DALLOW_EXPERIMENTAL_API",
        // The x86 GFNI header's helpers are marked internal ABI.
        "-DALLOW_INTERNAL_API",
    ] {
        gfni.flag(f);
    }
    gfni.compile("dmpd_gfni_anchor");

    let mut builder = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_arg("-Icsrc")
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in &cflags {
        builder = builder.clang_arg(f);
    }
    for inc in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", inc.display()));
    }
    for pat in [
        "rte_eal_.*",
        "rte_exit",
        "rte_strerror",
        "rte_lcore_.*",
        "rte_get_main_lcore",
        "rte_get_next_lcore",
        "rte_socket_id",
        "rte_mempool_.*",
        "rte_pktmbuf_pool_create.*",
        "rte_eth_.*",
        "rte_ring_create",
        "rte_ring_lookup",
        "rte_ring_free",
        "rte_memzone_.*",
        "rte_thash_complete_matrix",
        "rte_thash_gfni_supported",
        "rte_convert_rss_key",
        "rte_tel_data_.*",
        "rte_telemetry_.*",
        "rte_dev_probe",
        "rte_dev_remove",
        "_rte_.*",
        "_dmpd_.*",
    ] {
        builder = builder.allowlist_function(pat);
    }
    for pat in [
        "rte_mbuf",
        "rte_mempool",
        "rte_ring",
        "rte_eth_.*",
        "rte_ether_addr",
        "rte_tel_data",
        "rte_proc_type_t",
        "rte_lcore_role_t",
    ] {
        builder = builder.allowlist_type(pat);
    }
    for pat in [
        "RTE_ETH_.*",
        "RTE_MAX_ETHPORTS",
        "RTE_MAX_LCORE",
        "RTE_MBUF_DEFAULT_.*",
        "RTE_PKTMBUF_HEADROOM",
        "RING_F_.*",
        "RTE_RING_.*",
        "RTE_ETHER_.*",
        "RTE_TEL_.*",
        "SOCKET_ID_ANY",
        "RTE_MEMPOOL_CACHE_MAX_SIZE",
    ] {
        builder = builder.allowlist_var(pat);
    }
    // Opaque where bindgen's layout of packed/aligned internals is not needed.
    builder = builder.opaque_type("rte_mempool").opaque_type("rte_ring");

    let bindings = builder.generate().expect("bindgen failed on DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(&out).expect("write bindings");
}

fn pkg_cflags() -> Vec<String> {
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config --cflags libdpdk");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}
