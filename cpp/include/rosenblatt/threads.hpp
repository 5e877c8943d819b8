// A small persistent thread pool shared by every kernel (no OpenMP).
//
// Usage from a kernel:
//   rosenblatt::parallel_for(n_tasks, n_threads, [&](long t) { ... task t ... });
// Rules that keep results bit-identical run to run: tasks of one job write disjoint outputs,
// and what a task computes must not depend on which thread runs it (never index scratch or
// partial results by thread id; index them by task). With that, the result does not even
// depend on the thread count.
//
// The pool accepts jobs from several caller threads: one job runs on the pool at a time; a
// caller that finds the pool busy runs its own job serially instead of waiting (same result).
// The calling thread always takes part in its job. Workers spin briefly after a job (kernels
// of a training step come in quick succession) and then sleep on a condition variable; on
// Linux a caller that wakes them first keeps them off its own CPU (see place_workers).
// shutdown_pool() joins them; module.cpp registers it with Python's atexit, and a static
// destructor does the same for embedders. After fork() the child starts a fresh pool lazily.
//
// This header and threads.cpp are compiled with baseline flags only.
#pragma once
#include <atomic>
#include <cstddef>
#include <type_traits>

namespace rosenblatt {

using TaskFn = void (*)(void* ctx, long task);

// The body of a spin-wait loop (x86 pause, aarch64 yield).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Usable cores (affinity mask aware).
int hardware_threads();
// Library default thread count, used when a kernel receives n_threads <= 0.
int get_num_threads();
// n <= 0 restores the default (hardware_threads()).
void set_num_threads(int n);
// n_threads argument of a kernel -> the count to use (<= 0 means the library default).
int resolve_threads(int requested);

// Called by a caller that has run out of tasks while other threads finish theirs.
using IdleFn = void (*)(void* ctx);

// Runs fn(ctx, t) for every t in [0, n_tasks) on up to n_threads threads, the caller
// included, and returns when all tasks are done. While the caller waits for the others'
// last tasks it calls idle(idle_ctx), if given, every few milliseconds: Python runs signal
// handlers on the main thread only, so a Ctrl-C check of long tasks must keep running
// there after the caller's own tasks are done.
void parallel_run(long n_tasks, int n_threads, TaskFn fn, void* ctx, IdleFn idle = nullptr,
                  void* idle_ctx = nullptr);

template <class F>
inline void parallel_for(long n_tasks, int n_threads, F&& f, IdleFn idle = nullptr,
                         void* idle_ctx = nullptr) {
  if (n_tasks <= 0) return;
  if (n_threads <= 1 || n_tasks == 1) {
    for (long t = 0; t < n_tasks; ++t) f(t);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  parallel_run(
      n_tasks, n_threads, [](void* c, long t) { (*static_cast<Fn*>(c))(t); },
      const_cast<void*>(static_cast<const void*>(&f)), idle, idle_ctx);
}

// 0 on a thread outside the pool (a caller), i + 1 on the pool's worker i: the same core
// from call to call (workers are placed off the caller's CPU, threads.cpp).
int pool_thread_index();

// Runs f(p) for every part p in [0, n_parts) on up to n_threads threads, part p on the
// thread of pool index p when that thread takes part in the job and p is still free (any
// free part otherwise). Phases that split the same arrays into the same parts then find
// each part in the caches of the core that touched it last: the weight gradient of a
// training batch and the optimizer step that reads it (fashion b32 epoch on two threads:
// x1.01-1.03; either split alone x1.00-1.01). Which parts a thread ran never changes a
// result.
template <class F>
inline void parallel_parts(int n_parts, int n_threads, F&& f) {
  constexpr int kMaxParts = 64;
  if (n_parts <= 0) return;
  if (n_threads <= 1 || n_parts == 1 || n_parts > kMaxParts) {
    parallel_for(n_parts, n_threads, [&](long p) { f(int(p)); });
    return;
  }
  std::atomic<bool> taken[kMaxParts];
  for (int p = 0; p < n_parts; ++p) taken[p].store(false, std::memory_order_relaxed);
  // n_parts tasks, each taking one part: the thread's own when free, else the first free
  // one (there is one: as many tasks as parts)
  parallel_for(n_parts, n_threads, [&](long) {
    int p = pool_thread_index();
    if (p >= n_parts || taken[p].exchange(true, std::memory_order_relaxed)) {
      p = 0;
      while (taken[p].exchange(true, std::memory_order_relaxed)) ++p;
    }
    f(p);
  });
}

// Workers polling for a job right now (they spin kSpin after each job, then sleep): a job
// handed to them starts within a microsecond, while waking a sleeping one takes tens of
// microseconds or more. For kernels whose work is only worth splitting when that is cheap.
int idle_spinning_workers();
// Wakes sleeping workers (starting them if needed, n_threads - 1 of them) without giving
// them a job, so that they poll for the next one; a no-op while the pool is busy.
void wake_workers(int n_threads);

// Per-thread scratch memory, 64-byte aligned; grows monotonically; contents are not kept
// when it grows. Slots let nested users (packed B of a GEMM in slot 0, packed A in slot 1)
// hold buffers at the same time; train_epoch keeps its second batch buffer in slot 4.
// Freed at thread exit.
constexpr int kScratchSlots = 5;
void* thread_scratch(int slot, std::size_t bytes);

// Joins the workers; the pool starts again lazily on the next parallel job.
void shutdown_pool();

}  // namespace rosenblatt
