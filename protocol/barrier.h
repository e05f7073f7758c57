/* barrier.h: the four memory-ordering primitives used on memory shared with another process.
 *
 * Modelled on liburing's barrier.h: every ordered access to a ring goes through one of these, and
 * each call site says which access on the other side it pairs with. The GCC/clang __atomic builtins
 * work on plain (naturally aligned, lock-free) integers, which is what a shared mapping holds, and
 * they are address-free, so they order accesses between processes as well as threads. */
#pragma once

/* A single, untorn access with no ordering (the compiler may not split, merge or re-read it). */
#define RWKV_READ_ONCE(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)
#define RWKV_WRITE_ONCE(var, val) __atomic_store_n(&(var), (val), __ATOMIC_RELAXED)

/* Publish: every access before it (the copy into the ring) is visible before *p holds v. */
#define rwkv_smp_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* Observe: accesses after it (the copy out of the ring) see what was written before the release
 * store that produced the value read. */
#define rwkv_smp_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

/* Full fence (store→load ordering), for the sleep/wake-up flag protocol: "I store my flag, then load
 * your index" on one side against "I store my index, then load your flag" on the other. Without it
 * both sides could read the stale value and the reader would sleep through a publish. */
#define rwkv_smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
