// The kernels for the "avx2" instruction set. Compiler flags come from CMakeLists.txt;
// the namespace keeps this copy of every template apart from the other ISAs' copies.
#define ROSENBLATT_ISA_NS isa_avx2
#define ROSENBLATT_ISA_NAME "avx2"
#include "rosenblatt/isa_kernels.hpp"
