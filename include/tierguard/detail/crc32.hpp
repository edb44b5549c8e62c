#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

// 1: x86-64 with GCC or clang, where crc32_clmul exists (it still checks the CPU at run
// time); define it to 0 before including tierguard to keep every CRC in zlib.
#ifndef TIERGUARD_CRC32_CLMUL
#if defined(__x86_64__) && defined(__GNUC__)
#define TIERGUARD_CRC32_CLMUL 1
#else
#define TIERGUARD_CRC32_CLMUL 0
#endif
#endif
#if TIERGUARD_CRC32_CLMUL
#include <emmintrin.h>
#include <wmmintrin.h>
#endif

namespace tierguard::detail {

/// zlib's crc32() over any length: the CRC-32 of ISO-HDLC (reflected polynomial
/// 0xEDB88320, initial and final value inverted), continued from `crc` (0 to start).
/// Returns `crc` for an empty buffer. Chained calls equal one call over the concatenation.
[[nodiscard]] inline std::uint32_t crc32_portable(std::uint32_t crc, const std::byte* data, std::size_t size) noexcept {
    uLong c = crc;
    const auto* p = reinterpret_cast<const Bytef*>(data);
    while (size > 0) {
        const std::size_t n = std::min<std::size_t>(size, std::numeric_limits<uInt>::max());
        c = ::crc32(c, p, static_cast<uInt>(n));
        p += n;
        size -= n;
    }
    return static_cast<std::uint32_t>(c);
}

namespace crc32_constants {

// Notation. A polynomial f over GF(2) of degree < n is held "reflected" in n bits:
// bit i holds the coefficient of x^(n-1-i). zlib's 32-bit CRC register is I32, a byte
// stream loaded little-endian into an SSE register is I128 (its first byte holds the
// highest powers), a 64-bit lane is I64. A CRC register s after a message M (initial
// register value s0 folded into M's first 32 bits) is M(x) * x^32 mod P(x).

/// P(x) = x^32 + the polynomial of 0x04C11DB7; its terms below x^32, reflected (I32).
inline constexpr std::uint32_t reflected_poly = 0xEDB88320U;

/// x^n mod P as I32: starting from 1 (I32 = 0x80000000), multiply by x n times.
/// Multiplying by x moves every coefficient one bit down; a coefficient of x^32 leaving
/// bit 0 is replaced by P's lower terms, since x^32 = P - x^32 (mod P).
[[nodiscard]] constexpr std::uint32_t x_pow_mod(unsigned n) noexcept {
    std::uint32_t v = 0x80000000U;
    for (unsigned i = 0; i < n; ++i) v = (v & 1U) != 0 ? (v >> 1) ^ reflected_poly : v >> 1;
    return v;
}

/// A polynomial of degree < 32 given as I32, as I64: the same coefficients, 32 bits up.
[[nodiscard]] constexpr std::uint64_t lane(std::uint32_t i32) noexcept { return std::uint64_t{i32} << 32; }

/// Reverses the low 33 bits: a degree-32 polynomial g written plainly (bit d = x^d) gives
/// I64(g * x^31), since coefficient d sits at bit 63 - (d + 31) = 32 - d.
[[nodiscard]] constexpr std::uint64_t reverse33(std::uint64_t plain) noexcept {
    std::uint64_t r = 0;
    for (unsigned d = 0; d <= 32; ++d)
        if (((plain >> d) & 1U) != 0) r |= std::uint64_t{1} << (32 - d);
    return r;
}

/// P written plainly: bit d = coefficient of x^d.
inline constexpr std::uint64_t plain_poly = 0x104C11DB7ULL;

/// mu = floor(x^64 / P) written plainly, by long division (degree 32).
[[nodiscard]] constexpr std::uint64_t barrett_mu() noexcept {
    std::uint64_t rem = 0;
    std::uint64_t quotient = 0;
    for (int d = 64; d >= 0; --d) {  // the dividend x^64 has one bit, at degree 64
        rem = (rem << 1) | (d == 64 ? 1U : 0U);
        const bool q = ((rem >> 32) & 1U) != 0;
        if (q) rem ^= plain_poly;
        quotient = (quotient << 1) | (q ? 1U : 0U);
    }
    return quotient;
}

// pclmulqdq of two lanes gives I128(x * f * g): the extra x is why each constant below is
// one power short. Folding a register R = A*x^64 + B (A in the low lane) forward by N bits
// uses A*x^(N+64) = A * (x^(N+63) mod P) * x and B*x^N = B * (x^(N-1) mod P) * x; each
// product has degree < 96, so it fits the register and the result stays congruent.
inline constexpr std::uint64_t fold512_lo = lane(x_pow_mod(512 + 63));
inline constexpr std::uint64_t fold512_hi = lane(x_pow_mod(512 - 1));
inline constexpr std::uint64_t fold128_lo = lane(x_pow_mod(128 + 63));
inline constexpr std::uint64_t fold128_hi = lane(x_pow_mod(128 - 1));
// Final reduction of R*x^32: A*x^96 via x^95, then the upper 32 bits of the result via x^63.
inline constexpr std::uint64_t reduce96 = lane(x_pow_mod(95));
inline constexpr std::uint64_t reduce64 = lane(x_pow_mod(63));
// Barrett: for V of degree < 64, floor(V / P) = floor(floor(V / x^32) * mu / x^32), exact
// over GF(2). Both are taken times x^31 so that the products land on lane boundaries.
inline constexpr std::uint64_t mu_x31 = reverse33(barrett_mu());
inline constexpr std::uint64_t poly_x31 = reverse33(plain_poly);

// Cross-checks against the values published for this polynomial (Gopal et al., "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ", Intel, 2009): mu and the reflected
// Barrett pair; x^32 mod P is P's lower terms.
static_assert(x_pow_mod(0) == 0x80000000U && x_pow_mod(32) == reflected_poly);
static_assert(barrett_mu() == 0x104D101DFULL && mu_x31 == 0x1F7011641ULL && poly_x31 == 0x1DB710641ULL);

}  // namespace crc32_constants

#if TIERGUARD_CRC32_CLMUL

/// Whether this CPU has carry-less multiply (PCLMULQDQ); asked once, then cached.
[[nodiscard]] inline bool crc32_clmul_supported() noexcept {
    static const bool supported = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("pclmul") != 0;
    }();
    return supported;
}

namespace crc32_clmul_detail {

// R * x^N + next, N given by the constant pair (see crc32_constants).
[[nodiscard]] __attribute__((target("pclmul"))) inline __m128i fold(__m128i r, __m128i k, __m128i next) noexcept {
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(r, k, 0x00), _mm_clmulepi64_si128(r, k, 0x11)), next);
}

[[nodiscard]] __attribute__((target("pclmul"))) inline __m128i load(const std::byte* p) noexcept {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// The CRC register of a message congruent to R: R * x^32 mod P, as I32.
[[nodiscard]] __attribute__((target("pclmul"))) inline std::uint32_t reduce(__m128i r) noexcept {
    namespace k = crc32_constants;
    const __m128i k96_64 = _mm_set_epi64x(static_cast<long long>(k::reduce64), static_cast<long long>(k::reduce96));
    // R*x^32 = A*x^96 + B*x^32: A times x^95 mod P (times x), B moved 32 bits down.
    const __m128i b_x32 = _mm_slli_si128(_mm_srli_si128(r, 8), 4);
    const __m128i u = _mm_xor_si128(_mm_clmulepi64_si128(r, k96_64, 0x00), b_x32);  // degree < 96
    // U = Uh*x^64 + Ul, Uh of degree < 32 in the low lane: V = Uh*(x^64 mod P) + Ul, in the high lane.
    const __m128i v = _mm_xor_si128(_mm_clmulepi64_si128(u, k96_64, 0x10), u);
    // Barrett. High lane shifted up 32 bits = I64(floor(V / x^32)); times I64(mu*x^31)
    // that is I128(x^32 * Vh * mu), whose low lane is I64(q), q = floor(Vh * mu / x^32).
    const __m128i barrett = _mm_set_epi64x(static_cast<long long>(k::poly_x31), static_cast<long long>(k::mu_x31));
    const __m128i q = _mm_clmulepi64_si128(_mm_slli_epi64(v, 32), barrett, 0x01);
    // I128(x^32 * q * P): the coefficients of q*P below x^32 are in bits 0..31 of the
    // high lane, where V's low 32 coefficients land when the high lane moves down 32 bits.
    const __m128i qp = _mm_clmulepi64_si128(q, barrett, 0x10);
    const __m128i s = _mm_xor_si128(qp, _mm_srli_epi64(v, 32));
    return static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(s, 8)));
}

}  // namespace crc32_clmul_detail

/// crc32_portable's result, by carry-less multiply folding: 64 bytes a step in four
/// lanes, then 16, then a Barrett reduction; the last size % 16 bytes go to zlib, as does
/// a buffer under 16 bytes. Requires crc32_clmul_supported(). Reads only [data, data + size).
[[nodiscard]] __attribute__((target("pclmul"))) inline std::uint32_t crc32_clmul(std::uint32_t crc,
                                                                                 const std::byte* data,
                                                                                 std::size_t size) noexcept {
    namespace k = crc32_constants;
    using crc32_clmul_detail::fold;
    using crc32_clmul_detail::load;
    if (size < 16) return crc32_portable(crc, data, size);
    const __m128i k128 = _mm_set_epi64x(static_cast<long long>(k::fold128_hi), static_cast<long long>(k::fold128_lo));
    // zlib keeps the register inverted between calls; the register goes into the first 4 bytes.
    const __m128i init = _mm_cvtsi32_si128(static_cast<int>(~crc));
    __m128i r;
    if (size >= 64) {
        const __m128i k512 =
            _mm_set_epi64x(static_cast<long long>(k::fold512_hi), static_cast<long long>(k::fold512_lo));
        __m128i r0 = _mm_xor_si128(load(data), init);
        __m128i r1 = load(data + 16);
        __m128i r2 = load(data + 32);
        __m128i r3 = load(data + 48);
        data += 64;
        size -= 64;
        for (; size >= 64; data += 64, size -= 64) {
            r0 = fold(r0, k512, load(data));
            r1 = fold(r1, k512, load(data + 16));
            r2 = fold(r2, k512, load(data + 32));
            r3 = fold(r3, k512, load(data + 48));
        }
        r = fold(fold(fold(r0, k128, r1), k128, r2), k128, r3);
    } else {
        r = _mm_xor_si128(load(data), init);
        data += 16;
        size -= 16;
    }
    for (; size >= 16; data += 16, size -= 16) r = fold(r, k128, load(data));
    return crc32_portable(~crc32_clmul_detail::reduce(r), data, size);
}

#endif

/// zlib's crc32() of `bytes` continued from `crc` (0 to start), bit for bit: by
/// crc32_clmul when the CPU has it (from 16 bytes on it beats zlib), else by zlib.
[[nodiscard]] inline std::uint32_t crc32_update(std::uint32_t crc, std::span<const std::byte> bytes) noexcept {
#if TIERGUARD_CRC32_CLMUL
    if (bytes.size() >= 16 && crc32_clmul_supported()) return crc32_clmul(crc, bytes.data(), bytes.size());
#endif
    return crc32_portable(crc, bytes.data(), bytes.size());
}

}  // namespace tierguard::detail
