//! Paper copies: one KK copy with PDF417 (target ≤ 2 ms and ≤ 60 KB per copy).
//! `cargo bench --bench pdf`; figures in BENCHMARKS.md ("Paper copies").

use au_relay::pdf::{barcode_payload, render, render_set, samples, Copy, PaperSize, Symbol};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn paper_copies(c: &mut Criterion) {
    let Ok(cert) = samples::full() else {
        return;
    };
    // Size is reported once, next to the timings.
    if let Ok(bytes) = render(&cert, Copy::Kk, PaperSize::A5) {
        println!("KK copy A5 (full sample): {} bytes", bytes.len());
    }
    if let Ok(bytes) = render_set(&cert, &[Copy::Kk, Copy::V, Copy::Ag], PaperSize::A5) {
        println!("KK+V+AG set A5 (full sample): {} bytes", bytes.len());
    }
    // On-CPU time of this thread (Linux schedstat), which excludes waiting for a CPU that
    // other processes hold: the wall-clock figures of a shared 2-vCPU machine include that.
    let cpu_ns = || -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let n = 300;
    if let Some(before) = cpu_ns() {
        let wall = std::time::Instant::now();
        for _ in 0..n {
            let _ = black_box(render(black_box(&cert), Copy::Kk, PaperSize::A5));
        }
        let wall = wall.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
        if let Some(after) = cpu_ns() {
            let cpu = (after - before) as f64 / 1e6 / f64::from(n);
            println!("KK copy A5: {cpu:.2} ms on-CPU, {wall:.2} ms wall-clock (mean of {n})");
        }
    }
    c.bench_function("kk_copy_a5_with_pdf417", |b| {
        b.iter(|| render(black_box(&cert), Copy::Kk, PaperSize::A5))
    });
    c.bench_function("print_all_kk_v_ag_a5", |b| {
        b.iter(|| {
            render_set(
                black_box(&cert),
                &[Copy::Kk, Copy::V, Copy::Ag],
                PaperSize::A5,
            )
        })
    });
    c.bench_function("pdf417_payload_and_symbol", |b| {
        b.iter(|| barcode_payload(black_box(&cert)).and_then(|p| Symbol::encode(&p)))
    });
}

criterion_group!(benches, paper_copies);
criterion_main!(benches);
