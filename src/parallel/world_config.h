// Layout of a tensor-parallel (TP) x pipeline-parallel (PP) world of MPI ranks,
// and how layers and attention heads are divided among them. Pure value logic:
// no MPI here, so it is unit-testable and usable before MPI starts.
//
// TP ranks are innermost: world rank r -> pp_rank = r / tp, tp_rank = r % tp.
// Consecutive world ranks form one TP group (one pipeline stage), so with
// mpirun's default by-slot placement a TP group (all-reduce every layer) stays
// inside one node and only the cheaper stage-to-stage activations cross nodes.
//
//   tp=2, pp=2 (4 ranks)                  tp=3, pp=1 (3 ranks)
//
//   stage 0 (layers 0..L/2)               stage 0 (all layers)
//   +---------+---------+                 +--------+--------+--------+
//   | rank 0  | rank 1  |  <- TP group    | rank 0 | rank 1 | rank 2 |
//   | tp 0    | tp 1    |     all-reduce  | tp 0   | tp 1   | tp 2   |
//   +----|----+----|----+                 +--------+--------+--------+
//        | send    | send   (activations, same tp_rank)
//   +----v----+----v----+
//   | rank 2  | rank 3  |  stage 1 (layers L/2..L)
//   | tp 0    | tp 1    |
//   +---------+---------+
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace parallama {

// Which attention heads one TP rank owns. Query heads are split as evenly as
// possible (the first n_heads % tp ranks get one extra). For GQA, query head h
// reads kv head h / group (group = n_heads / n_kv_heads), and a rank holds the
// contiguous kv-head range covering its query heads. When the query split falls
// on group boundaries (e.g. tp divides n_kv_heads and heads divide evenly) this is
// exactly an even kv split with no overlap; otherwise neighbouring ranks both
// hold (replicate) the kv head that straddles their boundary, which is how
// tp > n_kv_heads works. Valid for every 1 <= tp <= n_heads.
// Example SmolLM2 (9 q heads, 3 kv heads, group 3), tp=2:
//   rank 0: q 0-4, kv 0-1;  rank 1: q 5-8, kv 1-2.
struct HeadShard {
  int q_begin = 0, q_end = 0;    // global query heads [q_begin, q_end)
  int kv_begin = 0, kv_end = 0;  // global kv heads [kv_begin, kv_end)
  int group = 1;                 // query heads per kv head (n_heads / n_kv_heads)

  int n_q() const { return q_end - q_begin; }
  int n_kv() const { return kv_end - kv_begin; }
  // Local kv-head index (into this rank's kv slice) used by local query head i.
  int local_kv_of_local_q(int i) const { return (q_begin + i) / group - kv_begin; }
};

class WorldConfig {
 public:
  int tp = 1;
  int pp = 1;
  int rank = 0;  // world rank of this process

  WorldConfig() = default;
  // stage_layers: layer count per pipeline stage (pp entries), may be empty if
  // the caller does not need layer_range().
  WorldConfig(int tp, int pp, int rank, std::vector<int> stage_layers = {});

  // Validates everything (see validate_layout) and splits layers.
  static WorldConfig create(int tp, int pp, int rank, int world_size, int n_heads,
                            int n_kv_heads, int n_layers,
                            const std::vector<int>& manual_layers = {});

  int world_size() const { return tp * pp; }
  int tp_rank() const { return rank % tp; }
  int pp_rank() const { return rank / tp; }
  static int world_rank_of(int tp, int pp_rank, int tp_rank) { return pp_rank * tp + tp_rank; }

  std::vector<int> tp_group_ranks() const;  // world ranks of this rank's stage
  bool is_first_stage() const { return pp_rank() == 0; }
  bool is_last_stage() const { return pp_rank() == pp - 1; }
  int prev_stage_rank() const;  // same tp_rank, stage - 1; -1 on the first stage
  int next_stage_rank() const;  // same tp_rank, stage + 1; -1 on the last stage

  const std::vector<int>& stage_layers() const { return stage_layers_; }
  // [begin, end) of the layers run by pipeline stage `pp_rank`.
  std::pair<int, int> layer_range(int pp_rank) const;
  std::pair<int, int> layer_range() const { return layer_range(pp_rank()); }

  // Layers per stage. Empty `manual`: as even as possible, the earlier stages
  // take the remainder (the last stage also runs the output head, so it is the
  // one to keep light). Otherwise `manual` must have pp entries, each >= 1,
  // summing to n_layers; it is returned unchanged.
  static std::vector<int> split_layers(int n_layers, int pp, const std::vector<int>& manual = {});
  // Query heads [begin, end) of tp_rank: first n_heads % tp ranks get one extra.
  static std::pair<int, int> head_range(int n_heads, int tp, int tp_rank);
  static HeadShard head_shard(int n_heads, int n_kv_heads, int tp, int tp_rank);

  // Start-up table, one line per world rank: rank, host, stage, tp rank, layers
  // "0-14", query heads "0-4", kv heads. hostnames: one per world rank (may be
  // empty -> "?"). Needs stage_layers.
  std::string to_table(const std::vector<std::string>& hostnames, int n_heads,
                       int n_kv_heads) const;

 private:
  std::vector<int> stage_layers_;  // [pp] layers per stage
};

// Throws parallama::Error saying what would work, for: tp or pp < 1, tp > n_heads,
// n_heads not a multiple of n_kv_heads, pp > n_layers, world_size != tp*pp, and a
// bad manual layer list. n_kv_heads <= 0 skips the kv check.
void validate_layout(int tp, int pp, int world_size, int n_heads, int n_layers,
                     const std::vector<int>& manual_layers = {}, int n_kv_heads = 0);

}  // namespace parallama
