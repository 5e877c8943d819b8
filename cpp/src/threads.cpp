#include "rosenblatt/threads.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace rosenblatt {
namespace {

// 0 on any thread outside the pool (the callers), i + 1 on worker i (pool_thread_index).
thread_local int t_pool_index = 0;

struct Job {
  TaskFn fn;
  void* ctx;
  IdleFn idle = nullptr;
  void* idle_ctx = nullptr;
  long n_tasks;
  int max_helpers;
  std::atomic<long> next{0};
  std::atomic<long> done{0};
  std::atomic<int> helpers{0};  // workers currently attached to this job
};

// How long an idle worker polls for the next job before sleeping; a training step issues
// several GEMMs back to back, and a condition-variable wake-up costs tens of microseconds.
constexpr auto kSpin = std::chrono::microseconds(150);
// How often a caller waiting for the end of its job calls the job's idle function.
constexpr auto kIdleEvery = std::chrono::milliseconds(10);

class Pool {
 public:
  ~Pool() { stop_workers(); }

  void run(Job& job) {
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (!submit.owns_lock()) {  // another caller's job is running: do ours here
      run_tasks(job);
      return;
    }
    ensure_workers(job.max_helpers);
    place_workers(job.max_helpers);
    {
      std::lock_guard<std::mutex> lk(m_);
      current_ = &job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    run_tasks(job);
    {
      // After this no worker can attach to the job any more.
      std::lock_guard<std::mutex> lk(m_);
      current_ = nullptr;
    }
    auto last_idle = std::chrono::steady_clock::now();
    int polls = 0;
    while (job.done.load(std::memory_order_acquire) < job.n_tasks ||
           job.helpers.load(std::memory_order_acquire) != 0) {
      cpu_relax();
      if (job.idle && ++polls == 1024) {
        polls = 0;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_idle >= kIdleEvery) {
          last_idle = now;
          job.idle(job.idle_ctx);
        }
      }
    }
  }

  int spinning() const { return spinning_.load(std::memory_order_relaxed); }

  // A new generation without a job: sleeping workers wake, find nothing and poll again.
  void wake(int helpers) {
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (!submit.owns_lock()) return;  // busy: the workers are awake
    ensure_workers(helpers);
    place_workers(helpers);
    {
      std::lock_guard<std::mutex> lk(m_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
  }

  void stop_workers() {
    std::lock_guard<std::mutex> submit(submit_);
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    for (auto& t : tids_) t.store(0);
    placed_cpu_ = -1;
    stop_ = false;
  }

 private:
  static void run_tasks(Job& job) {
    for (;;) {
      long t = job.next.fetch_add(1, std::memory_order_relaxed);
      if (t >= job.n_tasks) break;
      job.fn(job.ctx, t);
      job.done.fetch_add(1, std::memory_order_release);
    }
  }

  void ensure_workers(int helpers) {
    if (helpers > kMaxWorkers) helpers = kMaxWorkers;
    while (static_cast<int>(workers_.size()) < helpers) {
      // the generation before the job that needs the worker: read here (the submit lock
      // is held, so it cannot move), not by the new thread, which might start after the
      // job was posted and then wait for the next one
      const int i = static_cast<int>(workers_.size());
#if defined(__linux__)
      // the CPUs a new worker inherits (the creating thread's), all it may use; it is not
      // placed yet, so the next wake-up places them all again
      if (i == 0) have_allowed_ = sched_getaffinity(0, sizeof allowed_, &allowed_) == 0;
      placed_cpu_ = -1;
#endif
      workers_.emplace_back([this, i, seen = generation_.load()] { worker_loop(i, seen); });
    }
  }

  // A sleeping worker that is woken tends to be placed on the CPU of the thread that
  // woke it - the caller, which goes on running there - and the kernel can take
  // milliseconds to move one of them to an idle CPU. Measured in a 2-vCPU VM: a two-thread
  // Perceptron epoch of 7 ms took 12 ms when the pool had slept 0.3 s before it, and
  // 7-8 ms with the worker kept off the caller's CPU. So before waking sleeping workers
  // the caller narrows their allowed CPUs to the process's minus its own (a system call
  // per worker, only when they sleep and the caller has moved since the last time;
  // spinning workers are running somewhere already and are left alone).
  void place_workers(int helpers) {
#if defined(__linux__)
    if (spinning_.load(std::memory_order_relaxed) >= helpers) return;
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu == placed_cpu_ || !have_allowed_) return;
    cpu_set_t mask = allowed_;
    CPU_CLR(cpu, &mask);
    if (CPU_COUNT(&mask) == 0) return;
    // (remembered only when every worker was reached: a new one may not have started)
    bool all = true;
    const int n = static_cast<int>(workers_.size());
    for (int i = 0; i < n; ++i) {
      const long tid = tids_[i].load(std::memory_order_acquire);
      all = tid > 0 && sched_setaffinity(static_cast<pid_t>(tid), sizeof mask, &mask) == 0 && all;
    }
    placed_cpu_ = all ? cpu : -1;
#else
    (void)helpers;
#endif
  }

  void worker_loop(int index, unsigned seen) {
    t_pool_index = index + 1;
#if defined(__linux__)
    tids_[index].store(syscall(SYS_gettid), std::memory_order_release);
    pthread_setname_np(pthread_self(), "rosenblatt");  // (in top -H, and for the tests)
#else
    (void)index;
#endif
    for (;;) {
      auto t0 = std::chrono::steady_clock::now();
      int polls = 0;
      spinning_.fetch_add(1, std::memory_order_relaxed);
      while (generation_.load(std::memory_order_acquire) == seen &&
             !stop_.load(std::memory_order_relaxed)) {
        cpu_relax();
        if (++polls == 256) {
          polls = 0;
          if (std::chrono::steady_clock::now() - t0 > kSpin) break;
        }
      }
      spinning_.fetch_sub(1, std::memory_order_relaxed);
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || generation_.load() != seen; });
        if (stop_) return;
        seen = generation_.load();
        job = current_;
        if (job && job->helpers.load() < job->max_helpers) {
          job->helpers.fetch_add(1);
        } else {
          job = nullptr;
        }
      }
      if (job) {
        run_tasks(*job);
        job->helpers.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  std::mutex submit_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  Job* current_ = nullptr;
  std::atomic<unsigned> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> spinning_{0};  // workers polling for a job (awake and idle)
  static constexpr int kMaxWorkers = 63;
  std::atomic<long> tids_[kMaxWorkers] = {};  // the workers' thread ids (Linux), 0 unknown
  int placed_cpu_ = -1;                       // the caller CPU that the workers were last kept off
#if defined(__linux__)
  cpu_set_t allowed_;
  bool have_allowed_ = false;
#endif
};

// Heap-allocated so that a forked child can abandon the parent's pool (its threads do not
// exist in the child and its mutexes may be held) without ever touching it.
Pool* g_pool = nullptr;
std::mutex g_pool_mutex;
std::atomic<int> g_default_threads{0};
// hardware_threads() is a system call; kernels resolve their thread count on every call
// (about 0.3 us each, a quarter of a tiny layer's time), so the default is read once. A
// forked child reads it again (the affinity mask may differ there).
std::atomic<int> g_hardware_threads{0};

Pool& pool() {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  if (!g_pool) g_pool = new Pool();
  return *g_pool;
}

#if defined(__unix__) || defined(__APPLE__)
void after_fork_in_child() {
  g_pool = nullptr;  // leaked on purpose, see above
  g_hardware_threads.store(0);
  new (&g_pool_mutex) std::mutex();
}
const int g_atfork = pthread_atfork(nullptr, nullptr, after_fork_in_child);
#endif

struct PoolReaper {
  ~PoolReaper() { shutdown_pool(); }
} g_reaper;

struct ScratchSlots {
  void* ptr[kScratchSlots] = {};
  std::size_t cap[kScratchSlots] = {};
  ~ScratchSlots() {
    for (int i = 0; i < kScratchSlots; ++i) std::free(ptr[i]);
  }
};

}  // namespace

int hardware_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

int get_num_threads() {
  int n = g_default_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  n = g_hardware_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = hardware_threads();
    g_hardware_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) { g_default_threads.store(n > 0 ? n : 0); }

int resolve_threads(int requested) {
  int n = requested > 0 ? requested : get_num_threads();
  return n > 64 ? 64 : n;
}

void parallel_run(long n_tasks, int n_threads, TaskFn fn, void* ctx, IdleFn idle, void* idle_ctx) {
  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.idle = idle;
  job.idle_ctx = idle_ctx;
  job.n_tasks = n_tasks;
  long helpers = n_threads - 1;
  if (helpers > n_tasks - 1) helpers = n_tasks - 1;
  job.max_helpers = static_cast<int>(helpers);
  if (job.max_helpers <= 0) {
    for (long t = 0; t < n_tasks; ++t) fn(ctx, t);
    return;
  }
  pool().run(job);
}

int idle_spinning_workers() {
  Pool* p;
  {
    std::lock_guard<std::mutex> lk(g_pool_mutex);
    p = g_pool;
  }
  return p ? p->spinning() : 0;
}

void wake_workers(int n_threads) {
  if (n_threads > 1) pool().wake(n_threads - 1);
}

int pool_thread_index() { return t_pool_index; }

void* thread_scratch(int slot, std::size_t bytes) {
  thread_local ScratchSlots slots;
  if (bytes > slots.cap[slot]) {
    std::free(slots.ptr[slot]);
    std::size_t cap = (bytes + bytes / 4 + 4095) & ~static_cast<std::size_t>(4095);
    slots.ptr[slot] = std::aligned_alloc(64, cap);
    if (!slots.ptr[slot]) {
      slots.cap[slot] = 0;
      throw std::bad_alloc();
    }
    slots.cap[slot] = cap;
  }
  return slots.ptr[slot];
}

void shutdown_pool() {
  Pool* p;
  {
    std::lock_guard<std::mutex> lk(g_pool_mutex);
    p = g_pool;
  }
  if (p) p->stop_workers();
}

}  // namespace rosenblatt
