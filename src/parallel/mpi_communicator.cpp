#include "parallel/mpi_communicator.h"

#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>

#include "core/check.h"

namespace parallama {

namespace {
std::string mpi_error_string(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) == MPI_SUCCESS) return std::string(buf, len);
  std::string s = "MPI error ";  // (not "lit" + str: GCC 12 -Wrestrict false positive)
  return s += std::to_string(rc);
}

int to_int_count(size_t n, const char* what) {
  if (n > static_cast<size_t>(INT_MAX))
    PL_THROW(what << ": " << n << " bytes exceed the 2 GiB limit of one MPI message; split it");
  return static_cast<int>(n);
}
}  // namespace

// ---------------------------------------------------------------- MpiContext

MpiContext::MpiContext(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) PL_THROW("MPI_Init_thread failed: " << mpi_error_string(rc));
    owns_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      PL_THROW("the MPI library does not support MPI_THREAD_FUNNELED");
    }
  }
  // Errors come back as return codes so we can throw parallama::Error naming the peer.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
}

MpiContext::~MpiContext() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // Unwinding from an error: peers may be blocked waiting for this rank, and
  // MPI_Finalize would wait for them in turn. Take the whole job down instead.
  if (std::uncaught_exceptions() > 0 && world_size_ > 1) {
    std::fprintf(stderr, "parallama: rank %d failed, aborting all ranks\n", world_rank_);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
}

void MpiContext::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
  std::_Exit(code == 0 ? 1 : code);  // MPI_Abort should not return
}

// ---------------------------------------------------------- MpiCommunicator

struct MpiCommunicator::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  std::vector<int> world_ranks;  // [size] world rank of each member
  std::string label;

  ~Impl() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm != MPI_COMM_NULL && comm != MPI_COMM_WORLD) MPI_Comm_free(&comm);
  }

  std::string members() const {
    std::string s;
    for (size_t i = 0; i < world_ranks.size(); ++i) {
      if (i) s += ",";
      s += std::to_string(world_ranks[i]);
    }
    return s;
  }

  // Collective failed: we do not know which peer, so name the whole group.
  void check_collective(int rc, const char* op) const {
    if (rc == MPI_SUCCESS) return;
    PL_THROW("MPI " << op << " on the " << label << " (world ranks " << members()
                    << ") failed on world rank " << world_ranks[rank] << ": "
                    << mpi_error_string(rc));
  }

  void check_p2p(int rc, const char* op, int peer) const {
    if (rc == MPI_SUCCESS) return;
    PL_THROW("MPI " << op << (std::strcmp(op, "send") == 0 ? " to" : " from") << " world rank "
                    << world_ranks[peer] << " failed on world rank " << world_ranks[rank]
                    << ": " << mpi_error_string(rc));
  }
};

MpiCommunicator::MpiCommunicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MpiCommunicator::~MpiCommunicator() = default;

int MpiCommunicator::rank() const { return impl_->rank; }
int MpiCommunicator::size() const { return impl_->size; }
int MpiCommunicator::world_rank_of(int r) const {
  PL_CHECK_MSG(r >= 0 && r < impl_->size, "rank " << r << " of " << impl_->size);
  return impl_->world_ranks[r];
}
const std::string& MpiCommunicator::label() const { return impl_->label; }

void MpiCommunicator::do_all_reduce_sum(void* buf, size_t n, CommType type) {
  const MPI_Datatype dt = type == CommType::F32   ? MPI_FLOAT
                          : type == CommType::F64 ? MPI_DOUBLE
                                                  : MPI_INT32_T;
  impl_->check_collective(
      MPI_Allreduce(MPI_IN_PLACE, buf, to_int_count(n, "all_reduce"), dt, MPI_SUM, impl_->comm),
      "all_reduce");
}

void MpiCommunicator::do_all_gather(const void* send, size_t bytes_each, void* recv) {
  to_int_count(bytes_each * impl_->size, "all_gather");  // the gathered total must fit too
  const int each = static_cast<int>(bytes_each);
  impl_->check_collective(
      MPI_Allgather(send, each, MPI_BYTE, recv, each, MPI_BYTE, impl_->comm), "all_gather");
}

void MpiCommunicator::do_all_gatherv(const void* send, const std::vector<size_t>& bytes,
                                     void* recv) {
  std::vector<int> counts(bytes.size()), displs(bytes.size());
  size_t off = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    counts[i] = to_int_count(bytes[i], "all_gatherv");
    displs[i] = to_int_count(off, "all_gatherv");
    off += bytes[i];
  }
  to_int_count(off, "all_gatherv");
  impl_->check_collective(MPI_Allgatherv(send, counts[impl_->rank], MPI_BYTE, recv, counts.data(),
                                         displs.data(), MPI_BYTE, impl_->comm),
                          "all_gatherv");
}

void MpiCommunicator::do_broadcast(void* buf, size_t bytes, int root) {
  impl_->check_collective(
      MPI_Bcast(buf, to_int_count(bytes, "broadcast"), MPI_BYTE, root, impl_->comm), "broadcast");
}

void MpiCommunicator::do_send(const void* buf, size_t bytes, int peer, int tag) {
  impl_->check_p2p(MPI_Send(buf, to_int_count(bytes, "send"), MPI_BYTE, peer, tag, impl_->comm),
                   "send", peer);
}

void MpiCommunicator::do_recv(void* buf, size_t bytes, int peer, int tag) {
  MPI_Status st;
  impl_->check_p2p(
      MPI_Recv(buf, to_int_count(bytes, "recv"), MPI_BYTE, peer, tag, impl_->comm, &st), "recv",
      peer);
  int got = 0;
  MPI_Get_count(&st, MPI_BYTE, &got);
  if (static_cast<size_t>(got) != bytes)
    PL_THROW("MPI recv from world rank " << impl_->world_ranks[peer] << " (tag " << tag
                                         << "): expected " << bytes << " bytes, got " << got);
}

void MpiCommunicator::do_barrier() {
  impl_->check_collective(MPI_Barrier(impl_->comm), "barrier");
}

// ------------------------------------------------------------------ factories

namespace {
std::unique_ptr<Communicator> wrap(MPI_Comm comm, std::string label) {
  auto impl = std::make_unique<MpiCommunicator::Impl>();
  impl->comm = comm;
  impl->label = std::move(label);
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm, &impl->rank);
  MPI_Comm_size(comm, &impl->size);
  // Translate member ranks to world ranks without communication.
  MPI_Group world_group, group;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  MPI_Comm_group(comm, &group);
  std::vector<int> local(impl->size);
  for (int i = 0; i < impl->size; ++i) local[i] = i;
  impl->world_ranks.resize(impl->size);
  MPI_Group_translate_ranks(group, impl->size, local.data(), world_group,
                            impl->world_ranks.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  return std::make_unique<MpiCommunicator>(std::move(impl));
}

void check_world(const MpiContext& ctx, const WorldConfig& cfg) {
  if (cfg.world_size() != ctx.world_size())
    PL_THROW("launched with " << ctx.world_size() << " ranks but tp*pp = " << cfg.world_size()
                              << "; run with mpirun -n " << cfg.world_size()
                              << " or change --tp/--pp");
  PL_CHECK_MSG(cfg.rank == ctx.world_rank(),
               "WorldConfig rank " << cfg.rank << " but MPI world rank " << ctx.world_rank());
}
}  // namespace

std::unique_ptr<Communicator> make_world_communicator(const MpiContext&) {
  MPI_Comm c;
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c);
  if (rc != MPI_SUCCESS) PL_THROW("MPI_Comm_dup failed: " << mpi_error_string(rc));
  return wrap(c, "world");
}

std::unique_ptr<Communicator> make_tp_communicator(const MpiContext& ctx, const WorldConfig& cfg) {
  check_world(ctx, cfg);
  MPI_Comm c;
  int rc = MPI_Comm_split(MPI_COMM_WORLD, cfg.pp_rank(), cfg.tp_rank(), &c);
  if (rc != MPI_SUCCESS) PL_THROW("MPI_Comm_split failed: " << mpi_error_string(rc));
  std::string label = "tp group of stage ";
  label += std::to_string(cfg.pp_rank());
  auto comm = wrap(c, std::move(label));
  PL_CHECK_MSG(comm->rank() == cfg.tp_rank() && comm->size() == cfg.tp,
               "tp comm rank " << comm->rank() << "/" << comm->size());
  return comm;
}

std::unique_ptr<Communicator> make_pipeline_communicator(const MpiContext& ctx,
                                                         const WorldConfig& cfg) {
  check_world(ctx, cfg);
  MPI_Comm c;
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c);
  if (rc != MPI_SUCCESS) PL_THROW("MPI_Comm_dup failed: " << mpi_error_string(rc));
  return wrap(c, "pipeline link");
}

CommStats ParallelComms::total() const {
  CommStats s;
  for (const auto* c : {world.get(), tp.get(), pipe.get()})
    if (c) s += c->stats();
  return s;
}

ParallelComms make_parallel_comms(const MpiContext& ctx, const WorldConfig& cfg) {
  check_world(ctx, cfg);
  ParallelComms p;
  p.world = make_world_communicator(ctx);
  p.tp = make_tp_communicator(ctx, cfg);
  p.pipe = make_pipeline_communicator(ctx, cfg);
  return p;
}

}  // namespace parallama
