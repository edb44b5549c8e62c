// Seeded random workloads shared by the benchmarks: the same numbers on every standard
// library (std::uniform_real_distribution and std::shuffle are implementation-defined).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace tierguard_bench {

// A uniform double in [0, 1) from the top 53 bits.
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0); }

// Fisher-Yates with a fixed reduction.
template <class T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

// A random bijection 0..n-1 -> 0..n-1, so that the hottest ranks are not neighbouring ids.
inline std::vector<std::uint32_t> permutation(std::uint32_t n, std::uint64_t seed) {
    std::vector<std::uint32_t> p(n);
    for (std::uint32_t i = 0; i < n; ++i) p[i] = i;
    std::mt19937_64 rng(seed);
    shuffle(p, rng);
    return p;
}

// Zipf(s) over ranks 1..n by rejection-inversion (Hoermann & Derflinger, "Rejection-
// inversion to generate variates from monotone discrete distributions", 1996; the
// formulation of Apache Commons RNG's RejectionInversionZipfSampler): O(1) per draw
// and exact, P(k) = k^-s / H(n, s).
class zipf_distribution {
public:
    zipf_distribution(std::uint64_t n, double s)
        : m_n(static_cast<double>(n)),
          m_s(s),
          m_h_integral_x1(h_integral(1.5) - 1.0),
          m_h_integral_n(h_integral(m_n + 0.5)),
          m_squeeze(2.0 - h_integral_inverse(h_integral(2.5) - h(2.0))) {}

    std::uint64_t operator()(std::mt19937_64& rng) const {
        for (;;) {
            const double u = m_h_integral_n + uniform01(rng) * (m_h_integral_x1 - m_h_integral_n);
            const double x = h_integral_inverse(u);
            double k = std::floor(x + 0.5);
            k = std::clamp(k, 1.0, m_n);
            if (k - x <= m_squeeze || u >= h_integral(k + 0.5) - h(k)) return static_cast<std::uint64_t>(k);
        }
    }

    // The exact probability of rank k, for self-checks printed in a run's context.
    [[nodiscard]] double probability(std::uint64_t k) const {
        double norm = 0;
        for (double i = m_n; i >= 1.0; i -= 1.0) norm += h(i);  // smallest terms first
        return h(static_cast<double>(k)) / norm;
    }

private:
    [[nodiscard]] double h(double x) const { return std::exp(-m_s * std::log(x)); }
    [[nodiscard]] double h_integral(double x) const {
        const double lx = std::log(x);
        return expm1_over_x((1.0 - m_s) * lx) * lx;
    }
    [[nodiscard]] double h_integral_inverse(double x) const {
        const double t = std::max(-1.0, x * (1.0 - m_s));
        return std::exp(log1p_over_x(t) * x);
    }
    static double log1p_over_x(double x) {
        return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
    }
    static double expm1_over_x(double x) {
        return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
    }

    double m_n;
    double m_s;
    double m_h_integral_x1;
    double m_h_integral_n;
    double m_squeeze;
};

}  // namespace tierguard_bench
