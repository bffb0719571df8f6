#include "plan/calibrate.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "core/check.h"

namespace parallama::plan {

std::vector<double> nelder_mead(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                                double step, int max_iter) {
  const size_t n = x0.size();
  std::vector<std::vector<double>> p(n + 1, x0);
  for (size_t i = 0; i < n; ++i) p[i + 1][i] += step;
  std::vector<double> v(n + 1);
  for (size_t i = 0; i <= n; ++i) v[i] = f(p[i]);
  auto lerp = [n](const std::vector<double>& a, const std::vector<double>& b, double t) {
    std::vector<double> r(n);
    for (size_t k = 0; k < n; ++k) r[k] = a[k] + t * (b[k] - a[k]);
    return r;
  };
  for (int it = 0; it < max_iter; ++it) {
    std::vector<size_t> order(n + 1);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    const size_t best = order[0], worst = order[n], second = order[n - 1];
    if (std::fabs(v[worst] - v[best]) <= 1e-12 * (std::fabs(v[best]) + 1e-12)) break;
    std::vector<double> c(n, 0.0);  // centroid of all but the worst
    for (size_t i = 0; i <= n; ++i)
      if (i != worst)
        for (size_t k = 0; k < n; ++k) c[k] += p[i][k] / n;
    const std::vector<double> xr = lerp(c, p[worst], -1.0);
    const double fr = f(xr);
    if (fr < v[best]) {
      const std::vector<double> xe = lerp(c, p[worst], -2.0);
      const double fe = f(xe);
      if (fe < fr) p[worst] = xe, v[worst] = fe;
      else p[worst] = xr, v[worst] = fr;
    } else if (fr < v[second]) {
      p[worst] = xr, v[worst] = fr;
    } else {
      const std::vector<double> xc = lerp(c, p[worst], fr < v[worst] ? -0.5 : 0.5);
      const double fc = f(xc);
      if (fc < std::min(fr, v[worst])) {
        p[worst] = xc, v[worst] = fc;
      } else {  // shrink towards the best
        for (size_t i = 0; i <= n; ++i)
          if (i != best) p[i] = lerp(p[best], p[i], 0.5), v[i] = f(p[i]);
      }
    }
  }
  const size_t best = static_cast<size_t>(std::min_element(v.begin(), v.end()) - v.begin());
  return p[best];
}

namespace {

// Golden-section search for the minimum of f on [lo, hi].
double golden_min(const std::function<double(double)>& f, double lo, double hi, int iters) {
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = lo, b = hi, c = b - g * (b - a), d = a + g * (b - a);
  double fc = f(c), fd = f(d);
  for (int i = 0; i < iters; ++i) {
    // Ties go left: past a knot's memory-bound point the loss is flat, and the
    // valley lies to its left.
    if (fc <= fd) b = d, d = c, fd = fc, c = b - g * (b - a), fc = f(c);
    else a = c, c = d, fc = fd, d = a + g * (b - a), fd = f(d);
  }
  return (a + b) / 2;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

EfficiencyFit fit_efficiency(const ModelShape& shape, const Device& dev, const std::vector<StepSample>& samples,
                             const Efficiency& start) {
  if (samples.size() < 4) PL_THROW("fitting efficiencies needs at least 4 step samples, got " << samples.size());
  for (const StepSample& s : samples)
    if (!(s.seconds > 0) || !std::isfinite(s.seconds)) PL_THROW("a step sample has a time of " << s.seconds << " s");
  Hardware hw;
  hw.dev = dev;
  hw.eff = start;
  // One knot of the flops curve per batch size the samples have (tokens, and
  // the output head's rows).
  std::vector<double> knots;
  for (const StepSample& s : samples) {
    knots.push_back(static_cast<double>(s.shape.n_tokens()));
    if (s.shape.logits() > 0) knots.push_back(static_cast<double>(s.shape.logits()));
  }
  std::sort(knots.begin(), knots.end());
  knots.erase(std::unique(knots.begin(), knots.end()), knots.end());
  hw.eff.flops_curve.clear();
  for (double k : knots) hw.eff.flops_curve.emplace_back(k, start.flops);
  auto err = [&](const std::vector<size_t>& which) {
    const CostModel cm(shape, Layout{1, 1, {}}, hw);
    double sum = 0;
    for (size_t i : which) sum += std::pow(std::log(cm.step(samples[i].shape).stage_s[0] / samples[i].seconds), 2);
    return sum;
  };
  std::vector<size_t> all(samples.size());
  std::iota(all.begin(), all.end(), 0);
  std::vector<std::vector<size_t>> at_knot(knots.size());  // samples a knot affects
  for (size_t k = 0; k < knots.size(); ++k)
    for (size_t i = 0; i < samples.size(); ++i)
      if (static_cast<double>(samples[i].shape.n_tokens()) == knots[k] ||
          static_cast<double>(samples[i].shape.logits()) == knots[k])
        at_knot[k].push_back(i);
  // Given the four scalars, each knot's fraction by a line search over the
  // samples it affects (two passes: the head couples a step's two knots).
  auto fit_curve = [&] {
    for (int pass = 0; pass < 2; ++pass)
      for (size_t k = 0; k < knots.size(); ++k) {
        const double x = golden_min(
            [&](double lx) {
              hw.eff.flops_curve[k].second = std::exp(lx);
              return err(at_knot[k]);
            },
            std::log(1e-4), std::log(4.0), 40);
        hw.eff.flops_curve[k].second = std::exp(x);
      }
  };
  auto set = [&](const std::vector<double>& x) {
    hw.eff.mem = sigmoid(x[0]);  // fractions of the measured read bandwidth: at most 1
    hw.eff.attn = sigmoid(x[1]);
    hw.eff.step_overhead_s = std::exp(x[2]);
    hw.eff.per_layer_overhead_s = std::exp(x[3]);
  };
  auto loss = [&](const std::vector<double>& x) {
    set(x);
    fit_curve();
    return err(all);
  };
  auto logit = [](double f) { return std::log(f / (1 - f)); };
  // Several starts over the attention fraction (the fit can settle where the
  // flops curve makes up for a wrong one), the best kept.
  std::vector<double> x;
  double best = INFINITY;
  for (double attn : {0.05, 0.2, 0.6}) {
    std::vector<double> x0 = {logit(std::min(start.mem, 0.99)), logit(attn),
                              std::log(std::max(start.step_overhead_s, 1e-5)),
                              std::log(std::max(start.per_layer_overhead_s, 1e-6))};
    for (int round = 0; round < 2; ++round) x0 = nelder_mead(loss, x0, 0.7, 300);
    const double l = loss(x0);
    if (l < best) best = l, x = x0;
  }
  loss(x);
  EfficiencyFit fit;
  fit.eff = hw.eff;
  const CostModel cm(shape, Layout{1, 1, {}}, hw);
  double sq = 0;
  for (const StepSample& s : samples) {
    fit.predicted_s.push_back(cm.step(s.shape).stage_s[0]);
    const double r = fit.predicted_s.back() / s.seconds;
    sq += std::log(r) * std::log(r);
    fit.max_rel_error = std::max(fit.max_rel_error, std::fabs(r - 1));
  }
  fit.rms_log_error = std::sqrt(sq / static_cast<double>(samples.size()));
  return fit;
}

Link fit_tp_link(const ModelShape& shape, const Hardware& hw, int tp, const std::vector<StepSample>& samples,
                 double prior_weight) {
  if (samples.empty()) PL_THROW("fitting a link needs step samples");
  if (!(hw.intra.bw_Bps > 0)) PL_THROW("fitting a link needs the probe's bandwidth to start from");
  Hardware h = hw;
  h.nodes = 1;
  h.devices_per_node = std::max(h.devices_per_node, tp);
  const double bw0 = hw.intra.bw_Bps;
  auto set = [&](const std::vector<double>& x) {
    h.intra.latency_s = std::exp(x[0]);
    h.intra.bw_Bps = bw0 * std::exp(x[1]);
  };
  auto loss = [&](const std::vector<double>& x) {
    set(x);
    const CostModel cm(shape, Layout{tp, 1, {}}, h);
    double sum = prior_weight * x[1] * x[1];
    for (const StepSample& s : samples) sum += std::pow(std::log(cm.step(s.shape).stage_s[0] / s.seconds), 2);
    return sum;
  };
  std::vector<double> x = {std::log(std::max(hw.intra.latency_s, 1e-7)), 0.0};
  for (int round = 0; round < 3; ++round) x = nelder_mead(loss, x, 1.0, 2000);
  set(x);
  return h.intra;
}

LinkFit fit_link(const std::string& name, const std::vector<CommSample>& samples) {
  // seconds = a x inv_bw + b x latency, per sample: all-reduce a = 2 (p - 1) / p x bytes,
  // b = 2 (p - 1); send a = bytes, b = 1. Weighted least squares (weight 1 / seconds).
  double saa = 0, sab = 0, sbb = 0, say = 0, sby = 0;
  double min_bytes = INFINITY, max_bytes = 0;
  for (const CommSample& s : samples) {
    if (!(s.seconds > 0) || !(s.bytes > 0) || s.ranks < 2) PL_THROW("link '" << name << "': a bad sample");
    const double p = s.ranks;
    const double a = s.kind == CommSample::kAllReduce ? 2 * (p - 1) / p * s.bytes : s.bytes;
    const double b = s.kind == CommSample::kAllReduce ? 2 * (p - 1) : 1;
    const double w = 1 / s.seconds;  // rows scaled by w: relative residuals
    saa += a * a * w * w, sab += a * b * w * w, sbb += b * b * w * w;
    say += a * s.seconds * w * w, sby += b * s.seconds * w * w;
    min_bytes = std::min(min_bytes, s.bytes), max_bytes = std::max(max_bytes, s.bytes);
  }
  const double det = saa * sbb - sab * sab;
  if (samples.size() < 2 || !(max_bytes > min_bytes) || !(std::fabs(det) > 0))
    PL_THROW("link '" << name << "': needs samples of at least two sizes");
  double inv_bw = (say * sbb - sab * sby) / det;
  double lat = (saa * sby - sab * say) / det;
  if (lat < 0) {  // latency below resolution: bandwidth alone
    lat = 0;
    inv_bw = say / saa;
  }
  if (!(inv_bw > 0)) PL_THROW("link '" << name << "': the times do not grow with the size; no bandwidth to fit");
  LinkFit fit;
  fit.link = Link{name, 1 / inv_bw, lat};
  Efficiency one;
  one.comm = 1;
  for (const CommSample& s : samples) {
    const double pred = s.kind == CommSample::kAllReduce ? ring_allreduce_s(s.bytes, s.ranks, fit.link, one)
                                                         : p2p_send_s(s.bytes, fit.link, one);
    fit.max_rel_error = std::max(fit.max_rel_error, std::fabs(pred / s.seconds - 1));
  }
  return fit;
}

}  // namespace parallama::plan
