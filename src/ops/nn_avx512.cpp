#define NN_NS nn_avx512
#include "ops/nn_kernels.inc"
