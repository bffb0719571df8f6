#!/usr/bin/env bash
# Source this before running parallama under mpirun by hand:
#   . scripts/mpi_env.sh && mpirun -n 4 build/release/parallama --tp 2 --pp 2 ...
# It sets, through Open MPI's environment variables, what relaunch_under_mpirun
# passes on the command line: allow more ranks than cores, no core binding (each
# rank runs its own thread pool), and ranks that yield the CPU while waiting in MPI
# instead of spinning. Root needs the two ALLOW variables.
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none
export OMPI_MCA_mpi_yield_when_idle=1
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1
  export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
