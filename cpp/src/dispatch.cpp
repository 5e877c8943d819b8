// CPU feature dispatch (baseline flags). Features, not CPU names: GCC 12 does not know
// Zen 4, and a feature test also covers every other vendor.
#include "rosenblatt/dispatch.hpp"

namespace rosenblatt {

int supported_isas(const IsaKernels** out, int cap) {
  int n = 0;
#if defined(ROSENBLATT_HAVE_AVX512)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && n < cap)
    out[n++] = &isa_avx512::kernels();
#endif
#if defined(ROSENBLATT_HAVE_AVX2)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && n < cap)
    out[n++] = &isa_avx2::kernels();
#endif
  if (n < cap) out[n++] = &isa_base::kernels();
  return n;
}

int compiled_isas(const char** names, int cap) {
  int n = 0;
#if defined(ROSENBLATT_HAVE_AVX512)
  if (n < cap) names[n++] = "avx512";
#endif
#if defined(ROSENBLATT_HAVE_AVX2)
  if (n < cap) names[n++] = "avx2";
#endif
  if (n < cap) names[n++] = "baseline";
  return n;
}

}  // namespace rosenblatt
