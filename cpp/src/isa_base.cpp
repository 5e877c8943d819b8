// The kernels for the "baseline" instruction set. Compiler flags come from CMakeLists.txt;
// the namespace keeps this copy of every template apart from the other ISAs' copies.
#define ROSENBLATT_ISA_NS isa_base
#define ROSENBLATT_ISA_NAME "baseline"
#include "rosenblatt/isa_kernels.hpp"
