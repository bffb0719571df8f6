#define NN_NS nn_generic
#include "ops/nn_kernels.inc"
