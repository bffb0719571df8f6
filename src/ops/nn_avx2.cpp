#define NN_NS nn_avx2
#include "ops/nn_kernels.inc"
