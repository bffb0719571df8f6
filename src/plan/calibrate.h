// Fitting a hardware profile to measurements of the engine itself: engine
// steps on one device (a rank and its threads) over a grid of batch shapes give
// the efficiencies and overheads of the cost model (cost_model.h); timed
// collectives and messages over a transport give a Link (latency, bandwidth).
// The measuring is the CLI's (`parallama plan calibrate`); this is the pure
// arithmetic, tested on data made from known parameters.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "plan/cost_model.h"
#include "plan/model_shape.h"

namespace parallama::plan {

// One timed engine step on one device: its batch and the median seconds.
struct StepSample {
  StepShape shape;
  double seconds = 0;
};

struct EfficiencyFit {
  Efficiency eff;
  double rms_log_error = 0;  // sqrt(mean(log(predicted / measured)^2))
  double max_rel_error = 0;  // max |predicted / measured - 1|
  std::vector<double> predicted_s;  // [samples] the fitted model's step times
};

// The efficiencies for which a single-device CostModel of `shape` predicts
// the samples best in relative terms (least squares of log(predicted /
// measured)): eff.mem and eff.attn (at most 1), the fixed costs (eff.step_overhead_s,
// eff.per_layer_overhead_s) by Nelder-Mead over their logs, and for each of
// those an eff.flops_curve with one knot per batch size in the samples (tokens
// of a step, rows of its output head), each by a line search. The other fields
// of `start` are kept. Throws parallama::Error with fewer than 4 samples or a
// non-positive time.
EfficiencyFit fit_efficiency(const ModelShape& shape, const Device& dev, const std::vector<StepSample>& samples,
                             const Efficiency& start = {});

// One timed transfer over a link between p ranks.
struct CommSample {
  enum Kind { kAllReduce, kSend } kind = kSend;
  int ranks = 2;        // p of the collective (2 for a send)
  double bytes = 0;     // the buffer reduced, or the message
  double seconds = 0;   // median per call
};

struct LinkFit {
  Link link;                 // bw_Bps, latency_s (with eff.comm = 1: the fit holds the achieved figures)
  double max_rel_error = 0;  // over the samples
};

// Latency and bandwidth for which ring_allreduce_s / p2p_send_s (eff.comm = 1)
// match the samples: both are linear in (1 / bw, latency), solved by least
// squares weighted by 1 / seconds (relative error). Throws parallama::Error
// with fewer than 2 samples of different sizes or a non-positive fit.
LinkFit fit_link(const std::string& name, const std::vector<CommSample>& samples);

// The latency and bandwidth of hw.intra for which a tp-way single-stage
// CostModel of `shape` on hw (its device and efficiencies fitted already)
// predicts the samples best (least squares of log(predicted / measured), plus
// prior_weight x log(bw / hw.intra.bw_Bps)^2 to keep the bandwidth near the
// probe's where the steps say little about it; Nelder-Mead over the logs):
// TP steps measured through the engine calibrate a transport as the engine
// pays for it (synchronisation, wake-ups, the MPI library's all-reduce
// algorithm, a shaped link's bursts), which a bare probe misses. Returns
// hw.intra with the fitted figures.
Link fit_tp_link(const ModelShape& shape, const Hardware& hw, int tp, const std::vector<StepSample>& samples,
                 double prior_weight = 0.05);

// Minimises f over R^n from x0 (Nelder-Mead, initial simplex x0 + step along
// each axis); for the fits above and tests. Returns the best point.
std::vector<double> nelder_mead(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                                double step, int max_iter);

}  // namespace parallama::plan
