// rosenblatt._core: the only pybind11 file. It checks every array cheaply (dtype, shape,
// contiguity, alignment, writability, index ranges) so that no input can make a kernel read
// or write out of bounds, releases the GIL, and calls the kernels of the ISA chosen at
// import. Full argument validation with friendly messages lives in kernels.py; the checks
// here are the safety net for direct callers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>  // perceptron
#include <climits>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>  // perceptron
#include <vector>

#include "rosenblatt/codes.hpp"
#include "rosenblatt/dispatch.hpp"
#include "rosenblatt/threads.hpp"

namespace py = pybind11;
namespace rb = rosenblatt;
using rb::index_t;

namespace {

const rb::IsaKernels* g_isa = nullptr;

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const rb::IsaKernels* choose_isa() {
  const rb::IsaKernels* sup[8];
  const int ns = rb::supported_isas(sup, 8);
  const char* env = std::getenv("ROSENBLATT_ISA");
  std::string want = env ? lower(env) : "";
  if (want.empty() || want == "auto" || want == "best") return sup[0];
  if (want == "base") want = "baseline";
  if (want == "avx-512" || want == "avx512f") want = "avx512";
  for (int i = 0; i < ns; ++i)
    if (want == sup[i]->name) return sup[i];
  const char* compiled[8];
  const int nc = rb::compiled_isas(compiled, 8);
  std::string have, built;
  for (int i = 0; i < ns; ++i) have += std::string(i ? ", " : "") + sup[i]->name;
  for (int i = 0; i < nc; ++i) built += std::string(i ? ", " : "") + compiled[i];
  bool is_built = false;
  for (int i = 0; i < nc; ++i) is_built |= want == compiled[i];
  throw py::import_error(
      "ROSENBLATT_ISA=" + std::string(env) +
      (is_built ? " is not supported by this CPU" : " is not an ISA of this build") +
      "; this CPU can run: " + have + " (compiled: " + built + ")");
}

int threads_arg(std::optional<int> n) { return rb::resolve_threads(n ? *n : 0); }

template <class T>
constexpr const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// A checked view of one NumPy array argument.
template <class T>
struct View {
  T* ptr = nullptr;
  index_t shape[2] = {0, 0};
  int ndim = 0;
  index_t size() const { return ndim == 1 ? shape[0] : shape[0] * shape[1]; }
};

template <class T>
View<T> view(py::handle h, const char* name, int ndim, bool writable, bool optional = false) {
  View<T> v;
  if (h.is_none()) {
    if (optional) return v;
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got None");
  }
  if (!py::isinstance<py::array>(h))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(h);
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                          std::to_string(a.ndim()) + "-D");
  const int flags = a.flags();
  if (!(flags & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) + " must be aligned");
  if (writable && !a.writeable())
    throw py::value_error(std::string(name) + " is written in place but is read-only");
  v.ndim = ndim;
  for (int i = 0; i < ndim; ++i) v.shape[i] = a.shape(i);
  v.ptr = static_cast<T*>(writable ? a.mutable_data() : const_cast<void*>(a.data()));
  return v;
}

template <class V>
inline void expect_shape(const V& v, const char* name, index_t r, index_t c = -1) {
  bool ok = v.shape[0] == r && (v.ndim == 1 || v.shape[1] == c);
  if (__builtin_expect(!ok, 0)) {
    std::string want =
        "(" + std::to_string(r) + (v.ndim == 2 ? ", " + std::to_string(c) : ",") + ")";
    std::string got = "(" + std::to_string(v.shape[0]) +
                      (v.ndim == 2 ? ", " + std::to_string(v.shape[1]) : ",") + ")";
    throw py::value_error(std::string(name) + " must have shape " + want + ", got " + got);
  }
}

// An output must not share memory with an input the kernel reads while writing it: a
// product would read the input half overwritten. For the C-contiguous views here,
// overlapping byte ranges are shared memory. kernels.dense_forward's fast path for this
// backend relies on this check (it passes `out` without looking at it).
template <class T, class U>
void expect_apart(const View<T>& out, const char* out_name, const View<U>& in,
                  const char* in_name) {
  if (!out.ptr || !in.ptr) return;
  const char* o0 = reinterpret_cast<const char*>(out.ptr);
  const char* o1 = o0 + out.size() * index_t(sizeof(T));
  const char* i0 = reinterpret_cast<const char*>(in.ptr);
  const char* i1 = i0 + in.size() * index_t(sizeof(U));
  if (o0 < i1 && i0 < o1)
    throw py::value_error(std::string(out_name) + " must not share memory with " + in_name +
                          ": the kernel reads " + in_name + " while it writes " + out_name +
                          "; pass a separate array");
}

// float32 or float64, from the array that fixes the dtype of the call.
bool is_f64(py::handle h, const char* name) {
  if (!py::isinstance<py::array>(h))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray");
  auto dt = py::reinterpret_borrow<py::array>(h).dtype();
  if (dt.equal(py::dtype::of<double>())) return true;
  if (dt.equal(py::dtype::of<float>())) return false;
  throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " +
                       std::string(py::str(dt)));
}

template <class T>
const rb::KernelSet<T>& ks() {
  if constexpr (sizeof(T) == 4)
    return g_isa->f32;
  else
    return g_isa->f64;
}

void check_act(int act, const char* what) {
  if (act < 0 || act >= rb::codes::N_ACTIVATIONS)
    throw py::value_error(std::string(what) + ": unknown activation code " + std::to_string(act));
}

void check_differentiable(int act) {
  check_act(act, "activation");
  if (rb::codes::is_step(act))
    throw py::value_error(
        "step activations (heaviside, sign) are forward-only: they have no useful gradient");
  if (act == rb::codes::SOFTMAX)
    throw py::value_error("softmax has no elementwise derivative; pair it with log_loss");
}

// ---------------------------------------------------------------------------------------
// Lean plumbing for the kernels called once per layer or per prediction (dense_forward,
// dense_backward, mlp_forward). A tiny layer (10x2 @ 2x8) computes in ~0.1 us; pybind11's
// generic dispatch (~0.3 us), a dtype object built per check and a GIL round trip
// (~0.1-0.2 us) would cost several times that. These three are METH_FASTCALL functions with
// the same names, parameters and defaults, their arrays are checked straight from the
// ndarray struct, and the GIL is kept for work too short for another thread to gain from.

PyTypeObject* g_ndarray = nullptr;
PyObject* g_descr[2] = {nullptr, nullptr};  // the builtin float32 / float64 dtypes

void init_fast_plumbing() {
  auto& api = py::detail::npy_api::get();
  g_ndarray = api.PyArray_Type_;
  g_descr[0] = api.PyArray_DescrFromType_(py::detail::npy_api::NPY_FLOAT_);  // kept for life
  g_descr[1] = api.PyArray_DescrFromType_(py::detail::npy_api::NPY_DOUBLE_);
  if (!g_descr[0] || !g_descr[1]) throw py::error_already_set();
}

// view<T> for the common case: an exact ndarray of the builtin dtype, C-contiguous, aligned
// (and writable for outputs). Anything else - equivalent dtype instances, subclasses, and
// every bad argument - goes through view<T>, which accepts the first two and raises.
template <class T>
View<T> fview(py::handle h, const char* name, int ndim, bool writable, bool optional = false) {
  PyObject* o = h.ptr();
  if (Py_TYPE(o) == g_ndarray) {
    using api = py::detail::npy_api;
    const auto* a = py::detail::array_proxy(o);
    const int want = api::NPY_ARRAY_C_CONTIGUOUS_ | api::NPY_ARRAY_ALIGNED_ |
                     (writable ? api::NPY_ARRAY_WRITEABLE_ : 0);
    if (a->descr == g_descr[sizeof(T) == 8] && a->nd == ndim && (a->flags & want) == want) {
      View<T> v;
      v.ndim = ndim;
      v.shape[0] = a->dimensions[0];
      if (ndim == 2) v.shape[1] = a->dimensions[1];
      v.ptr = reinterpret_cast<T*>(a->data);
      return v;
    }
  }
  return view<T>(h, name, ndim, writable, optional);
}

bool fis_f64(py::handle h, const char* name) {
  PyObject* o = h.ptr();
  if (Py_TYPE(o) == g_ndarray) {
    const PyObject* d = py::detail::array_proxy(o)->descr;
    if (d == g_descr[1]) return true;
    if (d == g_descr[0]) return false;
  }
  return is_f64(h, name);
}

// Multiply-adds below which a kernel keeps the GIL (about 2 us of work at most).
constexpr double kKeepGilWork = 16384.0;

// py::gil_scoped_release when `release`, nothing otherwise.
class NoGilIf {
 public:
  explicit NoGilIf(bool release) : st_(release ? PyEval_SaveThread() : nullptr) {}
  ~NoGilIf() {
    if (st_) PyEval_RestoreThread(st_);
  }
  NoGilIf(const NoGilIf&) = delete;
  NoGilIf& operator=(const NoGilIf&) = delete;

 private:
  PyThreadState* st_;
};

// ---------------------------------------------------------------------------------------

template <class T>
void activation_forward_t(py::handle Z, int act, py::handle A, int nt) {
  check_act(act, "activation_forward");
  auto z = view<T>(Z, "Z", 2, false);
  auto a = view<T>(A, "A", 2, true);
  expect_shape(a, "A", z.shape[0], z.shape[1]);
  if (z.size() == 0) return;
  py::gil_scoped_release nogil;
  ks<T>().activation_forward(z.ptr, a.ptr, z.shape[0], z.shape[1], act, nt);
}

template <class T>
void activation_backward_t(py::handle Z, py::handle A, py::handle dA, int act, py::handle dZ,
                           int nt) {
  check_differentiable(act);
  auto a = view<T>(A, "A", 2, false);
  auto da = view<T>(dA, "dA", 2, false);
  auto dz = view<T>(dZ, "dZ", 2, true);
  auto z = view<T>(Z, "Z", 2, false, !rb::codes::needs_z(act));
  expect_shape(da, "dA", a.shape[0], a.shape[1]);
  expect_shape(dz, "dZ", a.shape[0], a.shape[1]);
  if (z.ptr) expect_shape(z, "Z", a.shape[0], a.shape[1]);
  if (a.size() == 0) return;
  py::gil_scoped_release nogil;
  ks<T>().activation_backward(z.ptr, a.ptr, da.ptr, dz.ptr, a.shape[0], a.shape[1], act, nt);
}

template <class T>
void dense_forward_t(py::handle X, py::handle W, py::handle b, int act, py::handle A, py::handle Z,
                     int nt) {
  check_act(act, "dense_forward");
  auto x = fview<T>(X, "X", 2, false);
  auto w = fview<T>(W, "W", 2, false);
  const index_t n = x.shape[0], k = x.shape[1], m = w.shape[1];
  expect_shape(w, "W", k, m);
  auto bb = fview<T>(b, "b", 1, false);
  expect_shape(bb, "b", m);
  auto a = fview<T>(A, "A", 2, true);
  expect_shape(a, "A", n, m);
  auto z = fview<T>(Z, "Z", 2, true, true);
  if (z.ptr) expect_shape(z, "Z", n, m);
  for (const auto& [out, name] : {std::pair{a, "A"}, std::pair{z, "Z"}}) {
    expect_apart(out, name, x, "X");
    expect_apart(out, name, w, "W");
    expect_apart(out, name, bb, "b");
  }
  expect_apart(a, "A", z, "Z");
  if (n == 0 || m == 0) return;
  NoGilIf nogil(double(n) * double(m) * double(k + 1) > kKeepGilWork);
  ks<T>().dense_forward(x.ptr, w.ptr, bb.ptr, a.ptr, z.ptr, n, k, m, act, nt);
}

template <class T>
void dense_backward_t(py::handle X, py::handle W, py::handle A, py::handle Z, py::handle dA,
                      int act, double l2, py::handle dW, py::handle db, py::handle dX, int nt) {
  check_differentiable(act);
  auto x = fview<T>(X, "X", 2, false);
  auto w = fview<T>(W, "W", 2, false);
  const index_t n = x.shape[0], k = x.shape[1], m = w.shape[1];
  expect_shape(w, "W", k, m);
  auto a = fview<T>(A, "A", 2, false);
  expect_shape(a, "A", n, m);
  auto da = fview<T>(dA, "dA", 2, false);
  expect_shape(da, "dA", n, m);
  auto z = fview<T>(Z, "Z", 2, false, !rb::codes::needs_z(act));
  if (z.ptr) expect_shape(z, "Z", n, m);
  auto dw = fview<T>(dW, "dW", 2, true);
  expect_shape(dw, "dW", k, m);
  auto dbv = fview<T>(db, "db", 1, true);
  expect_shape(dbv, "db", m);
  auto dx = fview<T>(dX, "dX", 2, true, true);
  if (dx.ptr) expect_shape(dx, "dX", n, k);
  for (const auto& [out, name] : {std::pair{dw, "dW"}, std::pair{dbv, "db"}, std::pair{dx, "dX"}})
    for (const auto& [in, in_name] : {std::pair{x, "X"}, std::pair{w, "W"}, std::pair{a, "A"},
                                      std::pair{z, "Z"}, std::pair{da, "dA"}})
      expect_apart(out, name, in, in_name);
  expect_apart(dw, "dW", dbv, "db");
  expect_apart(dw, "dW", dx, "dX");
  expect_apart(dbv, "db", dx, "dX");
  if (k == 0 && m == 0) return;
  NoGilIf nogil(3.0 * double(n) * double(m) * double(k + 1) > kKeepGilWork);
  ks<T>().dense_backward(x.ptr, w.ptr, a.ptr, z.ptr, da.ptr, dw.ptr, dbv.ptr, dx.ptr, n, k, m, act,
                         l2, nt);
}

template <class T>
double loss_gradient_t(py::handle P, py::handle Y, py::handle sw, int loss, double delta,
                       py::handle G, int nt) {
  if (loss < 0 || loss >= rb::codes::N_LOSSES)
    throw py::value_error("unknown loss code " + std::to_string(loss));
  auto p = view<T>(P, "P", 2, false);
  auto y = view<T>(Y, "Y", 2, false);
  expect_shape(y, "Y", p.shape[0], p.shape[1]);
  auto g = view<T>(G, "G", 2, true);
  expect_shape(g, "G", p.shape[0], p.shape[1]);
  auto s = view<T>(sw, "sample_weight", 1, false, true);
  if (s.ptr) expect_shape(s, "sample_weight", p.shape[0]);
  py::gil_scoped_release nogil;
  return ks<T>().loss_gradient(p.ptr, y.ptr, s.ptr, g.ptr, p.shape[0], p.shape[1], loss, delta, nt);
}

template <class T>
struct OptArrays {
  View<T> p, g;
};

template <class T>
OptArrays<T> opt_arrays(py::handle params, py::handle grads) {
  OptArrays<T> o{view<T>(params, "params", 1, true), view<T>(grads, "grads", 1, false)};
  expect_shape(o.g, "grads", o.p.shape[0]);
  return o;
}

template <class T>
void sgd_step_t(py::handle params, py::handle grads, py::handle vel, double lr, double mom,
                bool nesterov, int nt) {
  auto o = opt_arrays<T>(params, grads);
  auto v = view<T>(vel, "velocity", 1, true);
  expect_shape(v, "velocity", o.p.shape[0]);
  py::gil_scoped_release nogil;
  ks<T>().sgd_step(o.p.ptr, o.g.ptr, v.ptr, o.p.shape[0], lr, mom, nesterov, nt);
}

template <class T>
void adagrad_step_t(py::handle params, py::handle grads, py::handle acc, double lr, double eps,
                    int nt) {
  auto o = opt_arrays<T>(params, grads);
  auto s = view<T>(acc, "accum", 1, true);
  expect_shape(s, "accum", o.p.shape[0]);
  py::gil_scoped_release nogil;
  ks<T>().adagrad_step(o.p.ptr, o.g.ptr, s.ptr, o.p.shape[0], lr, eps, nt);
}

template <class T>
void rmsprop_step_t(py::handle params, py::handle grads, py::handle sq, double lr, double rho,
                    double eps, int nt) {
  auto o = opt_arrays<T>(params, grads);
  auto s = view<T>(sq, "sq", 1, true);
  expect_shape(s, "sq", o.p.shape[0]);
  py::gil_scoped_release nogil;
  ks<T>().rmsprop_step(o.p.ptr, o.g.ptr, s.ptr, o.p.shape[0], lr, rho, eps, nt);
}

template <class T>
void adam_step_t(py::handle params, py::handle grads, py::handle m, py::handle v, double lr,
                 double b1, double b2, double eps, double wd, std::int64_t t, int nt) {
  auto o = opt_arrays<T>(params, grads);
  auto mm = view<T>(m, "m", 1, true);
  expect_shape(mm, "m", o.p.shape[0]);
  auto vv = view<T>(v, "v", 1, true);
  expect_shape(vv, "v", o.p.shape[0]);
  py::gil_scoped_release nogil;
  ks<T>().adam_step(o.p.ptr, o.g.ptr, mm.ptr, vv.ptr, o.p.shape[0], lr, b1, b2, eps, wd, t, nt);
}

void check_optimizer(int opt) {
  if (opt < 0 || opt >= rb::codes::N_OPTIMIZERS)
    throw py::value_error("unknown optimizer code " + std::to_string(opt));
}

template <class T>
void optimizer_step_t(py::handle params, py::handle grads, py::handle state, int opt,
                      py::handle hyper, py::handle step, int nt) {
  check_optimizer(opt);
  auto o = opt_arrays<T>(params, grads);
  auto st = view<T>(state, "state", 2, true);
  expect_shape(st, "state", rb::codes::optimizer_slots(opt), o.p.shape[0]);
  auto h = view<double>(hyper, "hyper", 1, false);
  if (h.shape[0] < rb::codes::N_HYPER)
    throw py::value_error("hyper must have at least N_HYPER entries");
  auto s = view<std::int64_t>(step, "step", 1, true);
  expect_shape(s, "step", 1);
  py::gil_scoped_release nogil;
  ks<T>().optimizer_step(o.p.ptr, o.g.ptr, st.ptr, o.p.shape[0], opt, h.ptr, s.ptr, nt);
}

// Layer widths and activation codes of a network; returns the flat parameter count.
index_t check_layers(const View<std::int64_t>& ls, const View<std::int32_t>& acts, bool training) {
  if (ls.shape[0] < 2) throw py::value_error("layer_sizes must list at least 2 widths");
  const index_t L = ls.shape[0] - 1;
  if (L > 64) throw py::value_error("at most 64 layers are supported");
  expect_shape(acts, "activations", L);
  index_t total = 0;
  for (index_t i = 0; i < ls.shape[0]; ++i)
    if (ls.ptr[i] < 1 || ls.ptr[i] > (index_t(1) << 31))
      throw py::value_error("layer_sizes must be positive");
  for (index_t i = 0; i < L; ++i) {
    const int a = acts.ptr[i];
    check_act(a, "activations");
    if (i < L - 1 && (a == rb::codes::SOFTMAX || a == rb::codes::EXP))
      throw py::value_error("hidden layers need elementwise activations (not softmax/exp)");
    if (training && rb::codes::is_step(a))
      throw py::value_error(
          "step activations (heaviside, sign) are forward-only: they "
          "cannot be trained by backpropagation");
    total += index_t(ls.ptr[i]) * index_t(ls.ptr[i + 1]) + index_t(ls.ptr[i + 1]);
  }
  return total;
}

template <class T>
void mlp_forward_t(py::handle X, py::handle params, py::handle layer_sizes, py::handle activations,
                   py::handle out, py::handle work, int nt) {
  auto x = fview<T>(X, "X", 2, false);
  auto ls = view<std::int64_t>(layer_sizes, "layer_sizes", 1, false);
  auto ac = view<std::int32_t>(activations, "activations", 1, false);
  const index_t total = check_layers(ls, ac, false);
  const index_t n = x.shape[0], L = ls.shape[0] - 1;
  expect_shape(x, "X", n, ls.ptr[0]);
  auto p = fview<T>(params, "params", 1, false);
  expect_shape(p, "params", total);
  auto o = fview<T>(out, "out", 2, true);
  expect_shape(o, "out", n, ls.ptr[L]);
  auto w = fview<T>(work, "workspace", 1, true);
  index_t maxw = 0;
  for (index_t i = 1; i <= L; ++i) maxw = std::max<index_t>(maxw, ls.ptr[i]);
  if (w.shape[0] < 2 * n * maxw)
    throw py::value_error("workspace must have at least 2 * n * max(layer_sizes[1:]) = " +
                          std::to_string(2 * n * maxw) + " entries");
  expect_apart(o, "out", x, "X");
  expect_apart(o, "out", p, "params");
  expect_apart(w, "workspace", x, "X");
  expect_apart(w, "workspace", p, "params");
  expect_apart(o, "out", w, "workspace");
  if (n == 0) return;
  NoGilIf nogil(double(n) * double(total) > kKeepGilWork);
  ks<T>().mlp_forward(x.ptr, n, p.ptr, ls.ptr, ac.ptr, int(L), o.ptr, w.ptr, nt);
}

bool check_signals(void*) {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

template <class T>
double train_epoch_t(py::handle X, py::handle Y, py::handle sw, py::handle order,
                     std::int64_t batch_size, py::handle layer_sizes, py::handle activations,
                     int loss, py::handle params, py::handle grads, py::handle state, int optimizer,
                     py::handle hyper, py::handle step, py::handle workspace, py::handle grad_norms,
                     py::handle nonfinite, std::int64_t epoch_rows, py::handle epoch_totals,
                     int nt) {
  if (loss < 0 || loss >= rb::codes::N_LOSSES)
    throw py::value_error("unknown loss code " + std::to_string(loss));
  check_optimizer(optimizer);
  if (batch_size < 1) throw py::value_error("batch_size must be >= 1");
  auto x = view<T>(X, "X", 2, false);
  const index_t n = x.shape[0];
  auto ls = view<std::int64_t>(layer_sizes, "layer_sizes", 1, false);
  auto ac = view<std::int32_t>(activations, "activations", 1, false);
  const index_t P = check_layers(ls, ac, true);
  const index_t L = ls.shape[0] - 1;
  const int out_act = ac.ptr[L - 1];
  if (out_act == rb::codes::SOFTMAX && loss != rb::codes::LOG_LOSS)
    throw py::value_error("a softmax output must be trained with log_loss");
  expect_shape(x, "X", n, ls.ptr[0]);
  auto y = view<T>(Y, "Y", 2, false);
  expect_shape(y, "Y", n, ls.ptr[L]);
  auto s = view<T>(sw, "sample_weight", 1, false, true);
  if (s.ptr) expect_shape(s, "sample_weight", n);
  auto ord = view<std::int64_t>(order, "order", 1, false);
  for (index_t i = 0; i < ord.shape[0]; ++i)
    if (ord.ptr[i] < 0 || ord.ptr[i] >= n)
      throw py::value_error("order must hold row indices in [0, " + std::to_string(n) + ")");
  auto p = view<T>(params, "params", 1, true);
  expect_shape(p, "params", P);
  auto g = view<T>(grads, "grads", 1, true);
  expect_shape(g, "grads", P);
  auto st = view<T>(state, "state", 2, true);
  expect_shape(st, "state", rb::codes::optimizer_slots(optimizer), P);
  auto h = view<double>(hyper, "hyper", 1, false);
  if (h.shape[0] < rb::codes::N_HYPER)
    throw py::value_error("hyper must have at least N_HYPER entries");
  auto stp = view<std::int64_t>(step, "step", 1, true);
  expect_shape(stp, "step", 1);
  auto gn = view<double>(grad_norms, "grad_norms", 1, true, true);
  if (gn.ptr) expect_shape(gn, "grad_norms", L);
  auto nf = view<std::int64_t>(nonfinite, "nonfinite", 1, true, true);
  if (nf.ptr) expect_shape(nf, "nonfinite", 1);
  expect_apart(nf, "nonfinite", ord, "order");
  expect_apart(nf, "nonfinite", ls, "layer_sizes");
  expect_apart(nf, "nonfinite", stp, "step");
  if (epoch_rows < 0) throw py::value_error("epoch_rows must be >= 0");
  const index_t n_epochs = epoch_rows > 0 ? ord.shape[0] / epoch_rows : 1;
  if (epoch_rows > 0 && ord.shape[0] % epoch_rows != 0)
    throw py::value_error(
        "order must hold whole epochs of epoch_rows=" + std::to_string(epoch_rows) + " rows; got " +
        std::to_string(ord.shape[0]));
  auto et = view<double>(epoch_totals, "epoch_totals", 1, true, true);
  if (et.ptr) expect_shape(et, "epoch_totals", n_epochs);
  expect_apart(et, "epoch_totals", h, "hyper");
  expect_apart(et, "epoch_totals", gn, "grad_norms");
  auto ws = view<T>(workspace, "workspace", 1, true);
  index_t widths = 0;
  for (index_t i = 1; i <= L; ++i) widths += ls.ptr[i];
  const index_t need = index_t(batch_size) * (ls.ptr[0] + ls.ptr[L] + 1 + 4 * widths);
  if (ws.shape[0] < need)
    throw py::value_error("workspace must have at least " + std::to_string(need) +
                          " entries (train_workspace_size)");

  rb::TrainArgs<T> a{};
  a.X = x.ptr;
  a.Y = y.ptr;
  a.sample_weight = s.ptr;
  a.n_rows = n;
  a.n_features = ls.ptr[0];
  a.n_outputs = ls.ptr[L];
  a.order = ord.ptr;
  a.n_order = ord.shape[0];
  a.batch_size = batch_size;
  a.layer_sizes = ls.ptr;
  a.activations = ac.ptr;
  a.n_layers = int(L);
  a.loss = loss;
  a.params = p.ptr;
  a.grads = g.ptr;
  a.state = st.ptr;
  a.n_params = P;
  a.optimizer = optimizer;
  a.hyper = h.ptr;
  a.step = stp.ptr;
  a.workspace = ws.ptr;
  a.workspace_len = ws.shape[0];
  a.grad_norms = gn.ptr;
  a.nonfinite_row = nf.ptr;
  a.epoch_rows = epoch_rows;
  a.epoch_totals = et.ptr;
  a.n_threads = nt;
  a.interrupt.fn = &check_signals;
  bool interrupted = false;
  double total;
  {
    py::gil_scoped_release nogil;
    total = ks<T>().train_epoch(a, &interrupted);
  }
  if (interrupted) throw py::error_already_set();
  return total;
}

// Binds a kernel whose dtype is fixed by its first array argument.
#define RB_DISPATCH(first, name, call) (is_f64(first, name) ? call<double> : call<float>)

// ---- perceptron ----
// Interrupt check shared by the one-vs-rest tasks: the thread that released the GIL polls
// Python's signal handlers; a KeyboardInterrupt sets a flag every task sees.
struct PerceptronStop {
  std::atomic<bool> flag{false};
  std::thread::id caller = std::this_thread::get_id();
};

bool perceptron_poll(void* ctx) {
  auto* s = static_cast<PerceptronStop*>(ctx);
  if (s->flag.load(std::memory_order_relaxed)) return true;
  if (std::this_thread::get_id() != s->caller) return false;
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) s->flag.store(true);
  return s->flag.load();
}

void check_order(const View<std::int64_t>& ord, index_t n) {
  for (index_t i = 0; i < ord.shape[0]; ++i)
    if (ord.ptr[i] < 0 || ord.ptr[i] >= n)
      throw py::value_error("order must hold row indices in [0, " + std::to_string(n) + ")");
}

// Y: targets (n, k) in X's dtype, or int64 class labels (n,) for one-hot targets (k is then
// W's second dimension).
template <class T>
std::int64_t perceptron_epoch_t(py::handle X, py::handle Y, py::handle order, py::handle W,
                                py::handle b, double eta, int step, int nt) {
  if (step != rb::codes::HEAVISIDE && step != rb::codes::SIGN)
    throw py::value_error("step must be the heaviside or sign code");
  auto x = view<T>(X, "X", 2, false);
  const index_t n = x.shape[0], d = x.shape[1];
  const bool onehot =
      py::isinstance<py::array>(Y) && py::reinterpret_borrow<py::array>(Y).ndim() == 1;
  View<T> y;
  View<std::int64_t> lab;
  auto w = view<T>(W, "W", 2, true);
  index_t k;
  if (onehot) {
    lab = view<std::int64_t>(Y, "labels", 1, false);
    expect_shape(lab, "labels", n);
    k = w.shape[1];
  } else {
    y = view<T>(Y, "Y", 2, false);
    k = y.shape[1];
    expect_shape(y, "Y", n, k);
  }
  auto ord = view<std::int64_t>(order, "order", 1, false);
  check_order(ord, n);
  expect_shape(w, "W", d, k);
  auto bb = view<T>(b, "b", 1, true);
  expect_shape(bb, "b", k);
  py::gil_scoped_release nogil;
  return ks<T>().perceptron_epoch(x.ptr, y.ptr, lab.ptr, ord.ptr, ord.shape[0], d, k, w.ptr, bb.ptr,
                                  eta, step, nt);
}

// ydim 1: one problem, y (n,); ydim 2: K problems, Y (K, n) of -1/+1 or int64 labels (n,)
// (problem c's y is +1 where labels == c; K is then W's first dimension).
template <class T>
rb::PerceptronArgs<T> perceptron_args(py::handle X, py::handle Y, int ydim, py::handle W,
                                      py::handle B, py::handle sw, py::handle cw, double eta0,
                                      bool fit_intercept) {
  auto x = view<T>(X, "X", 2, false);
  const index_t n = x.shape[0], d = x.shape[1];
  const bool labels =
      ydim == 2 && py::isinstance<py::array>(Y) && py::reinterpret_borrow<py::array>(Y).ndim() == 1;
  View<double> y;
  View<std::int64_t> lab;
  index_t K = 1;
  if (labels) {
    lab = view<std::int64_t>(Y, "labels", 1, false);
    expect_shape(lab, "labels", n);
    auto w0 = view<T>(W, "W", 2, true);
    K = w0.shape[0];
  } else {
    y = view<double>(Y, "Y", ydim, false);
    K = ydim == 1 ? 1 : y.shape[0];
    if (ydim == 1)
      expect_shape(y, "y", n);
    else
      expect_shape(y, "Y", K, n);
  }
  auto w = view<T>(W, "W", ydim, true);
  if (ydim == 1)
    expect_shape(w, "w", d);
  else
    expect_shape(w, "W", K, d);
  auto bb = view<double>(B, "B", 1, true);
  expect_shape(bb, "B", ydim == 1 ? 1 : K);
  auto s = view<double>(sw, "sample_weight", 1, false, true);
  if (s.ptr) expect_shape(s, "sample_weight", n);
  auto c = view<double>(cw, "class_weight", ydim, false);
  if (ydim == 1)
    expect_shape(c, "class_weight", 2);
  else
    expect_shape(c, "class_weight", K, 2);
  rb::PerceptronArgs<T> a{};
  a.X = x.ptr;
  a.n = n;
  a.d = d;
  a.Y = y.ptr;
  a.labels = lab.ptr;
  a.sample_weight = s.ptr;
  a.class_weight = c.ptr;
  a.K = K;
  a.eta0 = eta0;
  a.fit_intercept = fit_intercept;
  a.W = w.ptr;
  a.B = bb.ptr;
  return a;
}

template <class T>
py::tuple perceptron_epoch_sklearn_t(py::handle X, py::handle y, py::handle order, py::handle w,
                                     py::handle b, double eta0, py::handle sw, py::handle cw,
                                     bool fit_intercept) {
  auto a = perceptron_args<T>(X, y, 1, w, b, sw, cw, eta0, fit_intercept);
  auto ord = view<std::int64_t>(order, "order", 1, false);
  check_order(ord, a.n);
  index_t mistakes = 0;
  double sumloss;
  {
    py::gil_scoped_release nogil;
    sumloss = ks<T>().perceptron_epoch_sklearn(a, ord.ptr, ord.shape[0], &mistakes);
  }
  return py::make_tuple(sumloss, static_cast<long long>(mistakes));
}

template <class T>
void perceptron_fit_sklearn_t(py::handle X, py::handle Y, py::handle W, py::handle B,
                              py::handle seeds, double eta0, py::handle sw, py::handle cw,
                              bool fit_intercept, bool shuffle, std::int64_t max_iter, double tol,
                              std::int64_t n_iter_no_change, py::handle n_iter, int nt) {
  auto a = perceptron_args<T>(X, Y, 2, W, B, sw, cw, eta0, fit_intercept);
  auto sd = view<std::int64_t>(seeds, "seeds", 1, false);
  expect_shape(sd, "seeds", a.K);
  auto it = view<std::int64_t>(n_iter, "n_iter", 1, true);
  expect_shape(it, "n_iter", a.K);
  if (max_iter < 1) throw py::value_error("max_iter must be >= 1");
  if (a.n < 1) throw py::value_error("X must have at least one row");
  PerceptronStop stop;
  a.seeds = sd.ptr;
  a.shuffle = shuffle;
  a.max_iter = max_iter;
  a.tol = tol;
  a.n_iter_no_change = n_iter_no_change;
  a.n_iter = it.ptr;
  a.n_threads = nt;
  a.interrupt.fn = &perceptron_poll;
  a.interrupt.ctx = &stop;
  bool interrupted = false, nonfinite = false;
  {
    py::gil_scoped_release nogil;
    ks<T>().perceptron_fit_sklearn(a, &interrupted, &nonfinite);
  }
  // W, B and n_iter hold the state reached; the caller checks them for non-finite values.
  // A KeyboardInterrupt seen while the caller waited for the workers' last classes may
  // have stopped none of them (they were finishing): it is raised all the same.
  if (PyErr_Occurred()) throw py::error_already_set();
}
// ---- end perceptron ----

// ---- batchnorm ----
template <class T>
void batchnorm_forward_t(py::handle Z, py::handle gamma, py::handle beta, double eps, py::handle Y,
                         py::handle Xhat, py::handle mean, py::handle invstd, int nt) {
  if (!(eps > 0.0)) throw py::value_error("eps must be > 0");
  auto z = view<T>(Z, "Z", 2, false);
  const index_t n = z.shape[0], k = z.shape[1];
  if (n < 1) throw py::value_error("Z must have at least one row");
  auto g = view<T>(gamma, "gamma", 1, false);
  expect_shape(g, "gamma", k);
  auto b = view<T>(beta, "beta", 1, false);
  expect_shape(b, "beta", k);
  auto y = view<T>(Y, "Y", 2, true);
  expect_shape(y, "Y", n, k);
  auto xh = view<T>(Xhat, "Xhat", 2, true);
  expect_shape(xh, "Xhat", n, k);
  auto mu = view<T>(mean, "mean", 1, true);
  expect_shape(mu, "mean", k);
  auto inv = view<T>(invstd, "invstd", 1, true);
  expect_shape(inv, "invstd", k);
  py::gil_scoped_release nogil;
  ks<T>().batchnorm_forward(z.ptr, g.ptr, b.ptr, eps, y.ptr, xh.ptr, mu.ptr, inv.ptr, n, k, nt);
}

template <class T>
void batchnorm_backward_t(py::handle dY, py::handle Xhat, py::handle gamma, py::handle invstd,
                          py::handle dZ, py::handle dgamma, py::handle dbeta, int nt) {
  auto dy = view<T>(dY, "dY", 2, false);
  const index_t n = dy.shape[0], k = dy.shape[1];
  if (n < 1) throw py::value_error("dY must have at least one row");
  auto xh = view<T>(Xhat, "Xhat", 2, false);
  expect_shape(xh, "Xhat", n, k);
  auto g = view<T>(gamma, "gamma", 1, false);
  expect_shape(g, "gamma", k);
  auto inv = view<T>(invstd, "invstd", 1, false);
  expect_shape(inv, "invstd", k);
  auto dz = view<T>(dZ, "dZ", 2, true);
  expect_shape(dz, "dZ", n, k);
  auto dg = view<T>(dgamma, "dgamma", 1, true);
  expect_shape(dg, "dgamma", k);
  auto db = view<T>(dbeta, "dbeta", 1, true);
  expect_shape(db, "dbeta", k);
  py::gil_scoped_release nogil;
  ks<T>().batchnorm_backward(dy.ptr, xh.ptr, g.ptr, inv.ptr, dz.ptr, dg.ptr, db.ptr, n, k, nt);
}

template <class T>
void batchnorm_inference_t(py::handle Z, py::handle gamma, py::handle beta, py::handle rmean,
                           py::handle rvar, double eps, py::handle Y, int nt) {
  if (!(eps > 0.0)) throw py::value_error("eps must be > 0");
  auto z = view<T>(Z, "Z", 2, false);
  const index_t n = z.shape[0], k = z.shape[1];
  auto g = view<T>(gamma, "gamma", 1, false);
  expect_shape(g, "gamma", k);
  auto b = view<T>(beta, "beta", 1, false);
  expect_shape(b, "beta", k);
  auto rm = view<T>(rmean, "running_mean", 1, false);
  expect_shape(rm, "running_mean", k);
  auto rv = view<T>(rvar, "running_var", 1, false);
  expect_shape(rv, "running_var", k);
  auto y = view<T>(Y, "Y", 2, true);
  expect_shape(y, "Y", n, k);
  if (n == 0) return;
  py::gil_scoped_release nogil;
  ks<T>().batchnorm_inference(z.ptr, g.ptr, b.ptr, rm.ptr, rv.ptr, eps, y.ptr, n, k, nt);
}
// ---- end batchnorm ----

// ---------------------------------------------------------------------------------------
// METH_FASTCALL entries (see "Lean plumbing" above).

// Binds a call's positional and keyword arguments to `names` (the first `nreq` required);
// absent optional arguments read as None. Errors read like Python's own.
template <std::size_t N>
bool bind_args(const char* fn, const char* const (&names)[N], std::size_t nreq,
               PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, PyObject* (&out)[N]) {
  if (nargs > Py_ssize_t(N)) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zu arguments (%zd given)", fn, N, nargs);
    return false;
  }
  for (std::size_t i = 0; i < N; ++i) out[i] = Py_ssize_t(i) < nargs ? args[i] : nullptr;
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t j = 0; j < nkw; ++j) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, j);
    std::size_t i = 0;
    while (i < N && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) ++i;
    if (i == N) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, key);
      return false;
    }
    if (out[i]) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[i]);
      return false;
    }
    out[i] = args[nargs + j];
  }
  for (std::size_t i = 0; i < N; ++i) {
    if (out[i]) continue;
    if (i < nreq) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %zu)", fn, names[i],
                   i + 1);
      return false;
    }
    out[i] = Py_None;
  }
  return true;
}

// A C int from a Python int or an object with __index__ (numpy integers); never a float.
int int_arg(PyObject* o, const char* name) {
  const long long v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be an int, got " + Py_TYPE(o)->tp_name);
  }
  if (v < INT_MIN || v > INT_MAX) throw py::value_error(std::string(name) + " is out of range");
  return int(v);
}

// n_threads: None or an int (<= 0: the library default).
int threads_obj(PyObject* o) {
  return rb::resolve_threads(o == Py_None ? 0 : int_arg(o, "n_threads"));
}

double float_arg(PyObject* o, const char* name) {
  const double v = PyFloat_AsDouble(o);
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be a real number, got " + Py_TYPE(o)->tp_name);
  }
  return v;
}

// Runs f, turning the C++ exceptions of the checks and kernels into Python errors.
template <class F>
PyObject* guarded(F&& f) {
  try {
    f();
    Py_RETURN_NONE;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

PyObject* fast_dense_forward(PyObject*, PyObject* const* args, Py_ssize_t nargs,
                             PyObject* kwnames) {
  static const char* const names[] = {"X", "W", "b", "activation", "A", "Z", "n_threads"};
  PyObject* a[7];
  if (!bind_args("dense_forward", names, 5, args, nargs, kwnames, a)) return nullptr;
  return guarded([&] {
    const int act = int_arg(a[3], "activation");
    const int nt = threads_obj(a[6]);
    (fis_f64(a[0], "X") ? dense_forward_t<double> : dense_forward_t<float>)(a[0], a[1], a[2], act,
                                                                            a[4], a[5], nt);
  });
}

PyObject* fast_dense_backward(PyObject*, PyObject* const* args, Py_ssize_t nargs,
                              PyObject* kwnames) {
  static const char* const names[] = {"X",  "W",  "A",  "Z",  "dA",       "activation",
                                      "l2", "dW", "db", "dX", "n_threads"};
  PyObject* a[11];
  if (!bind_args("dense_backward", names, 10, args, nargs, kwnames, a)) return nullptr;
  return guarded([&] {
    const int act = int_arg(a[5], "activation");
    const double l2 = float_arg(a[6], "l2");
    const int nt = threads_obj(a[10]);
    (fis_f64(a[0], "X") ? dense_backward_t<double> : dense_backward_t<float>)(a[0], a[1], a[2],
                                                                              a[3], a[4], act, l2,
                                                                              a[7], a[8], a[9], nt);
  });
}

PyObject* fast_mlp_forward(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"X",   "params",    "layer_sizes", "activations",
                                      "out", "workspace", "n_threads"};
  PyObject* a[7];
  if (!bind_args("mlp_forward", names, 6, args, nargs, kwnames, a)) return nullptr;
  return guarded([&] {
    const int nt = threads_obj(a[6]);
    (fis_f64(a[0], "X") ? mlp_forward_t<double> : mlp_forward_t<float>)(a[0], a[1], a[2], a[3],
                                                                        a[4], a[5], nt);
  });
}

#define RB_FASTCALL(f) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f))
PyMethodDef g_fast_defs[] = {
    {"dense_forward", RB_FASTCALL(fast_dense_forward), METH_FASTCALL | METH_KEYWORDS,
     "dense_forward(X, W, b, activation, A, Z=None, n_threads=0)\n--\n\n"
     "dense_forward(X: numpy.ndarray, W: numpy.ndarray, b: numpy.ndarray, activation: int, "
     "A: numpy.ndarray, Z: Optional[numpy.ndarray] = None, n_threads: Optional[int] = 0) -> "
     "None\n\nA = f(X W + b) into A (and the pre-activation into Z when given)."},
    {"dense_backward", RB_FASTCALL(fast_dense_backward), METH_FASTCALL | METH_KEYWORDS,
     "dense_backward(X, W, A, Z, dA, activation, l2, dW, db, dX, n_threads=0)\n--\n\n"
     "dense_backward(X: numpy.ndarray, W: numpy.ndarray, A: numpy.ndarray, "
     "Z: Optional[numpy.ndarray], dA: numpy.ndarray, activation: int, l2: float, "
     "dW: numpy.ndarray, db: numpy.ndarray, dX: Optional[numpy.ndarray], "
     "n_threads: Optional[int] = 0) -> None\n\n"
     "Gradients of a dense layer into dW, db and dX (None: skipped)."},
    {"mlp_forward", RB_FASTCALL(fast_mlp_forward), METH_FASTCALL | METH_KEYWORDS,
     "mlp_forward(X, params, layer_sizes, activations, out, workspace, n_threads=0)\n--\n\n"
     "mlp_forward(X: numpy.ndarray, params: numpy.ndarray, layer_sizes: numpy.ndarray, "
     "activations: numpy.ndarray, out: numpy.ndarray, workspace: numpy.ndarray, "
     "n_threads: Optional[int] = 0) -> None\n\nForward pass of a whole network into out."},
    {nullptr, nullptr, 0, nullptr}};
#undef RB_FASTCALL

}  // namespace

PYBIND11_MODULE(_core, mod) {
  mod.doc() = "rosenblatt compiled core: SIMD kernels behind the NumPy reference's API";
  g_isa = choose_isa();
  init_fast_plumbing();
  for (PyMethodDef* d = g_fast_defs; d->ml_name; ++d) {
    PyObject* f = PyCFunction_NewEx(d, nullptr, mod.attr("__name__").ptr());
    if (!f) throw py::error_already_set();
    mod.add_object(d->ml_name, py::reinterpret_steal<py::object>(f));
  }

  py::object none = py::none();
  using OptInt = std::optional<int>;

  mod.def(
      "activation_forward",
      [](py::handle Z, int act, py::handle A, OptInt nt) {
        (is_f64(Z, "Z") ? activation_forward_t<double>
                        : activation_forward_t<float>)(Z, act, A, threads_arg(nt));
      },
      py::arg("Z"), py::arg("activation"), py::arg("A"), py::arg("n_threads") = 0);
  mod.def(
      "activation_backward",
      [](py::handle Z, py::handle A, py::handle dA, int act, py::handle dZ, OptInt nt) {
        (is_f64(A, "A") ? activation_backward_t<double>
                        : activation_backward_t<float>)(Z, A, dA, act, dZ, threads_arg(nt));
      },
      py::arg("Z").none(true), py::arg("A"), py::arg("dA"), py::arg("activation"), py::arg("dZ"),
      py::arg("n_threads") = 0);
  mod.def(
      "all_finite",
      [](py::handle X, OptInt) {
        auto run = [&](auto tag) {
          using T = decltype(tag);
          auto x = view<T>(X, "X", 1, false);
          py::gil_scoped_release nogil;
          return ks<T>().all_finite(x.ptr, x.shape[0]);
        };
        return is_f64(X, "X") ? run(double{}) : run(float{});
      },
      py::arg("X"), py::arg("n_threads") = 0);
  mod.def(
      "softmax",
      [](py::handle Z, py::handle A, OptInt nt) {
        (is_f64(Z, "Z") ? activation_forward_t<double>
                        : activation_forward_t<float>)(Z, rb::codes::SOFTMAX, A, threads_arg(nt));
      },
      py::arg("Z"), py::arg("A"), py::arg("n_threads") = 0);
  mod.def(
      "loss_gradient",
      [](py::handle P, py::handle Y, py::handle sw, int loss, double delta, py::handle G,
         OptInt nt) {
        return (is_f64(P, "P") ? loss_gradient_t<double>
                               : loss_gradient_t<float>)(P, Y, sw, loss, delta, G, threads_arg(nt));
      },
      py::arg("P"), py::arg("Y"), py::arg("sample_weight").none(true), py::arg("loss"),
      py::arg("huber_delta"), py::arg("G"), py::arg("n_threads") = 0);
  mod.def(
      "sgd_step",
      [](py::handle p, py::handle g, py::handle v, double lr, double mom, bool nesterov,
         OptInt nt) {
        (is_f64(p, "params") ? sgd_step_t<double> : sgd_step_t<float>)(p, g, v, lr, mom, nesterov,
                                                                       threads_arg(nt));
      },
      py::arg("params"), py::arg("grads"), py::arg("velocity"), py::arg("lr"), py::arg("momentum"),
      py::arg("nesterov"), py::arg("n_threads") = 0);
  mod.def(
      "adagrad_step",
      [](py::handle p, py::handle g, py::handle s, double lr, double eps, OptInt nt) {
        (is_f64(p, "params") ? adagrad_step_t<double> : adagrad_step_t<float>)(p, g, s, lr, eps,
                                                                               threads_arg(nt));
      },
      py::arg("params"), py::arg("grads"), py::arg("accum"), py::arg("lr"), py::arg("eps"),
      py::arg("n_threads") = 0);
  mod.def(
      "rmsprop_step",
      [](py::handle p, py::handle g, py::handle s, double lr, double rho, double eps, OptInt nt) {
        (is_f64(p, "params") ? rmsprop_step_t<double>
                             : rmsprop_step_t<float>)(p, g, s, lr, rho, eps, threads_arg(nt));
      },
      py::arg("params"), py::arg("grads"), py::arg("sq"), py::arg("lr"), py::arg("rho"),
      py::arg("eps"), py::arg("n_threads") = 0);
  mod.def(
      "adam_step",
      [](py::handle p, py::handle g, py::handle m, py::handle v, double lr, double b1, double b2,
         double eps, double wd, std::int64_t t, OptInt nt) {
        (is_f64(p, "params") ? adam_step_t<double> : adam_step_t<float>)(p, g, m, v, lr, b1, b2,
                                                                         eps, wd, t,
                                                                         threads_arg(nt));
      },
      py::arg("params"), py::arg("grads"), py::arg("m"), py::arg("v"), py::arg("lr"),
      py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("t"),
      py::arg("n_threads") = 0);
  mod.def(
      "optimizer_step",
      [](py::handle p, py::handle g, py::handle st, int opt, py::handle h, py::handle step,
         OptInt nt) {
        (is_f64(p, "params") ? optimizer_step_t<double>
                             : optimizer_step_t<float>)(p, g, st, opt, h, step, threads_arg(nt));
      },
      py::arg("params"), py::arg("grads"), py::arg("state"), py::arg("optimizer"), py::arg("hyper"),
      py::arg("step"), py::arg("n_threads") = 0);
  mod.def(
      "train_epoch",
      [](py::handle X, py::handle Y, py::handle sw, py::handle order, std::int64_t bs,
         py::handle ls, py::handle acts, int loss, py::handle params, py::handle grads,
         py::handle state, int opt, py::handle hyper, py::handle step, py::handle ws, py::handle gn,
         OptInt nt, py::handle nonfinite, std::int64_t epoch_rows, py::handle epoch_totals) {
        return (is_f64(X, "X") ? train_epoch_t<double>
                               : train_epoch_t<float>)(X, Y, sw, order, bs, ls, acts, loss, params,
                                                       grads, state, opt, hyper, step, ws, gn,
                                                       nonfinite, epoch_rows, epoch_totals,
                                                       threads_arg(nt));
      },
      py::arg("X"), py::arg("Y"), py::arg("sample_weight").none(true), py::arg("order"),
      py::arg("batch_size"), py::arg("layer_sizes"), py::arg("activations"), py::arg("loss"),
      py::arg("params"), py::arg("grads"), py::arg("state"), py::arg("optimizer"), py::arg("hyper"),
      py::arg("step"), py::arg("workspace"), py::arg("grad_norms").none(true),
      py::arg("n_threads") = 0, py::arg("nonfinite") = py::none(), py::arg("epoch_rows") = 0,
      py::arg("epoch_totals") = py::none());
  // ---- perceptron ----
  mod.def(
      "perceptron_epoch",
      [](py::handle X, py::handle Y, py::handle order, py::handle W, py::handle b, double eta,
         int step, OptInt nt) {
        return RB_DISPATCH(X, "X", perceptron_epoch_t)(X, Y, order, W, b, eta, step,
                                                       threads_arg(nt));
      },
      py::arg("X"), py::arg("Y"), py::arg("order"), py::arg("W"), py::arg("b"), py::arg("eta"),
      py::arg("step"), py::arg("n_threads") = 0);
  mod.def(
      "xorshift_shuffle",
      [](py::handle order, std::int64_t seed, OptInt) {
        auto o = view<std::int64_t>(order, "order", 1, true);
        py::gil_scoped_release nogil;
        g_isa->f64.xorshift_shuffle(o.ptr, o.shape[0],
                                    std::uint32_t(std::uint64_t(seed) & 0xFFFFFFFFu));
      },
      py::arg("order"), py::arg("seed"), py::arg("n_threads") = 0);
  mod.def(
      "perceptron_epoch_sklearn",
      [](py::handle X, py::handle y, py::handle order, py::handle w, py::handle b, double eta0,
         py::handle sw, py::handle cw, bool fit_intercept, OptInt) {
        return RB_DISPATCH(X, "X", perceptron_epoch_sklearn_t)(X, y, order, w, b, eta0, sw, cw,
                                                               fit_intercept);
      },
      py::arg("X"), py::arg("y"), py::arg("order"), py::arg("w"), py::arg("b"), py::arg("eta0"),
      py::arg("sample_weight").none(true), py::arg("class_weight"), py::arg("fit_intercept"),
      py::arg("n_threads") = 0);
  mod.def(
      "perceptron_fit_sklearn",
      [](py::handle X, py::handle Y, py::handle W, py::handle B, py::handle seeds, double eta0,
         py::handle sw, py::handle cw, bool fit_intercept, bool shuffle, std::int64_t max_iter,
         double tol, std::int64_t n_iter_no_change, py::handle n_iter, OptInt nt) {
        RB_DISPATCH(X, "X", perceptron_fit_sklearn_t)
        (X, Y, W, B, seeds, eta0, sw, cw, fit_intercept, shuffle, max_iter, tol, n_iter_no_change,
         n_iter, threads_arg(nt));
      },
      py::arg("X"), py::arg("Y"), py::arg("W"), py::arg("B"), py::arg("seeds"), py::arg("eta0"),
      py::arg("sample_weight").none(true), py::arg("class_weight"), py::arg("fit_intercept"),
      py::arg("shuffle"), py::arg("max_iter"), py::arg("tol"), py::arg("n_iter_no_change"),
      py::arg("n_iter"), py::arg("n_threads") = 0);
  // ---- end perceptron ----
  // ---- batchnorm ----
  mod.def(
      "batchnorm_forward",
      [](py::handle Z, py::handle gamma, py::handle beta, double eps, py::handle Y, py::handle Xhat,
         py::handle mean, py::handle invstd, OptInt nt) {
        RB_DISPATCH(Z, "Z", batchnorm_forward_t)
        (Z, gamma, beta, eps, Y, Xhat, mean, invstd, threads_arg(nt));
      },
      py::arg("Z"), py::arg("gamma"), py::arg("beta"), py::arg("eps"), py::arg("Y"),
      py::arg("Xhat"), py::arg("mean"), py::arg("invstd"), py::arg("n_threads") = 0);
  mod.def(
      "batchnorm_backward",
      [](py::handle dY, py::handle Xhat, py::handle gamma, py::handle invstd, py::handle dZ,
         py::handle dgamma, py::handle dbeta, OptInt nt) {
        RB_DISPATCH(dY, "dY", batchnorm_backward_t)
        (dY, Xhat, gamma, invstd, dZ, dgamma, dbeta, threads_arg(nt));
      },
      py::arg("dY"), py::arg("Xhat"), py::arg("gamma"), py::arg("invstd"), py::arg("dZ"),
      py::arg("dgamma"), py::arg("dbeta"), py::arg("n_threads") = 0);
  mod.def(
      "batchnorm_inference",
      [](py::handle Z, py::handle gamma, py::handle beta, py::handle rmean, py::handle rvar,
         double eps, py::handle Y, OptInt nt) {
        RB_DISPATCH(Z, "Z", batchnorm_inference_t)
        (Z, gamma, beta, rmean, rvar, eps, Y, threads_arg(nt));
      },
      py::arg("Z"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
      py::arg("running_var"), py::arg("eps"), py::arg("Y"), py::arg("n_threads") = 0);
  // ---- end batchnorm ----

  // ---- dispatch, threads, codes ----
  mod.def("isa", [] { return std::string(g_isa->name); }, "Name of the ISA in use.");
  mod.def(
      "available_isas",
      [] {
        const rb::IsaKernels* sup[8];
        const int ns = rb::supported_isas(sup, 8);
        std::vector<std::string> out;
        for (int i = 0; i < ns; ++i) out.emplace_back(sup[i]->name);
        return out;
      },
      "ISAs this build can run on this CPU, best first (baseline last).");
  mod.def(
      "compiled_isas",
      [] {
        const char* names[8];
        const int n = rb::compiled_isas(names, 8);
        return std::vector<std::string>(names, names + n);
      },
      "ISAs compiled into this build, best first.");
  mod.def(
      "set_num_threads", [](int n) { rb::set_num_threads(n); }, py::arg("n"),
      "Default thread count for kernels called with n_threads <= 0 (<= 0: all cores).");
  mod.def("get_num_threads", &rb::get_num_threads);
  mod.def("hardware_threads", &rb::hardware_threads);
  mod.def(
      "peak_flops_probe",
      [](std::optional<std::string> isa, std::string dtype, double seconds) {
        const rb::IsaKernels* k = g_isa;
        if (isa) {
          const rb::IsaKernels* sup[8];
          const int ns = rb::supported_isas(sup, 8);
          k = nullptr;
          for (int i = 0; i < ns; ++i)
            if (*isa == sup[i]->name) k = sup[i];
          if (!k) throw py::value_error("ISA " + *isa + " is not available on this CPU");
        }
        if (dtype != "float32" && dtype != "float64")
          throw py::value_error("dtype must be 'float32' or 'float64'");
        if (!(seconds > 0.0 && seconds <= 10.0))
          throw py::value_error("seconds must be in (0, 10]");
        py::gil_scoped_release nogil;
        return k->peak_gflops(dtype == "float64", seconds);
      },
      py::arg("isa") = py::none(), py::arg("dtype") = "float32", py::arg("seconds") = 0.2,
      "Single-thread FMA throughput of an ISA in GFLOP/s (for reporting % of peak).");
  mod.def(
      "codes",
      [] {
        py::dict d;
        for (const auto& e : rb::codes::kCodeTable) {
          if (e.is_float)
            d[e.name] = e.value;
          else
            d[e.name] = static_cast<long long>(e.value);
        }
        return d;
      },
      "The integer codes and constants compiled into the core (mirror of _codes.py).");
  mod.def("_shutdown_threads", [] {
    py::gil_scoped_release nogil;
    rb::shutdown_pool();
  });
  // Join the pool's workers before the interpreter finalizes.
  py::module_::import("atexit").attr("register")(mod.attr("_shutdown_threads"));
}
