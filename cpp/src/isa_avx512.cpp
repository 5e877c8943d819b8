// The kernels for the "avx512" instruction set. Compiler flags come from CMakeLists.txt;
// the namespace keeps this copy of every template apart from the other ISAs' copies.
#define ROSENBLATT_ISA_NS isa_avx512
#define ROSENBLATT_ISA_NAME "avx512"
#include "rosenblatt/isa_kernels.hpp"
