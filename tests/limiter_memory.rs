//! The rate limiters' memory, measured by a counting allocator: a flood of
//! distinct keys (addresses, made-up cookies) leaves it flat at its cap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use clap::Parser;
use fresco_platform::config::RateLimitConfig;
use fresco_platform::http::rate_limit::{Limiters, RateLimiter};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only the live
// byte count is kept on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    limits: RateLimitConfig,
}

// One test, so no other test's allocations land in the count.
#[test]
fn a_flood_of_distinct_keys_leaves_the_limiters_memory_flat() {
    let base = live();
    let limiter = RateLimiter::new(5, Duration::from_secs(60), 100_000);
    let mut at = Vec::new();
    for i in 0..1_000_000u32 {
        let _ = limiter.hit(&format!("ip:{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
        if (i + 1) % 100_000 == 0 {
            at.push(live() - base);
        }
    }
    let full = at[2];
    eprintln!(
        "one limiter, capped at 100k keys: {:.1} MiB after 100k keys, {:.1} MiB after 300k, {:.1} MiB after 1M",
        mib(at[0]),
        mib(full),
        mib(at[9])
    );
    // Flat to within a few bytes (the test harness allocates a little too).
    let flat = |from: isize, bytes: &[isize]| bytes.iter().all(|b| (b - from).abs() < 4096);
    assert!(flat(full, &at[3..]), "flat once full: {at:?}");
    assert!(mib(full) < 16.0, "{:.1} MiB", mib(full));
    drop(limiter);

    // The general budget under 100k made-up cookies from 100k addresses: the
    // cookies never become keys of their own, the addresses are capped.
    let base = live();
    let cfg = Cli::parse_from(["test", "--rate-limit-max-keys", "10000"]).limits;
    let limits = Limiters::new(&cfg);
    let mut headers = axum::http::HeaderMap::new();
    let mut at = Vec::new();
    for i in 0..100_000u32 {
        let cookie = format!("fp_session=forged-{i:08}-{}", "x".repeat(32));
        headers.insert("cookie", cookie.parse().unwrap());
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        assert!(limits.general(&headers, Some(&ip)).is_ok());
        if (i + 1) % 25_000 == 0 {
            at.push(live() - base);
        }
    }
    eprintln!(
        "general budget, capped at 10k keys, 100k made-up cookies: {:.2} MiB after 25k, {:.2} MiB after 100k",
        mib(at[0]),
        mib(at[3])
    );
    assert!(flat(at[1], &at[2..]), "flat: {at:?}");
    assert!(mib(at[3]) < 2.0, "{:.2} MiB", mib(at[3]));
}
