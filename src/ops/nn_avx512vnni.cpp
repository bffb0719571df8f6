#define NN_NS nn_avx512vnni
#include "ops/nn_kernels.inc"
